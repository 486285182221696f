/* Seeded random numbers: GSL's mt19937, so every random routine is reproducible. */
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include "core/internal.h"

struct kat_rng {
    gsl_rng *g;
};

kat_status kat_rng_create(uint64_t seed, kat_rng **out)
{
    if (!out)
        return kat__fail(KAT_EINVAL, "rng_create: out is NULL");
    kat_rng *r = kat_malloc(sizeof *r);
    if (!r)
        return KAT_ENOMEM;
    r->g = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r->g) {
        kat_free(r);
        return kat__fail(KAT_ENOMEM, "rng_create: gsl_rng_alloc failed");
    }
    /* mt19937 takes an unsigned long seed; fold the high bits in so 64-bit seeds differ. */
    gsl_rng_set(r->g, (unsigned long)(seed ^ (seed >> 32) * 0x9E3779B97F4A7C15ull));
    *out = r;
    return KAT_OK;
}

void kat_rng_destroy(kat_rng *r)
{
    if (!r)
        return;
    gsl_rng_free(r->g);
    kat_free(r);
}

double kat_rng_uniform(kat_rng *r) { return gsl_rng_uniform(r->g); }
double kat_rng_gaussian(kat_rng *r, double sigma) { return gsl_ran_gaussian_ziggurat(r->g, sigma); }
double kat_rng_cauchy(kat_rng *r, double scale) { return gsl_ran_cauchy(r->g, scale); }

uint64_t kat_rng_uint(kat_rng *r, uint64_t n)
{
    if (n <= 1)
        return 0;
    if (n <= gsl_rng_max(r->g))
        return gsl_rng_uniform_int(r->g, (unsigned long)n);
    return (uint64_t)(gsl_rng_uniform(r->g) * (double)n) % n;
}
