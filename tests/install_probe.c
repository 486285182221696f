/* The program a new user writes against the installed library (built by test_install.sh). */
#include <stdio.h>
#include <kat/kat.h>

int main(void)
{
    kat_fn *f;
    double c[3] = {1.0, 2.0, 1.0}, x[4] = {-1, 0, 1, 2}, y[4];
    if (kat_fn_poly(c, 3, &f) != KAT_OK) {
        fprintf(stderr, "kat_fn_poly: %s\n", kat_last_error());
        return 1;
    }
    kat_status st = kat_fn_eval(f, x, y, 4);
    int degree = kat_fn_poly_degree(f);
    kat_fn_destroy(f);
    if (st != KAT_OK || degree != 2 || y[3] != 9.0) {
        fprintf(stderr, "unexpected: status %d, degree %d, f(2) = %g\n", st, degree, y[3]);
        return 1;
    }
    printf("kat %s on %s: (1+x)^2 at 2 = %g\n", kat_version(), kat_arch_name(), y[3]);
    return 0;
}
