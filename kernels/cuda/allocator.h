// Caching device allocator. A training step asks for the same sizes every iteration; cudaMalloc and
// cudaFree are slow (cudaFree synchronises the whole device) and are not allowed while a stream is
// captured into a CUDA graph. The cache keeps freed blocks in size-class bins and hands them back, so
// after the first step(s) the steady state makes no cudaMalloc call (the stats let a test assert it).
//
// Size classes: requests up to 1 MiB round up to a multiple of 512 bytes; larger ones round up to a
// multiple of 1/8 of their power of two (at most 12.5% waste), so nearby sizes share a bin.
//
// Stream-ordered reuse: a freed block is remembered with the stream it was allocated on and reused
// only for a later request on that same stream (and device). The host may free a block while kernels
// that use it are still queued: any later user on the same stream runs after them. Blocks never move
// between streams (that would need events); release_cached() returns every cached block to CUDA.
//
// Graph capture: allocations made while capturing come from the cache (warm it with one eager step
// first); their pointers are baked into the graph, so a captured graph's blocks must stay alive (hold
// the DeviceBuffers) for as long as the graph is replayed.
//
// Plain C++ with <cuda_runtime_api.h> types only: includable by g++ and nvcc. Thread-safe.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace st::cuda {

struct DeviceAllocatorStats {
  std::size_t bytes_in_use = 0;  // size-class bytes of the blocks handed out and not yet freed
  std::size_t bytes_cached = 0;  // size-class bytes of the freed blocks kept for reuse
  std::size_t peak_bytes_in_use = 0;
  std::uint64_t cuda_malloc_calls = 0;  // successful cudaMalloc calls since the process started
  std::uint64_t cuda_free_calls = 0;
  std::uint64_t allocations = 0;  // device_allocate calls served (from the cache or cudaMalloc)
};

// Size-class bytes a request of `bytes` occupies (exposed for tests).
std::size_t device_size_class(std::size_t bytes);
// nullptr for bytes == 0. On out-of-memory, releases the cache and retries once; then throws
// std::runtime_error with the request and the allocator statistics.
void* device_allocate(std::size_t bytes, cudaStream_t stream);
// Returns the block to the cache (nullptr: no-op). Throws std::invalid_argument for a pointer this
// allocator did not hand out (or already freed).
void device_free(void* pointer);
// Synchronises the device and cudaFree's every cached block (e.g. between experiments of different shapes).
void device_release_cached();
DeviceAllocatorStats device_allocator_stats();

// Synchronous copies (cudaMemcpyAsync on `stream` + cudaStreamSynchronize): set-up and tests, not the hot path.
void copy_to_device(void* device, const void* host, std::size_t bytes, cudaStream_t stream);
void copy_to_host(void* host, const void* device, std::size_t bytes, cudaStream_t stream);

// A device array from the cache, returned to it on destruction (stream-ordered, see above). Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(std::size_t bytes, cudaStream_t stream) : bytes_(bytes), stream_(stream) {
    data_ = device_allocate(bytes, stream);
  }
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept : data_(other.data_), bytes_(other.bytes_), stream_(other.stream_) {
    other.data_ = nullptr;
    other.bytes_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      reset();
      data_ = other.data_;
      bytes_ = other.bytes_;
      stream_ = other.stream_;
      other.data_ = nullptr;
      other.bytes_ = 0;
    }
    return *this;
  }

  // An array of `count` elements of T (uninitialised).
  template <typename T>
  static DeviceBuffer of(std::size_t count, cudaStream_t stream) {
    return DeviceBuffer(count * sizeof(T), stream);
  }
  // A copy of a host vector (synchronous).
  template <typename T>
  static DeviceBuffer from_host(const std::vector<T>& host, cudaStream_t stream) {
    DeviceBuffer buffer(host.size() * sizeof(T), stream);
    buffer.upload(host);
    return buffer;
  }
  template <typename T>
  void upload(const std::vector<T>& host) {
    require_fits(host.size() * sizeof(T));
    copy_to_device(data_, host.data(), host.size() * sizeof(T), stream_);
  }
  // The first `count` elements as T (synchronous); count defaults to the whole buffer.
  template <typename T>
  std::vector<T> download(std::size_t count = static_cast<std::size_t>(-1)) const {
    if (count == static_cast<std::size_t>(-1)) count = bytes_ / sizeof(T);
    require_fits(count * sizeof(T));
    std::vector<T> host(count);
    copy_to_host(host.data(), data_, count * sizeof(T), stream_);
    return host;
  }

  void* data() const { return data_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  std::size_t bytes() const { return bytes_; }
  cudaStream_t stream() const { return stream_; }
  void reset() {
    if (data_ != nullptr) device_free(data_);
    data_ = nullptr;
    bytes_ = 0;
  }

 private:
  void require_fits(std::size_t bytes) const;

  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  cudaStream_t stream_ = nullptr;
};

}  // namespace st::cuda
