// Activation probe: while a ProbeScope is active on this thread, every activation op (relu, relu6,
// the ReLU fused into batchnorm and into the residual join, gelu) hands its output to the probe,
// which keeps summary statistics of each call in call order (one entry per activation site of a
// forward pass). The trainer uses it for the per-cycle distribution report (the SILO paper's
// evidence: how activations and weight gradients change as the network is pruned). No probe, no cost
// beyond one thread-local read per op.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "engine/thread_scope.h"

namespace st {

struct ActivationSite {
  std::string op;           // "relu", "bn_relu", "add_relu", "relu6", "gelu"
  Shape shape;
  int64_t count = 0;        // values seen
  int64_t zeros = 0;        // values exactly 0 (inactive ReLU units)
  double mean = 0.0, std = 0.0;
  std::vector<float> sample;  // values of the site (every k-th, at most max_sample), when sampling is on
};

class ActivationProbe {
 public:
  // max_sample > 0: keep an evenly strided sample of at most max_sample values of each site.
  explicit ActivationProbe(int64_t max_sample = 0) : max_sample_(max_sample) {}
  void add(const char* op, const Tensor& output);
  const std::vector<ActivationSite>& sites() const { return sites_; }

 private:
  int64_t max_sample_;
  std::vector<ActivationSite> sites_;
};

using ProbeScope = ThreadScope<ActivationProbe>;
inline ActivationProbe* active_probe() { return ProbeScope::active(); }

// Called by the activation ops.
inline void probe_activation(const char* op, const Tensor& output) {
  if (ActivationProbe* probe = active_probe()) probe->add(op, output);
}

}  // namespace st
