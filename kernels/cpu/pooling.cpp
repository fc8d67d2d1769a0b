// Pooling over NHWC: max (with the argmax saved for the backward), average (padded zeros count, as
// PyTorch's count_include_pad=True), global average, and the option-A ResNet shortcut (strided
// identity with zero-padded channels), which is a pooling-like gather.
#include <cstring>
#include <limits>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/window.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace st::cpu {

namespace {

#if defined(__AVX512F__)
// One output pixel, channels in blocks of 16 (the last one masked): the first tap inside the image is
// taken as it is, every later one where it is greater (ordered compare: the first maximum wins ties, a
// NaN already taken stays, a later NaN is not taken), as the scalar loop below.
inline void max_pool_pixel(const Pool2dGeometry& g, const float* image, int64_t oh, int64_t ow, float* out,
                           int32_t* arg) {
  const int64_t c_count = g.channels;
  const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  for (int64_t cb = 0; cb < c_count; cb += 16) {
    const auto mask = static_cast<__mmask16>(c_count - cb >= 16 ? 0xFFFF : (1u << (c_count - cb)) - 1u);
    __m512 best = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    __m512i index = _mm512_set1_epi32(-1);
    bool first = true;
    for_each_tap_in_image(oh, ow, g.kernel, g.kernel, g.stride, g.pad, g.in_h, g.in_w, [&](int64_t, int64_t pixel) {
      const int64_t base = pixel * c_count + cb;
      const __m512 v = _mm512_maskz_loadu_ps(mask, image + base);
      const __m512i at = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(base)), lanes);
      const __mmask16 take = first ? mask : _mm512_mask_cmp_ps_mask(mask, v, best, _CMP_GT_OQ);
      best = _mm512_mask_blend_ps(take, best, v);
      index = _mm512_mask_blend_epi32(take, index, at);
      first = false;
    });
    _mm512_mask_storeu_ps(out + cb, mask, best);
    _mm512_mask_storeu_epi32(arg + cb, mask, index);
  }
}
#else
inline void max_pool_pixel(const Pool2dGeometry& g, const float* image, int64_t oh, int64_t ow, float* out,
                           int32_t* arg) {
  const int64_t c_count = g.channels;
  for (int64_t c = 0; c < c_count; ++c) {
    out[c] = -std::numeric_limits<float>::infinity();
    arg[c] = -1;
  }
  bool first = true;
  for_each_tap_in_image(oh, ow, g.kernel, g.kernel, g.stride, g.pad, g.in_h, g.in_w, [&](int64_t, int64_t pixel) {
    const int64_t base = pixel * c_count;
    for (int64_t c = 0; c < c_count; ++c) {
      const float v = image[base + c];
      if (first || v > out[c]) {
        out[c] = v;
        arg[c] = static_cast<int32_t>(base + c);
      }
    }
    first = false;
  });
}
#endif

}  // namespace

// Windows with no tap inside the image (pool_geometry rules them out) give -inf and argmax -1.
void max_pool_forward(const Pool2dGeometry& g, const float* x, float* y, int32_t* argmax) {
  const int64_t oh_count = g.out_h(), ow_count = g.out_w(), c_count = g.channels;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t oh = 0; oh < oh_count; ++oh) {
      const float* image = x + n * g.in_h * g.in_w * c_count;
      for (int64_t ow = 0; ow < ow_count; ++ow) {
        const int64_t at = ((n * oh_count + oh) * ow_count + ow) * c_count;
        max_pool_pixel(g, image, oh, ow, y + at, argmax + at);
      }
    }
  }
}

void max_pool_backward(const Pool2dGeometry& g, const int32_t* argmax, const float* dy, float* dx) {
  const int64_t per_image_out = g.out_h() * g.out_w() * g.channels;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < g.batch; ++n) {
    float* image = dx + n * g.in_h * g.in_w * g.channels;
    for (int64_t i = 0; i < per_image_out; ++i) {
      const int64_t index = n * per_image_out + i;
      if (argmax[index] >= 0) image[argmax[index]] += dy[index];
    }
  }
}

void avg_pool_forward(const Pool2dGeometry& g, const float* x, float* y) {
  const int64_t oh_count = g.out_h(), ow_count = g.out_w(), c_count = g.channels;
  const float inv_area = 1.0f / static_cast<float>(g.kernel * g.kernel);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t oh = 0; oh < oh_count; ++oh) {
      const float* image = x + n * g.in_h * g.in_w * c_count;
      for (int64_t ow = 0; ow < ow_count; ++ow) {
        float* out = y + ((n * oh_count + oh) * ow_count + ow) * c_count;
        for (int64_t c = 0; c < c_count; ++c) out[c] = 0.0f;
        for_each_tap_in_image(oh, ow, g.kernel, g.kernel, g.stride, g.pad, g.in_h, g.in_w, [&](int64_t, int64_t pixel) {
          const float* in = image + pixel * c_count;
          for (int64_t c = 0; c < c_count; ++c) out[c] += in[c];
        });
        for (int64_t c = 0; c < c_count; ++c) out[c] *= inv_area;
      }
    }
  }
}

void avg_pool_backward(const Pool2dGeometry& g, const float* dy, float* dx) {
  const int64_t oh_count = g.out_h(), ow_count = g.out_w(), c_count = g.channels;
  const float inv_area = 1.0f / static_cast<float>(g.kernel * g.kernel);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < g.batch; ++n) {
    float* image = dx + n * g.in_h * g.in_w * c_count;
    for (int64_t oh = 0; oh < oh_count; ++oh) {
      for (int64_t ow = 0; ow < ow_count; ++ow) {
        const float* grad = dy + ((n * oh_count + oh) * ow_count + ow) * c_count;
        for_each_tap_in_image(oh, ow, g.kernel, g.kernel, g.stride, g.pad, g.in_h, g.in_w, [&](int64_t, int64_t pixel) {
          float* out = image + pixel * c_count;
          for (int64_t c = 0; c < c_count; ++c) out[c] += grad[c] * inv_area;
        });
      }
    }
  }
}

void global_avg_pool_forward(int64_t batch, int64_t pixels, int64_t channels, const float* x, float* y) {
  const float inv_pixels = 1.0f / static_cast<float>(pixels);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < batch; ++n) {
    float* out = y + n * channels;
    for (int64_t c = 0; c < channels; ++c) out[c] = 0.0f;
    for (int64_t p = 0; p < pixels; ++p) {
      const float* in = x + (n * pixels + p) * channels;
      for (int64_t c = 0; c < channels; ++c) out[c] += in[c];
    }
    for (int64_t c = 0; c < channels; ++c) out[c] *= inv_pixels;
  }
}

void global_avg_pool_backward(int64_t batch, int64_t pixels, int64_t channels, const float* dy, float* dx) {
  const float inv_pixels = 1.0f / static_cast<float>(pixels);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < batch; ++n) {
    const float* grad = dy + n * channels;
    for (int64_t p = 0; p < pixels; ++p) {
      float* out = dx + (n * pixels + p) * channels;
      for (int64_t c = 0; c < channels; ++c) out[c] += grad[c] * inv_pixels;
    }
  }
}

void pad_shortcut_forward(const PadShortcutGeometry& g, const float* x, float* y) {
  const int64_t oh_count = g.out_h(), ow_count = g.out_w(), before = g.pad_before();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t oh = 0; oh < oh_count; ++oh) {
      for (int64_t ow = 0; ow < ow_count; ++ow) {
        float* out = y + ((n * oh_count + oh) * ow_count + ow) * g.out_channels;
        const float* in = x + ((n * g.in_h + oh * g.stride) * g.in_w + ow * g.stride) * g.in_channels;
        std::memset(out, 0, static_cast<std::size_t>(g.out_channels) * sizeof(float));
        std::memcpy(out + before, in, static_cast<std::size_t>(g.in_channels) * sizeof(float));
      }
    }
  }
}

void pad_shortcut_backward(const PadShortcutGeometry& g, const float* dy, float* dx) {
  const int64_t oh_count = g.out_h(), ow_count = g.out_w(), before = g.pad_before();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t oh = 0; oh < oh_count; ++oh) {
      for (int64_t ow = 0; ow < ow_count; ++ow) {
        const float* grad = dy + ((n * oh_count + oh) * ow_count + ow) * g.out_channels + before;
        float* out = dx + ((n * g.in_h + oh * g.stride) * g.in_w + ow * g.stride) * g.in_channels;
        for (int64_t c = 0; c < g.in_channels; ++c) out[c] += grad[c];
      }
    }
  }
}

}  // namespace st::cpu
