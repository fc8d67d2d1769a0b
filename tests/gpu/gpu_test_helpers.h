// Shared by the GPU suite: whether a GPU is usable (on a machine without one, the first call prints
// the single skip line of the suite and every GPU test returns early), and DeviceArray, a test-owned
// device buffer with upload/download.
#pragma once

#include <cstdio>

#include "kernels/cuda/device.h"

#ifdef ST_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <cstddef>
#include <stdexcept>
#include <vector>

#include "kernels/cuda/common.h"
#endif

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
#endif

}  // namespace st::test
