// See sparse_kernels.h.
#include "engine/sparse_kernels.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "engine/error.h"
#include "engine/nn.h"
#include "engine/rng.h"
#include "kernels/cpu/kernels.h"

namespace st {
namespace {

std::atomic<SparseKernels> g_mode{SparseKernels::Off};
thread_local int g_dense_depth = 0;

// The fastest of 3 timed calls after one warm-up, in ms.
template <typename Call>
double fastest_ms(Call&& call) {
  call();
  double best = 1e300;
  for (int r = 0; r < 3; ++r) {
    const auto start = std::chrono::steady_clock::now();
    call();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

// Times one training step of the layer (forward, data and weight gradients) both ways on random data: a
// linear layer at `batch` rows, or the convolution `conv`.
void time_both(const nn::Parameter& p, const cpu::SparsePattern& pattern, int64_t batch, const Conv2dGeometry* conv,
               SparseForm& form) {
  const int64_t out = pattern.rows, in = pattern.cols;
  ST_CHECK(!conv || (conv->out_channels == out && conv->patch_size() == in),
           "sparse form of {}: the convolution {}x{}x{} -> {} does not match the pattern [{}, {}]", p.name,
           conv->kernel_h, conv->kernel_w, conv->in_channels, conv->out_channels, out, in);
  const int64_t x_count = conv ? conv->batch * conv->in_h * conv->in_w * conv->in_channels : batch * in;
  const int64_t y_count = conv ? conv->batch * conv->out_h() * conv->out_w() * out : batch * out;
  Rng rng(17);
  std::vector<float> x(static_cast<std::size_t>(x_count)), dy(static_cast<std::size_t>(y_count)), y(dy.size()),
      dx(x.size()), dw(static_cast<std::size_t>(out * in)), db(static_cast<std::size_t>(out)),
      values(static_cast<std::size_t>(pattern.nnz()));
  for (float& v : x) v = rng.normal();
  for (float& v : dy) v = rng.normal();
  const float* w = p.variable.value().data();
  form.dense_ms = fastest_ms([&] {
    if (conv) {
      cpu::conv2d_forward(*conv, x.data(), w, nullptr, y.data());
      cpu::conv2d_backward(*conv, x.data(), w, dy.data(), cpu::GradOut(dx.data(), true), dw.data(), nullptr);
    } else {
      cpu::linear_forward(batch, in, out, x.data(), w, db.data(), y.data());
      cpu::linear_backward(batch, in, out, x.data(), w, dy.data(), dx.data(), dw.data(), db.data());
    }
  });
  form.sparse_ms = fastest_ms([&] {
    cpu::sparse_gather(pattern, w, values.data());
    if (conv) {
      cpu::sparse_conv_forward(*conv, pattern, values.data(), x.data(), nullptr, y.data());
      cpu::sparse_conv_backward(*conv, pattern, values.data(), x.data(), dy.data(), cpu::GradOut(dx.data(), true),
                                dw.data(), nullptr);
    } else {
      cpu::sparse_linear_forward(batch, pattern, values.data(), x.data(), db.data(), y.data());
      cpu::sparse_linear_backward(batch, pattern, values.data(), x.data(), dy.data(), dx.data(), dw.data(), db.data());
    }
  });
  form.timed_batch = conv ? conv->batch : batch;
}

// Whether `form` was built from p's current mask (its storage, version and shape).
bool describes_mask(const SparseForm& form, const nn::Parameter& p) {
  const int64_t out = p.variable.value().dim(0);
  return form.pattern && form.mask_data == p.mask.data() && form.mask_version == p.mask_version &&
         form.pattern->rows == out && form.pattern->cols == p.variable.value().numel() / out;
}

}  // namespace

void set_sparse_kernels(SparseKernels mode) { g_mode = mode; }
SparseKernels sparse_kernels() { return g_mode; }

std::string sparse_kernels_name(SparseKernels mode) {
  switch (mode) {
    case SparseKernels::Off:
      return "off";
    case SparseKernels::On:
      return "on";
    case SparseKernels::Auto:
      return "auto";
  }
  return "off";
}

SparseKernels parse_sparse_kernels(const std::string& value, const std::string& flag) {
  if (value == "off") return SparseKernels::Off;
  if (value == "on") return SparseKernels::On;
  if (value == "auto") return SparseKernels::Auto;
  fail("{}: expected off, on or auto, got '{}'", flag, value);
}

DenseGradientScope::DenseGradientScope() { ++g_dense_depth; }
DenseGradientScope::~DenseGradientScope() { --g_dense_depth; }
bool dense_gradients_required() { return g_dense_depth > 0; }

bool sparse_path_allowed(const nn::Parameter& p) {
  return sparse_kernels() != SparseKernels::Off && p.mask.defined() && p.mask.device() == Device::CPU &&
         p.variable.value().device() == Device::CPU && !dense_gradients_required();
}

const SparseForm& refresh_sparse_form(nn::Parameter& p, int64_t batch, const Conv2dGeometry* conv) {
  ST_CHECK(p.mask.defined() && p.variable.value().ndim() >= 2 && p.variable.value().dim(0) > 0,
           "sparse form of {}: a masked weight [outputs, ...] expected", p.name);
  if (!p.sparse) p.sparse = std::make_shared<SparseForm>();
  SparseForm& form = *p.sparse;
  const SparseKernels mode = sparse_kernels();
  // [outputs, inputs]: a linear weight, or a conv's [K, R * S * C]
  if (form.mode == mode && describes_mask(form, p)) return form;
  const int64_t out = p.variable.value().dim(0), in = p.variable.value().numel() / out;
  form.pattern = std::make_shared<const cpu::SparsePattern>(cpu::sparse_pattern(out, in, p.mask.data()));
  form.mask_data = p.mask.data();
  form.mask_version = p.mask_version;
  form.mode = mode;
  form.dense_ms = form.sparse_ms = 0.0;
  form.timed_batch = 0;
  if (mode == SparseKernels::Auto && form.preset && form.preset_version == p.mask_version) {
    form.use_sparse = form.preset->use_sparse;
    form.dense_ms = form.preset->dense_ms;
    form.sparse_ms = form.preset->sparse_ms;
    form.timed_batch = form.preset->timed_batch;
    form.preset.reset();
  } else if (mode == SparseKernels::Auto) {
    time_both(p, *form.pattern, batch, conv, form);
    form.use_sparse = form.sparse_ms < form.dense_ms;
  } else {
    form.use_sparse = mode == SparseKernels::On;
  }
  return form;
}

std::optional<SparseChoice> current_sparse_choice(const nn::Parameter& p) {
  const SparseForm* form = p.sparse.get();
  // a restored decision not adopted yet (no forward since the resume) is still the one in force
  if (form != nullptr && form->preset && form->preset_version == p.mask_version && p.mask.defined() &&
      sparse_kernels() == SparseKernels::Auto)
    return *form->preset;
  if (form == nullptr || form->mode != SparseKernels::Auto || form->timed_batch == 0 || !p.mask.defined() ||
      !describes_mask(*form, p))
    return std::nullopt;
  return SparseChoice{form->use_sparse, form->dense_ms, form->sparse_ms, form->timed_batch};
}

void preset_sparse_choice(nn::Parameter& p, const SparseChoice& choice) {
  if (!p.sparse) p.sparse = std::make_shared<SparseForm>();
  p.sparse->preset = choice;
  p.sparse->preset_version = p.mask_version;
  p.sparse->mask_data = nullptr;  // the next refresh builds the form (and adopts the preset)
}

const SparseForm* current_sparse_form(const nn::Parameter& p) {
  const SparseForm* form = p.sparse.get();
  return form != nullptr && form->use_sparse && p.mask.defined() && describes_mask(*form, p) ? form : nullptr;
}

}  // namespace st
