/* The CPU stand-in for CUDA's bfloat16 type and its conversions (see cuda_runtime.h here). */
#ifndef KAT_EMU_CUDA_BF16_H
#define KAT_EMU_CUDA_BF16_H

#include <cstdint>
#include <cstring>

struct __nv_bfloat16 { uint16_t x; };

namespace emu {
inline uint16_t bf16_bits(float f) {   /* round to nearest even; NaN stays NaN */
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float bf16_float(uint16_t b) {
    const uint32_t u = (uint32_t)b << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
} // namespace emu

inline __nv_bfloat16 __float2bfloat16(float f) { return {emu::bf16_bits(f)}; }
inline float __bfloat162float(__nv_bfloat16 b) { return emu::bf16_float(b.x); }

#endif
