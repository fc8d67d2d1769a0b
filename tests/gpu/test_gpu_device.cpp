// GPU suite. The CUDA training backend (kernels/cuda, kernels/vendor) and its parity tests come with
// the CUDA issue; for now this suite checks device discovery, and on a machine without a GPU it
// skips with one line.
#include <doctest/doctest.h>

#include <cstdio>

#include "kernels/cuda/device.h"

TEST_SUITE("gpu") {
  TEST_CASE("CUDA device discovery") {
#ifdef ST_HAVE_CUDA
    const st::cuda::DeviceInfo info = st::cuda::query_devices();
    if (info.count == 0) {
      std::fprintf(stderr, "gpu: skipped: no GPU on this machine (%s)\n", info.unavailable.c_str());
      return;
    }
    CHECK_FALSE(info.first_name.empty());
    std::fprintf(stderr, "gpu: %s (%d device(s))\n", info.first_name.c_str(), info.count);
#else
    std::fprintf(stderr, "gpu: skipped: built without CUDA (ST_WITH_CUDA=OFF or no nvcc)\n");
#endif
  }
}
