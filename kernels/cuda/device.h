// CUDA device discovery. Compiled by nvcc in every build; on a machine without a GPU (or without a
// driver) it reports zero devices and the engine runs on the CPU.
#pragma once

#include <string>

namespace st::cuda {

struct DeviceInfo {
  int count = 0;
  std::string first_name;    // e.g. "NVIDIA H100 80GB HBM3"; empty when count == 0
  std::string unavailable;   // why no device is usable (driver missing, no device), when count == 0
};

DeviceInfo query_devices();

}  // namespace st::cuda
