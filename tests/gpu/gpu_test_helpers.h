// Shared by the GPU suite: whether a GPU is usable (on a machine without one, the first call prints
// the single skip line of the suite and every GPU test returns early), and DeviceArray, a test-owned
// device buffer with upload/download.
//
// ST_REQUIRE_GPU=1 (set by tools/gpu/check.sh on the GPU machine) turns the skip into a failure: the
// process prints why and exits with status 3, so a build without CUDA or a GPU the runtime cannot use
// never passes the suite there.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/cuda/device.h"

#ifdef ST_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <vector>

#include "kernels/cuda/common.h"
#endif

namespace st::test {

inline bool gpu_required() {
  const char* value = std::getenv("ST_REQUIRE_GPU");
  return value != nullptr && std::strcmp(value, "") != 0 && std::strcmp(value, "0") != 0;
}

// Prints the suite's one skip line, or with ST_REQUIRE_GPU set, why it may not skip, and exits.
inline void report_skip(const char* why) {
  if (gpu_required()) {
    std::fprintf(stderr, "gpu: FAILED: ST_REQUIRE_GPU=1 but the GPU suite would skip: %s\n", why);
    std::fflush(stderr);
    std::_Exit(3);
  }
  std::fprintf(stderr, "gpu: skipped: %s\n", why);
}

inline bool gpu_available() {
#ifdef ST_HAVE_CUDA
  static const bool available = [] {
    const st::cuda::DeviceInfo info = st::cuda::query_devices();
    if (info.count == 0) {
      const std::string why = "no GPU on this machine (" + info.unavailable + ")";
      report_skip(why.c_str());
    }
    return info.count > 0;
  }();
  return available;
#else
  static const bool printed = [] {
    report_skip("built without CUDA (ST_WITH_CUDA=OFF or no nvcc)");
    return true;
  }();
  (void)printed;
  return false;
#endif
}

#ifdef ST_HAVE_CUDA
// A device array owned by a test: uploads a host vector (or allocates `count` elements), downloads
// into a fresh host vector. Copies are synchronous (legacy default stream semantics of cudaMemcpy).
template <typename T = float>
class DeviceArray {
 public:
  explicit DeviceArray(std::size_t count) : count_(count) {
    if (count_ > 0) ST_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), count_ * sizeof(T)));
  }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) { upload(host); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() {
    if (data_ != nullptr) cudaFree(data_);
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return count_; }
  void upload(const std::vector<T>& host) {
    if (host.size() != count_) throw std::invalid_argument("DeviceArray::upload: size differs from the array's");
    if (count_ > 0) ST_CUDA_CHECK(cudaMemcpy(data_, host.data(), count_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    if (count_ > 0) ST_CUDA_CHECK(cudaMemcpy(host.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* data_ = nullptr;
  std::size_t count_ = 0;
};

// max_i |got_i - want_i| / max_i |want_i| over a whole array; infinity when a difference is NaN.
inline double normalised_error(const std::vector<float>& got, const std::vector<float>& want) {
  double worst = 0.0, scale = 0.0;
  for (std::size_t i = 0; i < want.size() && i < got.size(); ++i) {
    const double difference = std::fabs(static_cast<double>(got[i]) - static_cast<double>(want[i]));
    if (std::isnan(difference)) return std::numeric_limits<double>::infinity();
    worst = std::max(worst, difference);
    scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
  }
  return worst == 0.0 ? 0.0 : worst / std::max(scale, 1e-30);
}
#endif

}  // namespace st::test
