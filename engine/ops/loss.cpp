// Softmax cross-entropy loss (with label smoothing) and the accuracy count.
#include <memory>

#include "engine/error.h"
#include "engine/ops.h"
#include "engine/ops/record.h"
#include "kernels/cpu/kernels.h"

namespace st::ops {

Variable softmax_cross_entropy(const Variable& logits, const std::vector<int32_t>& labels, float smoothing) {
  ST_CHECK(logits.value().ndim() == 2, "softmax_cross_entropy: logits {} must be [batch, classes]",
           shape_string(logits.shape()));
  const int64_t batch = logits.shape()[0], classes = logits.shape()[1];
  ST_CHECK(static_cast<int64_t>(labels.size()) == batch, "softmax_cross_entropy: {} labels for a batch of {}",
           labels.size(), batch);
  for (int32_t label : labels)
    ST_CHECK(label >= 0 && label < classes, "softmax_cross_entropy: label {} outside [0, {})", label, classes);
  const bool recording = should_record({&logits});
  Tensor probabilities = Tensor::empty(logits.shape());
  const double loss = cpu::softmax_cross_entropy_forward(batch, classes, logits.value().data(), labels.data(),
                                                         smoothing, probabilities.data());
  Variable y(Tensor::full({1}, static_cast<float>(loss)), recording);
  detail::record_backward(recording, y, [logits, probabilities, labels, smoothing, batch, classes](Tensor& dy) mutable {
    cpu::softmax_cross_entropy_backward(batch, classes, probabilities.data(), labels.data(), smoothing, dy.item(),
                                        logits.grad_buffer().data());
  });
  return y;
}

int64_t count_correct(const Tensor& logits, const std::vector<int32_t>& labels) {
  const int64_t batch = logits.dim(0), classes = logits.dim(1);
  int64_t correct = 0;
  for (int64_t n = 0; n < batch; ++n) {
    const float* row = logits.data() + n * classes;
    int64_t best = 0;
    for (int64_t c = 1; c < classes; ++c)
      if (row[c] > row[best]) best = c;
    if (best == labels[static_cast<std::size_t>(n)]) ++correct;
  }
  return correct;
}

}  // namespace st::ops
