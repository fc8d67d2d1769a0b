#include "engine/allocator.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace st {
namespace {

struct HostCache {
  std::mutex mutex;
  std::unordered_map<std::size_t, std::vector<void*>> free_blocks;
  std::size_t cached_bytes = 0;

  ~HostCache() { release(); }
  void release() {
    for (auto& [bytes, blocks] : free_blocks)
      for (void* block : blocks) std::free(block);
    free_blocks.clear();
    cached_bytes = 0;
  }
};

HostCache& cache() {
  static HostCache instance;
  return instance;
}

std::size_t rounded(std::size_t bytes) { return ((bytes == 0 ? 1 : bytes) + 63) / 64 * 64; }

}  // namespace

void* host_allocate(std::size_t bytes) {
  const std::size_t size = rounded(bytes);
  {
    HostCache& c = cache();
    std::lock_guard lock(c.mutex);
    auto it = c.free_blocks.find(size);
    if (it != c.free_blocks.end() && !it->second.empty()) {
      void* block = it->second.back();
      it->second.pop_back();
      c.cached_bytes -= size;
      return block;
    }
  }
  void* block = std::aligned_alloc(64, size);
  if (block == nullptr) throw std::bad_alloc();
  return block;
}

void host_free(void* pointer, std::size_t bytes) {
  if (pointer == nullptr) return;
  const std::size_t size = rounded(bytes);
  HostCache& c = cache();
  std::lock_guard lock(c.mutex);
  c.free_blocks[size].push_back(pointer);
  c.cached_bytes += size;
}

void host_release_cached() {
  HostCache& c = cache();
  std::lock_guard lock(c.mutex);
  c.release();
}

std::size_t host_cached_bytes() {
  HostCache& c = cache();
  std::lock_guard lock(c.mutex);
  return c.cached_bytes;
}

}  // namespace st
