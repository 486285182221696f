/* libFuzzer harness for the CSV parser: any bytes must give KAT_OK with a finite matrix, or an
 * error status with a message, never a crash, a leak or an out-of-bounds read. */
#include <math.h>
#include <stdint.h>
#include "kat/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kat_dmat m;
    kat_clear_error();
    kat_status st = kat_csv_parse((const char *)data, size, &m);
    if (st != KAT_OK) {
        if (kat_last_error()[0] == '\0')
            __builtin_trap();
        return 0;
    }
    if (m.ld != m.cols || (m.rows && m.cols && !m.data))
        __builtin_trap();
    /* Each value needs at least one input byte, and kat rejects non-finite data. */
    if (m.rows && m.cols && m.rows * m.cols > size)
        __builtin_trap();
    for (size_t i = 0; i < m.rows * m.cols; i++)
        if (!isfinite(m.data[i]))
            __builtin_trap();
    kat_dmat_free(&m);
    return 0;
}
