// Concatenation along the channel (last, NHWC) axis, DenseNet's join: row r of the output is the rows
// r of the inputs side by side. The backward hands each input its slice of the gradient.
#include <cstring>

#include "kernels/cpu/kernels.h"

namespace st::cpu {

void concat_channels_forward(int64_t rows, const std::vector<const float*>& inputs,
                             const std::vector<int64_t>& widths, float* y) {
  int64_t total = 0;
  for (int64_t w : widths) total += w;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    float* out = y + row * total;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      std::memcpy(out, inputs[i] + row * widths[i], static_cast<std::size_t>(widths[i]) * sizeof(float));
      out += widths[i];
    }
  }
}

void concat_channels_backward(int64_t rows, const std::vector<int64_t>& widths, const float* dy,
                              const std::vector<float*>& dx) {
  int64_t total = 0;
  for (int64_t w : widths) total += w;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    const float* grad = dy + row * total;
    for (std::size_t i = 0; i < widths.size(); ++i) {
      if (dx[i] != nullptr) {
        float* out = dx[i] + row * widths[i];
        for (int64_t c = 0; c < widths[i]; ++c) out[c] += grad[c];
      }
      grad += widths[i];
    }
  }
}

}  // namespace st::cpu
