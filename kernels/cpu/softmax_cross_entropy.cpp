// Softmax cross-entropy with label smoothing (Szegedy et al. 2016), fused: the forward keeps the
// softmax probabilities and the backward is (p - q) / batch, q = (1 - s) onehot + s / classes.
// The loss is accumulated in double and summed in sample order (deterministic).
#include <algorithm>
#include <cmath>

#include "kernels/cpu/kernels.h"

namespace st::cpu {

double softmax_cross_entropy_forward(int64_t batch, int64_t classes, const float* logits, const int32_t* labels,
                                     float smoothing, float* probabilities) {
  double total = 0.0;
  const double off_target = static_cast<double>(smoothing) / static_cast<double>(classes);
  for (int64_t n = 0; n < batch; ++n) {
    const float* z = logits + n * classes;
    float* p = probabilities + n * classes;
    const float max_logit = *std::max_element(z, z + classes);
    double sum = 0.0;
    for (int64_t c = 0; c < classes; ++c) {
      p[c] = std::exp(z[c] - max_logit);
      sum += p[c];
    }
    const double log_sum = std::log(sum);
    double loss = 0.0;
    for (int64_t c = 0; c < classes; ++c) {
      const double log_p = static_cast<double>(z[c] - max_logit) - log_sum;
      const double q = off_target + (c == labels[n] ? 1.0 - smoothing : 0.0);
      loss -= q * log_p;
      p[c] = static_cast<float>(static_cast<double>(p[c]) / sum);
    }
    total += loss;
  }
  return total / static_cast<double>(batch);
}

void softmax_cross_entropy_backward(int64_t batch, int64_t classes, const float* probabilities,
                                    const int32_t* labels, float smoothing, float loss_grad, float* dlogits) {
  const float scale = loss_grad / static_cast<float>(batch);
  const float off_target = smoothing / static_cast<float>(classes);
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t c = 0; c < classes; ++c) {
      const float q = off_target + (c == labels[n] ? 1.0f - smoothing : 0.0f);
      dlogits[n * classes + c] += (probabilities[n * classes + c] - q) * scale;
    }
  }
}

}  // namespace st::cpu
