/* Every theorem of the registry at the sizes its statement gives (what `kat theorem all` runs).
 * Slow suite: about half a minute on the 2-core development machine. */
#include <stdio.h>
#include <stdlib.h>
#include "testutil.h"

START_TEST(test_every_entry_full)
{
    kat_theorem_result *r = malloc(sizeof *r);
    TU_OK(kat_theorem_run((size_t)_i, tu_quick() ? KAT_THEOREM_QUICK : 0, r));
    for (size_t k = 0; k < r->nvalues; k++)
        if (!r->values[k].pass)
            fprintf(stderr, "%s: %s: measured %.17g expected %.17g (tol %g)\n", r->info->id,
                    r->values[k].label, r->values[k].measured, r->values[k].expected,
                    r->values[k].tol);
    ck_assert_msg(r->pass, "theorem %s failed", r->info->id);
    free(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("theorems_full");
    TCase *tc = tcase_create("theorems_full");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_every_entry_full, 0, (int)kat_theorem_count());
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
