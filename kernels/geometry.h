// Shapes of the layer ops, shared by every backend (cpu/, cuda/, vendor/). Activations are NHWC,
// convolution weights KRSC = (out_channels, kernel_h, kernel_w, in_channels / groups).
#pragma once

#include <cstdint>
#include <vector>

namespace st {

struct Conv2dGeometry {
  int64_t batch = 0, in_h = 0, in_w = 0, in_channels = 0;
  int64_t out_channels = 0, kernel_h = 0, kernel_w = 0;
  int64_t stride = 1, pad = 0, groups = 1;

  int64_t out_h() const { return (in_h + 2 * pad - kernel_h) / stride + 1; }
  int64_t out_w() const { return (in_w + 2 * pad - kernel_w) / stride + 1; }
  int64_t in_per_group() const { return in_channels / groups; }
  int64_t out_per_group() const { return out_channels / groups; }
  // Length of one im2col row = one output pixel's receptive field (per group).
  int64_t patch_size() const { return kernel_h * kernel_w * in_per_group(); }
  int64_t weight_numel() const { return out_channels * patch_size(); }
  // Multiply-accumulates of the forward pass (FLOPs = 2 * macs).
  int64_t macs() const { return batch * out_h() * out_w() * out_channels * patch_size(); }
};

// The convolution of an NHWC input of shape x by a KRSC weight of shape w (4 entries each; the caller
// checks them).
inline Conv2dGeometry conv2d_geometry(const std::vector<int64_t>& x, const std::vector<int64_t>& w, int64_t stride,
                                      int64_t pad, int64_t groups = 1) {
  Conv2dGeometry g;
  g.batch = x[0];
  g.in_h = x[1];
  g.in_w = x[2];
  g.in_channels = x[3];
  g.out_channels = w[0];
  g.kernel_h = w[1];
  g.kernel_w = w[2];
  g.stride = stride;
  g.pad = pad;
  g.groups = groups;
  return g;
}

struct Pool2dGeometry {
  int64_t batch = 0, in_h = 0, in_w = 0, channels = 0;
  int64_t kernel = 2, stride = 2, pad = 0;

  int64_t out_h() const { return (in_h + 2 * pad - kernel) / stride + 1; }
  int64_t out_w() const { return (in_w + 2 * pad - kernel) / stride + 1; }
};

// Option-A ResNet shortcut (He et al. 2016): identity subsampled by `stride`, channels zero-padded
// equally on both sides from in_channels to out_channels.
struct PadShortcutGeometry {
  int64_t batch = 0, in_h = 0, in_w = 0, in_channels = 0, out_channels = 0, stride = 1;
  int64_t out_h() const { return (in_h + stride - 1) / stride; }
  int64_t out_w() const { return (in_w + stride - 1) / stride; }
  int64_t pad_before() const { return (out_channels - in_channels) / 2; }
};

}  // namespace st
