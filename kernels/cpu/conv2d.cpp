// 2-D convolution, NHWC activations and KRSC weights, as im2col + sgemm per group.
//   forward:  col[rows = N*OH*OW, patch = R*S*C/G] ; y[:, group] = col * W_group^T (+ b)
//   backward: dW_group += dy[:, group]^T * col ;  dcol = dy[:, group] * W_group ; dx += col2im(dcol)
// Work is split over images: each thread owns whole images (disjoint dx, its own dW partial), and
// images are processed in chunks small enough that the patch matrix stays in cache. dW partials are
// summed in thread order, so results are deterministic for a given thread count. A 1x1 stride-1
// unpadded convolution needs no patch matrix: the NHWC input already is one.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/allocator.h"
#include "kernels/cpu/kernels.h"

namespace st::cpu {
namespace {

constexpr int64_t kTargetChunkBytes = 512 << 10;  // patch matrix kept in L2 (tuned on resnet20)

bool is_pointwise(const Conv2dGeometry& g) {
  return g.kernel_h == 1 && g.kernel_w == 1 && g.stride == 1 && g.pad == 0 && g.groups == 1;
}

int64_t images_per_chunk(const Conv2dGeometry& g) {
  const int64_t bytes_per_image = g.out_h() * g.out_w() * g.patch_size() * static_cast<int64_t>(sizeof(float));
  return std::clamp<int64_t>(kTargetChunkBytes / std::max<int64_t>(bytes_per_image, 1), 1, g.batch);
}

// Patch matrix of `images` images starting at `first_image`, for one group. A patch row is laid out
// (r, s, c); with one group and stride 1 the kernel_w taps of one kernel row are kernel_w adjacent
// NHWC pixels, i.e. one contiguous run of kernel_w * C floats, copied at once away from the border.
void im2col(const Conv2dGeometry& g, const float* x, int64_t first_image, int64_t images, int64_t group, float* col) {
  const int64_t oh_count = g.out_h(), ow_count = g.out_w(), cg = g.in_per_group(), patch = g.patch_size();
  const int64_t run = g.kernel_w * cg;
  const bool contiguous_taps = g.groups == 1;
  for (int64_t n = 0; n < images; ++n) {
    const float* image = x + (first_image + n) * g.in_h * g.in_w * g.in_channels + group * cg;
    for (int64_t oh = 0; oh < oh_count; ++oh) {
      for (int64_t ow = 0; ow < ow_count; ++ow) {
        float* row = col + ((n * oh_count + oh) * ow_count + ow) * patch;
        const int64_t iw0 = ow * g.stride - g.pad;
        const bool inside_w = iw0 >= 0 && iw0 + g.kernel_w <= g.in_w;
        for (int64_t r = 0; r < g.kernel_h; ++r) {
          const int64_t ih = oh * g.stride - g.pad + r;
          float* destination = row + r * run;
          if (ih < 0 || ih >= g.in_h) {
            for (int64_t i = 0; i < run; ++i) destination[i] = 0.0f;
            continue;
          }
          const float* line = image + ih * g.in_w * g.in_channels;
          if (contiguous_taps && inside_w) {
            const float* source = line + iw0 * g.in_channels;
            for (int64_t i = 0; i < run; ++i) destination[i] = source[i];
            continue;
          }
          for (int64_t s = 0; s < g.kernel_w; ++s) {
            const int64_t iw = iw0 + s;
            float* tap = destination + s * cg;
            if (iw < 0 || iw >= g.in_w) {
              for (int64_t c = 0; c < cg; ++c) tap[c] = 0.0f;
            } else {
              const float* source = line + iw * g.in_channels;
              for (int64_t c = 0; c < cg; ++c) tap[c] = source[c];
            }
          }
        }
      }
    }
  }
}

// dx += col2im(dcol) for the same images and group (the adjoint of im2col, same contiguous runs).
void col2im_accumulate(const Conv2dGeometry& g, const float* dcol, int64_t first_image, int64_t images, int64_t group,
                       float* dx) {
  const int64_t oh_count = g.out_h(), ow_count = g.out_w(), cg = g.in_per_group(), patch = g.patch_size();
  const int64_t run = g.kernel_w * cg;
  const bool contiguous_taps = g.groups == 1;
  for (int64_t n = 0; n < images; ++n) {
    float* image = dx + (first_image + n) * g.in_h * g.in_w * g.in_channels + group * cg;
    for (int64_t oh = 0; oh < oh_count; ++oh) {
      for (int64_t ow = 0; ow < ow_count; ++ow) {
        const float* row = dcol + ((n * oh_count + oh) * ow_count + ow) * patch;
        const int64_t iw0 = ow * g.stride - g.pad;
        const bool inside_w = iw0 >= 0 && iw0 + g.kernel_w <= g.in_w;
        for (int64_t r = 0; r < g.kernel_h; ++r) {
          const int64_t ih = oh * g.stride - g.pad + r;
          if (ih < 0 || ih >= g.in_h) continue;
          const float* source = row + r * run;
          float* line = image + ih * g.in_w * g.in_channels;
          if (contiguous_taps && inside_w) {
            float* destination = line + iw0 * g.in_channels;
            for (int64_t i = 0; i < run; ++i) destination[i] += source[i];
            continue;
          }
          for (int64_t s = 0; s < g.kernel_w; ++s) {
            const int64_t iw = iw0 + s;
            if (iw < 0 || iw >= g.in_w) continue;
            float* destination = line + iw * g.in_channels;
            for (int64_t c = 0; c < cg; ++c) destination[c] += source[s * cg + c];
          }
        }
      }
    }
  }
}

// Static split of [0, count) into `parts` contiguous ranges; part `index` gets [begin, end).
void split_range(int64_t count, int parts, int index, int64_t& begin, int64_t& end) {
  begin = count * index / parts;
  end = count * (index + 1) / parts;
}

}  // namespace

namespace {

// y = conv(x, w) + b, or y += conv(x, w) when accumulate (then b must be null).
void conv2d_forward_into(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y,
                         bool accumulate) {
  if (conv2d_planar_supported(g)) {
    conv2d_forward_planar(g, x, w, b, y, accumulate);
    return;
  }
  if (conv2d_direct_supported(g)) {
    conv2d_forward_direct(g, x, w, b, y, accumulate);
    return;
  }
  const int64_t pixels = g.out_h() * g.out_w(), k = g.out_channels, kg = g.out_per_group(), patch = g.patch_size();
  const int64_t chunk = images_per_chunk(g);
  const bool pointwise = is_pointwise(g);
#pragma omp parallel
  {
    int64_t image_begin = 0, image_end = 0;
    split_range(g.batch, omp_get_num_threads(), omp_get_thread_num(), image_begin, image_end);
    HostBuffer col(static_cast<std::size_t>(pointwise ? 0 : chunk * pixels * patch));
    for (int64_t first = image_begin; first < image_end; first += chunk) {
      const int64_t images = std::min(chunk, image_end - first);
      const int64_t rows = images * pixels;
      float* y_chunk = y + first * pixels * k;
      if (b != nullptr)
        for (int64_t row = 0; row < rows; ++row)
          for (int64_t j = 0; j < k; ++j) y_chunk[row * k + j] = b[j];
      const float beta = (b != nullptr || accumulate) ? 1.0f : 0.0f;
      for (int64_t group = 0; group < g.groups; ++group) {
        const float* patches = x + first * pixels * g.in_channels;
        if (!pointwise) {
          im2col(g, x, first, images, group, col.data());
          patches = col.data();
        }
        gemm(false, true, rows, kg, patch, 1.0f, patches, patch, w + group * kg * patch, patch, beta,
             y_chunk + group * kg, k);
      }
    }
  }
}

// The data gradient of a stride-1 ungrouped convolution is itself a stride-1 convolution of dy with
// the kernel rotated by 180 degrees and in/out channels swapped, padded by R - 1 - pad:
//   dx[n, h, w, c] = sum_{r, s, k} dy[n, h + pad - r, w + pad - s, k] * W[k, r, s, c]
// so, where the direct kernel applies, it runs as a forward convolution instead of a thin GEMM
// followed by col2im.
Conv2dGeometry data_gradient_geometry(const Conv2dGeometry& g) {
  Conv2dGeometry t;
  t.batch = g.batch;
  t.in_h = g.out_h();
  t.in_w = g.out_w();
  t.in_channels = g.out_channels;
  t.out_channels = g.in_channels;
  t.kernel_h = g.kernel_h;
  t.kernel_w = g.kernel_w;
  t.stride = 1;
  t.pad = g.kernel_h - 1 - g.pad;
  return t;
}

bool data_gradient_as_forward(const Conv2dGeometry& g) {
  // Not to fewer than 8 input channels: padded to 8 output channels of the transposed convolution, the
  // direct kernel lost to sgemm + col2im there (lenet5's 6 -> 16 5x5: 0.43 -> 0.68 ms).
  return g.stride == 1 && g.groups == 1 && g.kernel_h == g.kernel_w && g.pad <= g.kernel_h - 1 &&
         g.in_channels >= 8 && conv2d_direct_supported(data_gradient_geometry(g));
}

void conv2d_backward_data_as_forward(const Conv2dGeometry& g, const float* w, const float* dy, GradOut dx) {
  HostBuffer rotated(static_cast<std::size_t>(g.weight_numel()));
  const int64_t r_count = g.kernel_h, s_count = g.kernel_w, c_count = g.in_channels, k_count = g.out_channels;
  for (int64_t k = 0; k < k_count; ++k)
    for (int64_t r = 0; r < r_count; ++r)
      for (int64_t s = 0; s < s_count; ++s)
        for (int64_t c = 0; c < c_count; ++c)
          rotated.data()[((c * r_count + (r_count - 1 - r)) * s_count + (s_count - 1 - s)) * k_count + k] =
              w[((k * r_count + r) * s_count + s) * c_count + c];
  conv2d_forward_into(data_gradient_geometry(g), dy, rotated.data(), nullptr, dx.data, !dx.overwrite);
}

}  // namespace

void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y) {
  if (conv2d_depthwise_supported(g)) {
    conv2d_depthwise_forward(g, x, w, b, y);
    return;
  }
  conv2d_forward_into(g, x, w, b, y, false);
}

void conv2d_backward(const Conv2dGeometry& g, const float* x, const float* w, const float* dy, GradOut dx_out,
                     float* dw, float* db) {
  const int64_t pixels = g.out_h() * g.out_w(), k = g.out_channels, kg = g.out_per_group(), patch = g.patch_size();
  const int64_t chunk = images_per_chunk(g);
  const bool pointwise = is_pointwise(g);
  float* dx = dx_out.data;
  if (dx != nullptr && data_gradient_as_forward(g)) {
    conv2d_backward_data_as_forward(g, w, dy, dx_out);
    dx = nullptr;
  }
  // The paths below add into dx (col2im and the depthwise kernel scatter into overlapping windows):
  // a fresh dx is zeroed first, per chunk of images where the chunk loop below owns it.
  const bool zero_dx = dx != nullptr && dx_out.overwrite;
  const int64_t image_floats = g.in_h * g.in_w * g.in_channels;
  if (conv2d_depthwise_supported(g)) {
    if (zero_dx) {
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < g.batch * image_floats; ++i) dx[i] = 0.0f;
    }
    conv2d_depthwise_backward(g, x, w, dy, dx, dw, db);
    return;
  }
  // The direct weight gradient on every image size: on resnet's 8x8 stage it once lost to im2col + sgemm,
  // but with its register-blocked 8/16-channel blocks it wins there too (convbench, one thread:
  // 32 -> 32 at 8x8 80 -> 101 GFLOP/s, 64 -> 64 93 -> 97).
  if (dw != nullptr && conv2d_planar_supported(g)) {
    if (db != nullptr) column_sums(g.batch * pixels, k, dy, db);
    conv2d_weight_gradient_planar(g, x, dy, dw);
    dw = nullptr;
    db = nullptr;
  }
  if (dw != nullptr && conv2d_direct_weight_gradient_supported(g)) {
    if (db != nullptr) column_sums(g.batch * pixels, k, dy, db);
    conv2d_weight_gradient_direct(g, x, dy, dw);
    dw = nullptr;
    db = nullptr;
  }
  if (dx == nullptr && dw == nullptr && db == nullptr) return;
  const int threads = thread_count();
  std::vector<float*> dw_partials(static_cast<std::size_t>(threads), nullptr);
  const std::size_t dw_bytes = static_cast<std::size_t>(g.weight_numel()) * sizeof(float);
  if (db != nullptr) column_sums(g.batch * pixels, k, dy, db);
#pragma omp parallel num_threads(threads)
  {
    const int thread = omp_get_thread_num();
    int64_t image_begin = 0, image_end = 0;
    split_range(g.batch, omp_get_num_threads(), thread, image_begin, image_end);
    HostBuffer col(static_cast<std::size_t>(pointwise ? 0 : chunk * pixels * patch));
    HostBuffer dcol(static_cast<std::size_t>(pointwise || dx == nullptr ? 0 : chunk * pixels * patch));
    float* dw_partial = nullptr;
    if (dw != nullptr) {
      dw_partial = static_cast<float*>(host_allocate(dw_bytes));
      std::memset(dw_partial, 0, dw_bytes);
      dw_partials[static_cast<std::size_t>(thread)] = dw_partial;
    }
    for (int64_t first = image_begin; first < image_end; first += chunk) {
      const int64_t images = std::min(chunk, image_end - first);
      const int64_t rows = images * pixels;
      const float* dy_chunk = dy + first * pixels * k;
      for (int64_t group = 0; group < g.groups; ++group) {
        const float* w_group = w + group * kg * patch;
        if (dw != nullptr) {
          const float* patches = x + first * pixels * g.in_channels;
          if (!pointwise) {
            im2col(g, x, first, images, group, col.data());
            patches = col.data();
          }
          gemm(true, false, kg, patch, rows, 1.0f, dy_chunk + group * kg, k, patches, patch, 1.0f,
               dw_partial + group * kg * patch, patch);
        }
        if (dx != nullptr) {
          if (pointwise) {
            gemm(false, false, rows, patch, kg, 1.0f, dy_chunk, k, w_group, patch, zero_dx ? 0.0f : 1.0f,
                 dx + first * pixels * g.in_channels, g.in_channels);
          } else {
            if (zero_dx && group == 0) std::fill(dx + first * image_floats, dx + (first + images) * image_floats, 0.0f);
            gemm(false, false, rows, patch, kg, 1.0f, dy_chunk + group * kg, k, w_group, patch, 0.0f, dcol.data(), patch);
            col2im_accumulate(g, dcol.data(), first, images, group, dx);
          }
        }
      }
    }
  }
  if (dw != nullptr) {
    const int64_t n = g.weight_numel();
    for (float* partial : dw_partials) {
      if (partial == nullptr) continue;
      for (int64_t i = 0; i < n; ++i) dw[i] += partial[i];
      host_free(partial, dw_bytes);
    }
  }
}

}  // namespace st::cpu
