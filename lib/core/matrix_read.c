/* Read a matrix from a file whose extension names its format. */
#include <string.h>
#include <strings.h>
#include "core/internal.h"
#include "kat/io.h"

kat_status kat_matrix_read(const char *path, kat_dmat *out)
{
    if (!path)
        return kat__fail(KAT_EINVAL, "matrix_read: path is NULL");
    if (!out)
        return kat__fail(KAT_EINVAL, "matrix_read: out is NULL");
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    if (dot && strcasecmp(dot, ".npy") == 0)
        return kat_npy_read_dmat(path, out);
    if (dot && (strcasecmp(dot, ".csv") == 0 || strcasecmp(dot, ".txt") == 0))
        return kat_csv_read(path, out);
    if (!dot)
        return kat__fail(KAT_EINVAL, "matrix_read: '%s' has no extension (kat reads .npy, .csv "
                                    "and .txt)", path);
    return kat__fail(KAT_EINVAL, "matrix_read: '%s' has the unknown extension '%s' (kat reads "
                                ".npy, .csv and .txt)", path, dot);
}
