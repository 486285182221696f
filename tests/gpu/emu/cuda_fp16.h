/* The CPU stand-in for CUDA's half type and its conversions (see cuda_runtime.h here). */
#ifndef KAT_EMU_CUDA_FP16_H
#define KAT_EMU_CUDA_FP16_H

#include <cstdint>
#include <cstring>

struct __half { uint16_t x; };

namespace emu {
inline uint16_t half_bits(float f) {   /* the compiler's _Float16: round to nearest even */
    _Float16 h = (_Float16)f;
    uint16_t b;
    std::memcpy(&b, &h, 2);
    return b;
}
inline float half_float(uint16_t b) {
    _Float16 h;
    std::memcpy(&h, &b, 2);
    return (float)h;
}
} // namespace emu

inline __half __float2half(float f) { return {emu::half_bits(f)}; }
inline float __half2float(__half h) { return emu::half_float(h.x); }

#endif
