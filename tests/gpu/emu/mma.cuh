/* The CPU stand-in for lib/cuda/mma.cuh (see cuda_runtime.h here): ldmatrix and mma.m16n8k16
 * as warp-wide exchanges that follow the PTX ISA's fragment layouts, written out in
 * lib/cuda/mma.cuh. */
#ifndef KAT_CUDA_MMA_CUH
#define KAT_CUDA_MMA_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

namespace kat_cuda {

template <typename T> struct elem;
template <> struct elem<__nv_bfloat16> {
    static uint16_t bits(float f) { return emu::bf16_bits(f); }
    static float value(uint16_t b) { return emu::bf16_float(b); }
    static uint32_t pack(float lo, float hi) { return bits(lo) | (uint32_t)bits(hi) << 16; }
    static float2 unpack(uint32_t u) { return {value(u & 0xffff), value(u >> 16)}; }
};
template <> struct elem<__half> {
    static uint16_t bits(float f) { return emu::half_bits(f); }
    static float value(uint16_t b) { return emu::half_float(b); }
    static uint32_t pack(float lo, float hi) { return bits(lo) | (uint32_t)bits(hi) << 16; }
    static float2 unpack(uint32_t u) { return {value(u & 0xffff), value(u >> 16)}; }
};

struct mma_in {
    uint32_t a[4], b[2];
};

/* d += a * b on one 16x8x16 block (g = lane / 4, t = lane % 4). */
template <typename T> inline void mma(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    mma_in in;
    for (int i = 0; i < 4; i++) in.a[i] = a[i];
    in.b[0] = b[0];
    in.b[1] = b[1];
    float add[4];
    emu::warp_exchange(&in, [](const void *const *ins, int lane, void *out) {
        float A[16][16], B[16][8];
        for (int l = 0; l < 32; l++) {
            const mma_in &x = *static_cast<const mma_in *>(ins[l]);
            const int g = l / 4, t = l % 4;
            for (int e = 0; e < 2; e++) {
                A[g][2 * t + e] = elem<T>::value(x.a[0] >> 16 * e & 0xffff);
                A[g + 8][2 * t + e] = elem<T>::value(x.a[1] >> 16 * e & 0xffff);
                A[g][2 * t + 8 + e] = elem<T>::value(x.a[2] >> 16 * e & 0xffff);
                A[g + 8][2 * t + 8 + e] = elem<T>::value(x.a[3] >> 16 * e & 0xffff);
                B[2 * t + e][g] = elem<T>::value(x.b[0] >> 16 * e & 0xffff);
                B[2 * t + 8 + e][g] = elem<T>::value(x.b[1] >> 16 * e & 0xffff);
            }
        }
        const int g = lane / 4, t = lane % 4;
        float *o = static_cast<float *>(out);
        for (int c = 0; c < 4; c++) {
            const int row = g + 8 * (c / 2), col = 2 * t + c % 2;
            float s = 0.f;
            for (int k = 0; k < 16; k++) s += A[row][k] * B[k][col];
            o[c] = s;
        }
    }, add);
    for (int c = 0; c < 4; c++) d[c] += add[c];
}

/* Four 8x8 matrices; lane l gives the address of row l % 8 of matrix l / 8. */
template <bool TRANS> inline void ldmatrix(uint32_t r[4], const void *p) {
    const uint16_t *in = static_cast<const uint16_t *>(p);
    emu::warp_exchange(&in, [](const void *const *ins, int lane, void *out) {
        uint32_t *o = static_cast<uint32_t *>(out);
        for (int i = 0; i < 4; i++) {
            uint16_t lo, hi;
            if (!TRANS) {
                const uint16_t *row = *static_cast<const uint16_t *const *>(ins[8 * i + lane / 4]);
                lo = row[2 * (lane % 4)];
                hi = row[2 * (lane % 4) + 1];
            } else {
                lo = (*static_cast<const uint16_t *const *>(ins[8 * i + 2 * (lane % 4)]))[lane / 4];
                hi = (*static_cast<const uint16_t *const *>(ins[8 * i + 2 * (lane % 4) + 1]))[lane / 4];
            }
            o[i] = lo | (uint32_t)hi << 16;
        }
    }, r);
}
inline void ldmatrix_x4(uint32_t r[4], const void *p) { ldmatrix<false>(r, p); }
inline void ldmatrix_x4_trans(uint32_t r[4], const void *p) { ldmatrix<true>(r, p); }

/* 16-byte global -> shared copy; valid = false fills zeros. */
inline void cp_async16(void *dst, const void *src, bool valid) { emu::async_copy16(dst, src, valid); }
inline void cp_async_commit() { emu::async_commit(); }
template <int N> inline void cp_async_wait() { emu::async_wait(N); }

inline float fast_exp2(float x) { return std::exp2(x); }

} // namespace kat_cuda

#endif
