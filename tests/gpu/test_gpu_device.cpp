// GPU suite: device discovery. On a machine without a GPU every GPU test skips; the suite prints one
// line saying so (tests/gpu/gpu_test_helpers.h).
#include <doctest/doctest.h>

#include <cstdio>

#include "tests/gpu/gpu_test_helpers.h"

TEST_SUITE("gpu") {
  TEST_CASE("CUDA device discovery") {
    if (!st::test::gpu_available()) return;
#ifdef ST_HAVE_CUDA
    const st::cuda::DeviceInfo info = st::cuda::query_devices();
    CHECK_FALSE(info.first_name.empty());
    std::fprintf(stderr, "gpu: %s (%d device(s))\n", info.first_name.c_str(), info.count);
#endif
  }
}
