// Elementwise ops on the GPU: the contract of the st::cpu functions of the same names
// (kernels/cpu/kernels.h: elementwise.cpp, concat.cpp, gelu.cpp) with raw device pointers and an
// explicit stream. Backward functions and accumulate* ACCUMULATE (+=); a null gradient is skipped.
// n == 0 (or rows == 0) launches nothing. All calls are asynchronous on `stream`; none allocates
// except column_sums (scratch from the caching allocator), so all are capturable into a CUDA graph.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

namespace st::cuda {

void fill(int64_t n, float value, float* y, cudaStream_t stream);  // y[i] = value (Tensor::fill)
void relu_forward(int64_t n, const float* x, float* y, cudaStream_t stream);
void relu_backward(int64_t n, const float* y, const float* dy, float* dx, cudaStream_t stream);  // uses the output
void relu6_forward(int64_t n, const float* x, float* y, cudaStream_t stream);
void relu6_backward(int64_t n, const float* y, const float* dy, float* dx, cudaStream_t stream);
void add_forward(int64_t n, const float* a, const float* b, float* y, cudaStream_t stream);
// y = max(0, a + b); backward: g = y > 0 ? dy : 0 accumulated into da and db (either may be null).
void add_relu_forward(int64_t n, const float* a, const float* b, float* y, cudaStream_t stream);
void add_relu_backward(int64_t n, const float* y, const float* dy, float* da, float* db, cudaStream_t stream);
void accumulate(int64_t n, const float* source, float* destination, cudaStream_t stream);  // destination += source
// sums[c] += sum over rows of x[row, c]; deterministic (fixed-order two-pass reduction).
void column_sums(int64_t rows, int64_t cols, const float* x, float* sums, cudaStream_t stream);
void scale_by_mask(int64_t n, const float* x, const float* scale, float* y, cudaStream_t stream);  // y = x * scale
void scale_forward(int64_t n, const float* x, float factor, float* y, cudaStream_t stream);        // y = factor x
void scale_backward(int64_t n, const float* dy, float factor, float* dx, cudaStream_t stream);     // dx += factor dy
void accumulate_scaled_by_mask(int64_t n, const float* dy, const float* scale, float* dx, cudaStream_t stream);

// Channel concatenation, rows = N*H*W, widths = channels of each input; the pointer vectors are host
// vectors of device pointers (one launch per input).
void concat_channels_forward(int64_t rows, const std::vector<const float*>& inputs, const std::vector<int64_t>& widths,
                             float* y, cudaStream_t stream);
void concat_channels_backward(int64_t rows, const std::vector<int64_t>& widths, const float* dy,
                              const std::vector<float*>& dx, cudaStream_t stream);  // dx[i] += slice i (null: skipped)

// Exact GELU: y = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), as cpu::gelu_forward/backward: when
// `derivative` is given (training), the forward also writes dy/dx = Phi(x) + x phi(x) there and the
// backward is dx += dy * derivative.
void gelu_forward(int64_t n, const float* x, float* y, float* derivative, cudaStream_t stream);
void gelu_backward(int64_t n, const float* derivative, const float* dy, float* dx, cudaStream_t stream);

}  // namespace st::cuda
