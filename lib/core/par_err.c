/* The first error of a parallel region (see runtime.h). */
#include <stdio.h>
#include "core/kat_config.h"
#include "core/internal.h"
#include "core/runtime.h"

void kat__par_err_init(kat_par_err *e)
{
    atomic_init(&e->failed, 0);
    e->st = KAT_OK;
    e->item = (size_t)-1;
    e->msg[0] = '\0';
}

void kat__par_err_record(kat_par_err *e, size_t item, kat_status st)
{
    if (st == KAT_OK)
        return;
    const char *msg = kat_last_error();
#if KAT_HAVE_OPENMP
#pragma omp critical(kat_par_err)
#endif
    {
        if (e->st == KAT_OK || item < e->item) {
            e->st = st;
            e->item = item;
            snprintf(e->msg, sizeof e->msg, "%s", msg);
        }
    }
    atomic_store(&e->failed, 1);
}

kat_status kat__par_err_raise(const kat_par_err *e)
{
    if (e->st == KAT_OK)
        return KAT_OK;
    return kat__fail(e->st, "%s", e->msg);
}
