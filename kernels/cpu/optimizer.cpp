// Masked optimizer steps, one fused pass per tensor (the design's step loop):
//   SGD (PyTorch semantics, Sutskever et al. 2013 momentum):
//     g += wd * w ; v = mu * v + (1 - dampening) * g ; d = nesterov ? g + mu * v : v ; w -= lr * d
//     (each "a * b + c" one fused multiply-add, written out: sgd_element)
//     (v starts at 0, so the first step equals PyTorch's v = g when dampening = 0)
//   Adam (Kingma & Ba 2015; decoupled = AdamW, Loshchilov & Hutter 2019):
//     m = b1 m + (1 - b1) g ; v = b2 v + (1 - b2) g^2 ; w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
//   RMSProp (PyTorch semantics): s = a s + (1 - a) g^2 ; u = g / (sqrt(s) + eps) ;
//     with momentum: b = mu b + u, w -= lr b ; else w -= lr u
// Then, where mask == 0, the weight AND its optimizer state are set to exactly 0, so no momentum can
// resurrect a pruned weight. A select (not a multiply) keeps this exact even for inf/NaN.
// Each step also has a pattern form (*_step_pattern): the same element function at the kept entries of
// a CSR pattern only, for a weight computed by the sparse kernels.
#include <cmath>

#include "kernels/cpu/kernels.h"

namespace st::cpu {

namespace {

// One element of the SGD step with explicit fused multiply-adds, so the dense masked loop and the loop
// over a sparsity pattern compute every kept weight bit-identically whatever the compiler contracts.
struct SgdElement {
  float w, v;
};
template <bool kMomentum, bool kNesterov>
inline SgdElement sgd_element(float w, float g, float velocity, float lr, float mu, float wd, float damp) {
  float grad = std::fma(wd, w, g);
  float v = 0.0f;
  if constexpr (kMomentum) {
    v = std::fma(mu, velocity, damp * grad);
    grad = kNesterov ? std::fma(mu, v, grad) : v;
  }
  return {std::fma(-lr, grad, w), v};
}

// The loop body is specialised on the (momentum, nesterov, mask) combination so each loop is
// branch-free and vectorises.
template <bool kMomentum, bool kNesterov, bool kMasked>
void sgd_loop(int64_t n, float* w, const float* g, float* velocity, const float* mask, const SgdHyper& h) {
  const float lr = h.lr, mu = h.momentum, wd = h.weight_decay, damp = 1.0f - h.dampening;
#pragma omp parallel for simd schedule(static) if (n > 16384)
  for (int64_t i = 0; i < n; ++i) {
    const bool kept = !kMasked || mask[i] != 0.0f;
    const SgdElement u = sgd_element<kMomentum, kNesterov>(w[i], g[i], kMomentum ? velocity[i] : 0.0f, lr, mu, wd, damp);
    if constexpr (kMomentum) velocity[i] = kept ? u.v : 0.0f;
    w[i] = kept ? u.w : 0.0f;
  }
}

template <bool kMomentum, bool kNesterov>
void sgd_pattern_loop(int64_t rows, int64_t cols, const int64_t* row_start, const int32_t* col_index, float* w,
                      const float* g, float* velocity, const SgdHyper& h) {
  const float lr = h.lr, mu = h.momentum, wd = h.weight_decay, damp = 1.0f - h.dampening;
#pragma omp parallel for schedule(static) if (row_start[rows] > 2048)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = row_start[r]; j < row_start[r + 1]; ++j) {
      const int64_t i = r * cols + col_index[j];
      const SgdElement u = sgd_element<kMomentum, kNesterov>(w[i], g[i], kMomentum ? velocity[i] : 0.0f, lr, mu, wd, damp);
      if constexpr (kMomentum) velocity[i] = u.v;
      w[i] = u.w;
    }
}

}  // namespace

void sgd_step_pattern(int64_t rows, int64_t cols, const int64_t* row_start, const int32_t* col_index, float* w,
                      const float* g, float* velocity, const SgdHyper& h) {
  if (h.momentum == 0.0f || velocity == nullptr) {
    sgd_pattern_loop<false, false>(rows, cols, row_start, col_index, w, g, velocity, h);
  } else if (h.nesterov) {
    sgd_pattern_loop<true, true>(rows, cols, row_start, col_index, w, g, velocity, h);
  } else {
    sgd_pattern_loop<true, false>(rows, cols, row_start, col_index, w, g, velocity, h);
  }
}

void sgd_step(int64_t n, float* w, const float* g, float* velocity, const float* mask, const SgdHyper& h) {
  const bool momentum = h.momentum != 0.0f && velocity != nullptr;
  const bool masked = mask != nullptr;
  if (!momentum) {
    masked ? sgd_loop<false, false, true>(n, w, g, velocity, mask, h) : sgd_loop<false, false, false>(n, w, g, velocity, mask, h);
  } else if (h.nesterov) {
    masked ? sgd_loop<true, true, true>(n, w, g, velocity, mask, h) : sgd_loop<true, true, false>(n, w, g, velocity, mask, h);
  } else {
    masked ? sgd_loop<true, false, true>(n, w, g, velocity, mask, h) : sgd_loop<true, false, false>(n, w, g, velocity, mask, h);
  }
}

namespace {

// Adam's and RMSProp's elements with explicit fused multiply-adds, shared by the dense masked loops and
// the pattern loops (bit-identical kept weights, as sgd_element).
struct AdamConstants {
  float lr, b1, b2, eps, wd, step_size, inv_sqrt_correction2;
  bool decoupled;
  explicit AdamConstants(const AdamHyper& h)
      : lr(h.lr), b1(h.beta1), b2(h.beta2), eps(h.eps), wd(h.weight_decay), step_size(0.0f),
        inv_sqrt_correction2(0.0f), decoupled(h.decoupled) {
    const auto t = static_cast<double>(h.step);
    const auto correction1 = static_cast<float>(1.0 - std::pow(static_cast<double>(h.beta1), t));
    const auto correction2 = static_cast<float>(1.0 - std::pow(static_cast<double>(h.beta2), t));
    step_size = h.lr / correction1;
    inv_sqrt_correction2 = 1.0f / std::sqrt(correction2);
  }
};
struct AdamElement {
  float w, m, v;
};
inline AdamElement adam_element(float w, float g, float m, float v, const AdamConstants& c) {
  float weight = w, grad = g;
  if (c.decoupled) {
    weight = std::fma(-(c.lr * c.wd), weight, weight);
  } else {
    grad = std::fma(c.wd, weight, grad);
  }
  const float m_new = std::fma(c.b1, m, (1.0f - c.b1) * grad);
  const float v_new = std::fma(c.b2, v, ((1.0f - c.b2) * grad) * grad);
  const float denominator = std::fma(std::sqrt(v_new), c.inv_sqrt_correction2, c.eps);
  return {weight - (c.step_size * m_new) / denominator, m_new, v_new};
}

struct RmsPropElement {
  float w, s, b;
};
template <bool kMomentum>
inline RmsPropElement rmsprop_element(float w, float g, float square_avg, float buffer, const RmsPropHyper& h) {
  const float grad = std::fma(h.weight_decay, w, g);
  const float s = std::fma(h.alpha, square_avg, ((1.0f - h.alpha) * grad) * grad);
  float update = grad / (std::sqrt(s) + h.eps);
  float b = 0.0f;
  if constexpr (kMomentum) {
    b = std::fma(h.momentum, buffer, update);
    update = b;
  }
  return {std::fma(-h.lr, update, w), s, b};
}

template <bool kMomentum>
void rmsprop_loop(int64_t n, float* w, const float* g, float* square_avg, float* momentum_buffer, const float* mask,
                  const RmsPropHyper& h) {
#pragma omp parallel for simd schedule(static) if (n > 16384)
  for (int64_t i = 0; i < n; ++i) {
    const bool kept = mask == nullptr || mask[i] != 0.0f;
    const RmsPropElement u =
        rmsprop_element<kMomentum>(w[i], g[i], square_avg[i], kMomentum ? momentum_buffer[i] : 0.0f, h);
    if constexpr (kMomentum) momentum_buffer[i] = kept ? u.b : 0.0f;
    square_avg[i] = kept ? u.s : 0.0f;
    w[i] = kept ? u.w : 0.0f;
  }
}

template <bool kMomentum>
void rmsprop_pattern_loop(int64_t rows, int64_t cols, const int64_t* row_start, const int32_t* col_index, float* w,
                          const float* g, float* square_avg, float* momentum_buffer, const RmsPropHyper& h) {
#pragma omp parallel for schedule(static) if (row_start[rows] > 2048)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = row_start[r]; j < row_start[r + 1]; ++j) {
      const int64_t i = r * cols + col_index[j];
      const RmsPropElement u =
          rmsprop_element<kMomentum>(w[i], g[i], square_avg[i], kMomentum ? momentum_buffer[i] : 0.0f, h);
      if constexpr (kMomentum) momentum_buffer[i] = u.b;
      square_avg[i] = u.s;
      w[i] = u.w;
    }
}

}  // namespace

void adam_step(int64_t n, float* w, const float* g, float* m, float* v, const float* mask, const AdamHyper& h) {
  const AdamConstants c(h);
#pragma omp parallel for simd schedule(static) if (n > 16384)
  for (int64_t i = 0; i < n; ++i) {
    const bool kept = mask == nullptr || mask[i] != 0.0f;
    const AdamElement u = adam_element(w[i], g[i], m[i], v[i], c);
    m[i] = kept ? u.m : 0.0f;
    v[i] = kept ? u.v : 0.0f;
    w[i] = kept ? u.w : 0.0f;
  }
}

void adam_step_pattern(int64_t rows, int64_t cols, const int64_t* row_start, const int32_t* col_index, float* w,
                       const float* g, float* m, float* v, const AdamHyper& h) {
  const AdamConstants c(h);
#pragma omp parallel for schedule(static) if (row_start[rows] > 2048)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = row_start[r]; j < row_start[r + 1]; ++j) {
      const int64_t i = r * cols + col_index[j];
      const AdamElement u = adam_element(w[i], g[i], m[i], v[i], c);
      m[i] = u.m;
      v[i] = u.v;
      w[i] = u.w;
    }
}

void rmsprop_step(int64_t n, float* w, const float* g, float* square_avg, float* momentum_buffer, const float* mask,
                  const RmsPropHyper& h) {
  if (h.momentum != 0.0f && momentum_buffer != nullptr) {
    rmsprop_loop<true>(n, w, g, square_avg, momentum_buffer, mask, h);
  } else {
    rmsprop_loop<false>(n, w, g, square_avg, momentum_buffer, mask, h);
  }
}

void rmsprop_step_pattern(int64_t rows, int64_t cols, const int64_t* row_start, const int32_t* col_index, float* w,
                          const float* g, float* square_avg, float* momentum_buffer, const RmsPropHyper& h) {
  if (h.momentum != 0.0f && momentum_buffer != nullptr) {
    rmsprop_pattern_loop<true>(rows, cols, row_start, col_index, w, g, square_avg, momentum_buffer, h);
  } else {
    rmsprop_pattern_loop<false>(rows, cols, row_start, col_index, w, g, square_avg, momentum_buffer, h);
  }
}

void apply_mask(int64_t n, float* w, const float* mask) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) w[i] = mask[i] != 0.0f ? w[i] : 0.0f;
}

}  // namespace st::cpu
