#include <cuda_runtime.h>

#include "kernels/cuda/device.h"

namespace st::cuda {

DeviceInfo query_devices() {
  DeviceInfo info;
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    info.unavailable = cudaGetErrorString(status);
    cudaGetLastError();  // clear the sticky error so later queries start clean
    return info;
  }
  info.count = count;
  if (count == 0) {
    info.unavailable = "no CUDA device";
    return info;
  }
  cudaDeviceProp properties{};
  if (cudaGetDeviceProperties(&properties, 0) == cudaSuccess) info.first_name = properties.name;
  return info;
}

}  // namespace st::cuda
