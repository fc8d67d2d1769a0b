// The cuDNN handle of the vendor kernels (convolution, BatchNorm, attention): one per (host thread,
// device), created on first use and never destroyed (destroying at exit races the runtime's teardown),
// set to `stream` on every call. Needs <cudnn.h>: include it only from kernels/vendor/*.cu.
#pragma once

#include <cudnn.h>

namespace st::vendor {

cudnnHandle_t cudnn_handle(cudaStream_t stream);

}  // namespace st::vendor
