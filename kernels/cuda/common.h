// Shared by the CUDA backend (kernels/cuda, kernels/vendor) and by the host code that calls it:
//   - error checks that name the failing call, the file and the line (ST_CUDA_CHECK, ST_CUBLAS_CHECK,
//     ST_CUDNN_CHECK) and throw std::runtime_error;
//   - the stream type (a plain cudaStream_t; nullptr is the legacy default stream);
//   - the TF32 switch of convolution and GEMM (ours and vendor), on by default like PyTorch's
//     torch.backends.cudnn.allow_tf32;
//   - a per-stream scratch buffer for the temporaries of one call (split-K partial sums, cuDNN workspace).
// Plain C++ with the CUDA runtime's C API only, so g++-compiled code (tests, tools) may include it.
//
// Diagnosing failures: a kernel that faults is reported by the next call that synchronises, not by its
// own launch check. Run with CUDA_LAUNCH_BLOCKING=1 so the failing launch is the one named, or under
// compute-sanitizer for the faulting address.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

namespace st::cuda {

using Stream = cudaStream_t;

// Throws std::runtime_error("<library> error <name>: <description> in `<call>` at <file>:<line>").
[[noreturn]] void throw_error(const char* library, const char* name, const char* description, const char* call,
                              const char* file, int line);
// Throws std::invalid_argument("<function>: <message>") for a bad argument of a kernel entry point.
[[noreturn]] void throw_invalid_argument(const char* function, const char* message);

// Whether convolution and GEMM may round their inputs to TF32 (10-bit mantissa) and use tensor cores,
// accumulating in fp32. Read by every call (ours and vendor); process-wide.
void set_tf32_enabled(bool enabled);
bool tf32_enabled();

// Device memory for the temporaries of one call on `stream`: one grow-only buffer per (device, stream),
// valid until the next stream_workspace call for the same stream. Calls on one stream run in order, so
// the next call reusing the buffer is safe. Growing synchronises the stream before freeing the old buffer
// (so it fails, with a clear error, inside CUDA-graph capture: run one step before capturing).
void* stream_workspace(Stream stream, std::size_t bytes);

}  // namespace st::cuda

// The macros expand to code that names the status type of their library: ST_CUBLAS_CHECK needs
// <cublas_v2.h> and ST_CUDNN_CHECK needs <cudnn.h> included where they are used.
#define ST_CUDA_CHECK(call)                                                                                          \
  do {                                                                                                               \
    const cudaError_t st_cuda_status_ = (call);                                                                      \
    if (st_cuda_status_ != cudaSuccess)                                                                              \
      ::st::cuda::throw_error("CUDA", cudaGetErrorName(st_cuda_status_), cudaGetErrorString(st_cuda_status_), #call, \
                              __FILE__, __LINE__);                                                                   \
  } while (false)

#define ST_CUBLAS_CHECK(call)                                                                       \
  do {                                                                                              \
    const cublasStatus_t st_cublas_status_ = (call);                                                \
    if (st_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                                 \
      ::st::cuda::throw_error("cuBLAS", cublasGetStatusName(st_cublas_status_),                     \
                              cublasGetStatusString(st_cublas_status_), #call, __FILE__, __LINE__); \
  } while (false)

// cuDNN's own explanation of the last failure (cudnnGetLastErrorString) is part of the message.
#define ST_CUDNN_CHECK(call)                                                                                     \
  do {                                                                                                           \
    const cudnnStatus_t st_cudnn_status_ = (call);                                                               \
    if (st_cudnn_status_ != CUDNN_STATUS_SUCCESS) {                                                              \
      char st_cudnn_detail_[512] = "";                                                                           \
      cudnnGetLastErrorString(st_cudnn_detail_, sizeof(st_cudnn_detail_));                                       \
      ::st::cuda::throw_error("cuDNN", cudnnGetErrorString(st_cudnn_status_), st_cudnn_detail_, #call, __FILE__, \
                              __LINE__);                                                                         \
    }                                                                                                            \
  } while (false)

// After a kernel launch: reports a bad launch configuration (grid, block, shared memory) at this line.
#define ST_CUDA_CHECK_LAUNCH() ST_CUDA_CHECK(cudaGetLastError())
