// Softmax cross-entropy loss (with label smoothing) and the accuracy count.
#include <memory>

#include "engine/error.h"
#include "engine/ops.h"
#include "engine/ops/gpu_kernels.h"
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
  if (detail::op_device("softmax_cross_entropy", {&logits}) == Device::CUDA) {
    // Labels uploaded once per call; the loss stays on the device (read back by item() when needed),
    // and the backward reads the loss gradient on the device too: no host synchronisation.
    auto device_labels = std::make_shared<gpu::DeviceInts>(labels);
    Tensor probabilities = Tensor::empty(logits.shape(), Device::CUDA);
    Variable y(Tensor::empty({1}, Device::CUDA), recording);
    gpu::softmax_cross_entropy_forward(batch, classes, logits.value().data(), device_labels->data(), smoothing,
                                       probabilities.data(), y.value().data());
    detail::record_backward(recording, y,
                            [logits, probabilities, device_labels, smoothing, batch, classes](Tensor& dy) mutable {
                              gpu::softmax_cross_entropy_backward(batch, classes, probabilities.data(),
                                                                  device_labels->data(), smoothing, dy.data(),
                                                                  logits.grad_buffer().data());
                            });
    return y;
  }
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
  if (logits.device() == Device::CUDA) {
    ST_CHECK(static_cast<int64_t>(labels.size()) >= batch, "count_correct: {} labels for a batch of {}",
             labels.size(), batch);
    const gpu::DeviceInts device_labels(std::vector<int32_t>(labels.begin(), labels.begin() + batch));
    return gpu::count_correct(batch, classes, logits.data(), device_labels.data());
  }
  const std::vector<int32_t> predicted = argmax_rows(logits);
  int64_t correct = 0;
  for (int64_t n = 0; n < batch; ++n)
    if (predicted[static_cast<std::size_t>(n)] == labels[static_cast<std::size_t>(n)]) ++correct;
  return correct;
}

std::vector<int32_t> argmax_rows(const Tensor& logits) {
  if (logits.device() != Device::CPU) return argmax_rows(logits.to(Device::CPU));
  const int64_t batch = logits.dim(0), classes = logits.dim(1);
  std::vector<int32_t> predicted(static_cast<std::size_t>(batch));
  for (int64_t n = 0; n < batch; ++n) {
    const float* row = logits.data() + n * classes;
    int64_t best = 0;
    for (int64_t c = 1; c < classes; ++c)
      if (row[c] > row[best]) best = c;
    predicted[static_cast<std::size_t>(n)] = static_cast<int32_t>(best);
  }
  return predicted;
}

}  // namespace st::ops
