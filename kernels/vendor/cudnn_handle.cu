// One cuDNN handle per (host thread, device); see cudnn_handle.h.
#include <map>

#include "kernels/cuda/common.h"
#include "kernels/vendor/cudnn_handle.h"

namespace st::vendor {

cudnnHandle_t cudnn_handle(cudaStream_t stream) {
  thread_local std::map<int, cudnnHandle_t> handles;
  int device = 0;
  ST_CUDA_CHECK(cudaGetDevice(&device));
  cudnnHandle_t& handle = handles[device];
  if (handle == nullptr) ST_CUDNN_CHECK(cudnnCreate(&handle));
  ST_CUDNN_CHECK(cudnnSetStream(handle, stream));
  return handle;
}

}  // namespace st::vendor
