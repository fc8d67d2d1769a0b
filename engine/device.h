// The engine's side of the devices: whether a CUDA device is usable, the one stream every engine
// kernel and copy runs on, the process-wide backend settings a run chooses (`--kernels ours|vendor`:
// our hand-written convolution, GEMM and BatchNorm kernels or cuDNN/cuBLAS; `--tf32 on|off`), and the
// raw memory primitives Storage and Tensor use for device tensors.
//
// One stream, in order: every op enqueues its kernels on engine_stream(), so nothing inside a step needs
// to synchronise; host reads of device data (Tensor::item, to_vector, copies to the CPU) wait for it.
// Uploads from host memory are synchronous (pageable memory; a pinned staging buffer is later work).
//
// Builds without CUDA (ST_HAVE_CUDA undefined) compile all of this: cuda_status() then reports "this build
// has no CUDA backend" and every device operation fails with that message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/tensor.h"

#ifdef ST_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace st {

struct CudaStatus {
  bool available = false;
  std::string name;    // first device, e.g. "NVIDIA H100 80GB HBM3" (empty when unavailable)
  std::string reason;  // why no device is usable (empty when available)
};
// Queried once per process (device 0 is the one the engine uses).
const CudaStatus& cuda_status();
// Fails with an st::Error naming `what` (the op or call that needed the GPU) when no device is usable.
void require_cuda(const std::string& what);

// Which GPU implementation of convolution, GEMM (linear) and BatchNorm the ops call. Every other op has
// only our kernel. Process-wide; set once by the CLI before the first step.
enum class KernelSource { Ours, Vendor };
void set_kernel_source(KernelSource source);
KernelSource kernel_source();
std::string kernel_source_name(KernelSource source);  // "ours" | "vendor"
// "ours" | "vendor"; anything else fails naming `flag`.
KernelSource parse_kernel_source(const std::string& value, const std::string& flag);

// TF32 tensor-core math in convolution and GEMM (ours and vendor); on by default, like PyTorch's
// cudnn.allow_tf32. A no-op without CUDA.
void set_tf32(bool enabled);
bool tf32();

// Waits for every kernel and copy queued on the engine stream (no-op without CUDA or before first use).
void synchronize_device();

#ifdef ST_HAVE_CUDA
// The engine's stream: created on first use (non-blocking, so a step can later be captured into a CUDA
// graph), never destroyed.
cudaStream_t engine_stream();
#endif

// Raw device memory for Storage (bytes from the caching allocator, kernels/cuda/allocator.h, on the
// engine stream; freed blocks are reused by later requests on that stream, in stream order).
namespace device_memory {
void* allocate(std::size_t bytes);  // nullptr for 0 bytes
void release(void* pointer);
void fill(float* data, int64_t count, float value);  // async on the engine stream
// Copies `bytes` between any two devices. Copies that touch the host are synchronous; device to device
// is asynchronous on the engine stream.
void copy(void* destination, Device destination_device, const void* source, Device source_device, std::size_t bytes);
}  // namespace device_memory

}  // namespace st
