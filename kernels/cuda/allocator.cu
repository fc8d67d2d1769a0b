// The caching device allocator (see allocator.h for the policy).
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/allocator.h"
#include "kernels/cuda/common.h"
#include "kernels/cuda/launch.cuh"

namespace st::cuda {
namespace {

struct Block {
  std::size_t size = 0;  // size class in bytes
  int device = 0;
  cudaStream_t stream = nullptr;
  bool in_use = false;
};

// Free lists keyed by (device, stream, size class).
using BinKey = std::tuple<int, cudaStream_t, std::size_t>;

struct DeviceCache {
  std::mutex mutex;
  std::map<BinKey, std::vector<void*>> free_blocks;
  std::unordered_map<void*, Block> blocks;  // every block cudaMalloc'ed and not yet cudaFree'd
  DeviceAllocatorStats stats;

  // Caller holds the mutex. cudaFree synchronises the device, so no queued kernel still uses a block.
  void release_locked() {
    for (auto& [key, pointers] : free_blocks) {
      for (void* pointer : pointers) {
        int current = 0;
        ST_CUDA_CHECK(cudaGetDevice(&current));
        const int device = std::get<0>(key);
        if (device != current) ST_CUDA_CHECK(cudaSetDevice(device));
        ST_CUDA_CHECK(cudaFree(pointer));
        if (device != current) ST_CUDA_CHECK(cudaSetDevice(current));
        blocks.erase(pointer);
        stats.bytes_cached -= std::get<2>(key);
        ++stats.cuda_free_calls;
      }
    }
    free_blocks.clear();
  }
};

// Never destroyed: freeing device memory from a static destructor races the CUDA runtime's own
// teardown at exit; the driver reclaims everything when the process ends.
DeviceCache& cache() {
  static DeviceCache* instance = new DeviceCache;
  return *instance;
}

std::string describe(const DeviceAllocatorStats& s) {
  return join({"in use ", std::to_string(s.bytes_in_use), " bytes, cached ", std::to_string(s.bytes_cached),
               " bytes, peak in use ", std::to_string(s.peak_bytes_in_use), " bytes, ",
               std::to_string(s.cuda_malloc_calls), " cudaMalloc calls"});
}

}  // namespace

std::size_t device_size_class(std::size_t bytes) {
  constexpr std::size_t kSmallStep = 512, kSmallLimit = std::size_t{1} << 20;
  if (bytes == 0) return 0;
  if (bytes <= kSmallLimit) return (bytes + kSmallStep - 1) / kSmallStep * kSmallStep;
  std::size_t power = kSmallLimit;  // largest power of two <= bytes
  while (power <= bytes / 2) power *= 2;
  const std::size_t step = power / 8;
  return (bytes + step - 1) / step * step;
}

void* device_allocate(std::size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return nullptr;
  const std::size_t size = device_size_class(bytes);
  int device = 0;
  ST_CUDA_CHECK(cudaGetDevice(&device));
  DeviceCache& c = cache();
  std::lock_guard lock(c.mutex);
  auto bin = c.free_blocks.find(BinKey{device, stream, size});
  if (bin != c.free_blocks.end() && !bin->second.empty()) {
    void* pointer = bin->second.back();
    bin->second.pop_back();
    c.blocks[pointer].in_use = true;
    c.stats.bytes_cached -= size;
    c.stats.bytes_in_use += size;
    if (c.stats.bytes_in_use > c.stats.peak_bytes_in_use) c.stats.peak_bytes_in_use = c.stats.bytes_in_use;
    ++c.stats.allocations;
    return pointer;
  }
  void* pointer = nullptr;
  cudaError_t status = cudaMalloc(&pointer, size);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear it, give the cached blocks back and try once more
    c.release_locked();
    status = cudaMalloc(&pointer, size);
  }
  if (status != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error(
        join({"device_allocate: cudaMalloc of ", std::to_string(size), " bytes (request ", std::to_string(bytes),
              ") on device ", std::to_string(device), " failed: ", cudaGetErrorName(status), " (",
              cudaGetErrorString(status), "); allocator: ", describe(c.stats)}));
  }
  c.blocks.emplace(pointer, Block{size, device, stream, true});
  ++c.stats.cuda_malloc_calls;
  ++c.stats.allocations;
  c.stats.bytes_in_use += size;
  if (c.stats.bytes_in_use > c.stats.peak_bytes_in_use) c.stats.peak_bytes_in_use = c.stats.bytes_in_use;
  return pointer;
}

void device_free(void* pointer) {
  if (pointer == nullptr) return;
  DeviceCache& c = cache();
  std::lock_guard lock(c.mutex);
  const auto found = c.blocks.find(pointer);
  if (found == c.blocks.end())
    throw std::invalid_argument("device_free: pointer was not allocated by device_allocate (or was released)");
  Block& block = found->second;
  if (!block.in_use) throw std::invalid_argument("device_free: block freed twice");
  block.in_use = false;
  c.free_blocks[BinKey{block.device, block.stream, block.size}].push_back(pointer);
  c.stats.bytes_in_use -= block.size;
  c.stats.bytes_cached += block.size;
}

void device_release_cached() {
  DeviceCache& c = cache();
  std::lock_guard lock(c.mutex);
  ST_CUDA_CHECK(cudaDeviceSynchronize());
  c.release_locked();
}

DeviceAllocatorStats device_allocator_stats() {
  DeviceCache& c = cache();
  std::lock_guard lock(c.mutex);
  return c.stats;
}

void copy_to_device(void* device, const void* host, std::size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
  ST_CUDA_CHECK(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream));
  ST_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void copy_to_host(void* host, const void* device, std::size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
  ST_CUDA_CHECK(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream));
  ST_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void DeviceBuffer::require_fits(std::size_t bytes) const {
  if (bytes > bytes_)
    throw std::invalid_argument(join({"DeviceBuffer: copy of ", std::to_string(bytes), " bytes into a buffer of ",
                                      std::to_string(bytes_), " bytes"}));
}

}  // namespace st::cuda
