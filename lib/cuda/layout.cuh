/* The bucketed layout (layout.cu): rows sorted by (bucket, row) per (batch, head). */
#ifndef KAT_CUDA_LAYOUT_CUH
#define KAT_CUDA_LAYOUT_CUH

#include <cuda_runtime.h>
#include <stddef.h>

namespace kat_cuda {

/* Arrays of B*H heads: *_rows[bh * N + i] is the original row of the i-th sorted row,
 * *_bkt its bucket (nb for a dropped row); *_off[bh * (nb + 2) + b] the start of bucket b,
 * *_off[.. + nb] the number of kept rows. */
struct bucket_layout {
    int nb;
    int *q_rows, *q_bkt, *q_off;
    int *k_rows, *k_bkt, *k_off;
};

/* 0 and *err set when the CUDA runtime cannot size the sort (no usable device). */
size_t layout_bytes(int bh_count, int N, int M, int nb, cudaError_t *err);
void layout_carve(void *mem, int bh_count, int N, int M, int nb, bucket_layout *L,
                  void **keys_a, void **keys_b, void **temp, size_t *temp_bytes, int **bad);
/* Sorts and counts on stream s, then waits for it: *bad_host = 1 when an id was outside
 * [-1, nb). */
cudaError_t layout_build(void *mem, const int *q_bucket, const int *k_bucket, int bh_count,
                         int N, int M, int nb, bucket_layout *L, int *bad_host,
                         cudaStream_t s);

} // namespace kat_cuda

#endif
