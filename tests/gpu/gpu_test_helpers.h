// Shared by the GPU suite: whether a GPU is usable. On a machine without one, the first call prints
// the single skip line of the suite and every GPU test returns early.
#pragma once

#include <cstdio>

#include "kernels/cuda/device.h"

namespace st::test {

inline bool gpu_available() {
#ifdef ST_HAVE_CUDA
  static const bool available = [] {
    const st::cuda::DeviceInfo info = st::cuda::query_devices();
    if (info.count == 0) std::fprintf(stderr, "gpu: skipped: no GPU on this machine (%s)\n", info.unavailable.c_str());
    return info.count > 0;
  }();
  return available;
#else
  static const bool printed = [] {
    std::fprintf(stderr, "gpu: skipped: built without CUDA (ST_WITH_CUDA=OFF or no nvcc)\n");
    return true;
  }();
  (void)printed;
  return false;
#endif
}

}  // namespace st::test
