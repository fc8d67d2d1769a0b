// The window walk shared by the CPU pooling kernels and the depthwise convolution (NHWC): the taps of
// one output pixel of a strided, zero-padded kernel_h x kernel_w window that fall inside the image.
#pragma once

#include <cstdint>

namespace st::cpu {

// Calls visit(tap, pixel) for each tap (r * kernel_w + s) of output pixel (oh, ow) inside the
// in_h x in_w image, in (r, s) order; pixel = ih * in_w + iw (multiply by the channel count for the
// NHWC offset). Padded taps are skipped.
template <typename Visit>
inline void for_each_tap_in_image(int64_t oh, int64_t ow, int64_t kernel_h, int64_t kernel_w, int64_t stride,
                                  int64_t pad, int64_t in_h, int64_t in_w, Visit&& visit) {
  for (int64_t r = 0; r < kernel_h; ++r) {
    const int64_t ih = oh * stride - pad + r;
    if (ih < 0 || ih >= in_h) continue;
    for (int64_t s = 0; s < kernel_w; ++s) {
      const int64_t iw = ow * stride - pad + s;
      if (iw < 0 || iw >= in_w) continue;
      visit(r * kernel_w + s, ih * in_w + iw);
    }
  }
}

}  // namespace st::cpu
