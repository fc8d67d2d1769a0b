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

}  // namespace st
