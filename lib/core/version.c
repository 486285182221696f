/* Version, BLAS identification. */
#include <stdio.h>
#include <cblas.h>
#include "core/kat_config.h"
#include "core/internal.h"

const char *kat_version(void) { return KAT_VERSION_STRING; }
int kat_version_major(void) { return KAT_VERSION_MAJOR; }

const char *kat_blas_info(void)
{
    static char info[256];
    if (!info[0])
        snprintf(info, sizeof info, "%s (core %s)", openblas_get_config(),
                 openblas_get_corename());
    return info;
}
