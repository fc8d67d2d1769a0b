#include "engine/probe.h"

#include <algorithm>
#include <cmath>

namespace st {

void ActivationProbe::add(const char* op, const Tensor& output) {
  ActivationSite site;
  site.op = op;
  site.shape = output.shape();
  site.count = output.numel();
  std::vector<float> host;  // a device tensor is read back first (the probe is a cold path)
  const float* v = output.data();
  if (output.device() != Device::CPU) {
    host = output.to_vector();
    v = host.data();
  }
  double sum = 0.0, squares = 0.0;
  for (int64_t i = 0; i < site.count; ++i) {
    sum += v[i];
    squares += static_cast<double>(v[i]) * v[i];
    if (v[i] == 0.0f) ++site.zeros;
  }
  if (site.count > 0) {
    const auto n = static_cast<double>(site.count);
    site.mean = sum / n;
    site.std = std::sqrt(std::max(0.0, squares / n - site.mean * site.mean));
  }
  if (max_sample_ > 0 && site.count > 0) {
    const int64_t stride = (site.count + max_sample_ - 1) / max_sample_;
    for (int64_t i = 0; i < site.count; i += stride) site.sample.push_back(v[i]);
  }
  sites_.push_back(std::move(site));
}

}  // namespace st
