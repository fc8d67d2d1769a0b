// GPU suite. The CUDA training backend (kernels/cuda, kernels/vendor) and its parity tests come with
// the CUDA issue; for now this suite checks device discovery, and on a machine without a GPU it
// skips with one line.
#include <doctest/doctest.h>

#include "kernels/cuda/device.h"

TEST_SUITE("gpu") {
  TEST_CASE("CUDA device discovery") {
#ifdef ST_HAVE_CUDA
    const st::cuda::DeviceInfo info = st::cuda::query_devices();
    if (info.count == 0) {
      MESSAGE("skipped: no GPU on this machine (" << info.unavailable << ")");
      return;
    }
    CHECK_FALSE(info.first_name.empty());
    MESSAGE("GPU: " << info.first_name << " (" << info.count << " device(s))");
#else
    MESSAGE("skipped: built without CUDA (ST_WITH_CUDA=OFF or no nvcc)");
#endif
  }
}
