/* Argument checks shared by the attention implementations (never installed). */
#ifndef KAT_ATTN_INTERNAL_H
#define KAT_ATTN_INTERNAL_H

#include "kat/attn.h"

/* A view must be non-NULL with shape [B, H, N, D]; with check_finite every element finite. */
kat_status kat__attn_check_view(const kat_tensor *t, const char *what, size_t B, size_t H,
                               size_t N, size_t D, int check_finite);

/* A logsumexp input [B, H, N, 1]: finite or -inf (a row that saw no key). */
kat_status kat__attn_check_lse_input(const kat_tensor *t, const char *what, size_t B, size_t H,
                                    size_t N);

/* Outputs (NULL entries skipped) must not overlap any input or each other. */
kat_status kat__attn_check_disjoint(const kat_tensor *const *outs, const char *const *out_names,
                                   size_t nout, const kat_tensor *const *ins,
                                   const char *const *in_names, size_t nin);

/* The full check of a forward call: q, k, v against the desc (finite), o and lse (optional)
 * as outputs, disjoint. */
kat_status kat__attn_check_forward(const kat_attn_desc *d, const kat_tensor *q,
                                  const kat_tensor *k, const kat_tensor *v,
                                  const kat_tensor *o, const kat_tensor *lse);

/* The full check of a backward call; o and lse may be NULL when need_o / need_lse is 0. */
kat_status kat__attn_check_backward(const kat_attn_desc *d, const kat_tensor *q,
                                   const kat_tensor *k, const kat_tensor *v,
                                   const kat_tensor *o, const kat_tensor *lse,
                                   const kat_tensor *dout, const kat_tensor *dq,
                                   const kat_tensor *dk, const kat_tensor *dv, int need_o,
                                   int need_lse);

/* Index of row n of head (b, h) in a contiguous [B, H, N] array. */
static inline size_t kat_attn_row_index(size_t b, size_t h, size_t n, size_t H, size_t N)
{
    return (b * H + h) * N + n;
}

#endif
