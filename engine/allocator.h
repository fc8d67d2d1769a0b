// Caching host allocator. Training repeats the same tensor sizes every step; glibc serves large
// blocks with mmap/munmap, so every step would page-fault and zero fresh memory. The cache keeps
// freed blocks by exact byte size and hands them back, so the steady-state step allocates nothing
// from the operating system. Blocks are 64-byte aligned (one cache line, AVX-512 friendly).
#pragma once

#include <cstddef>

namespace st {

void* host_allocate(std::size_t bytes);
void host_free(void* pointer, std::size_t bytes);
// Returns every cached block to the system (e.g. between experiments of different shapes).
void host_release_cached();
std::size_t host_cached_bytes();

// A scratch array of floats from the cache (uninitialised), for kernels' temporaries.
class HostBuffer {
 public:
  explicit HostBuffer(std::size_t floats) : bytes_((floats == 0 ? 1 : floats) * sizeof(float)) {
    data_ = static_cast<float*>(host_allocate(bytes_));
  }
  ~HostBuffer() { host_free(data_, bytes_); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  float* data() { return data_; }
  const float* data() const { return data_; }

 private:
  std::size_t bytes_;
  float* data_;
};

}  // namespace st
