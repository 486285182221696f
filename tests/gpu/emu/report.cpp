/* The error sentence of the linear entry points (linear.cuh's kat_cuda::report) and
 * kat_cuda_last_error for emulate.sh's linear library. lib/cuda/api.cu holds the real pair
 * beside the flash entry points, whose bucket layout (layout.cu, a cub sort) has no host
 * stand-in, so the library of linear_*.cu takes this one. */
#include <cstdio>

#include "kat/cuda.h"

namespace {
thread_local char last_error[512];
}

namespace kat_cuda {
kat_status report(kat_status st, const char *sentence) {
    std::snprintf(last_error, sizeof last_error, "%s", sentence);
    return st;
}
} // namespace kat_cuda

extern "C" const char *kat_cuda_last_error(void) { return last_error; }
