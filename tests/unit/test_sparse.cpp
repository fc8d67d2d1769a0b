// The sparse linear kernels (kernels/cpu/sparse.h) against a double-precision dense reference with the
// mask applied, at densities 100%, 50%, 10%, 1% and 0% (empty rows and an empty layer), odd shapes and
// batches that are not a multiple of the 16-image block (and past 8 blocks, one register tile); the
// weight gradient must be accumulated at the pattern's entries only (every other entry keeps its old
// value).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/rng.h"
#include "kernels/cpu/sparse.h"

namespace {

using Floats = std::vector<float>;

Floats normal(std::size_t n, st::Rng& rng) {
  Floats v(n);
  for (float& x : v) x = rng.normal();
  return v;
}

// max |got - want| / max |want| (0 when both are 0).
double error(const Floats& got, const std::vector<double>& want) {
  double worst = 0.0, scale = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  return worst == 0.0 ? 0.0 : worst / std::max(scale, 1e-30);
}

// The weight gradient is computed at the mask's non-zeros only: a pruned entry keeps its prior value.
void check_pruned_untouched(const Floats& mask, const Floats& dw, const Floats& dw0) {
  for (std::size_t i = 0; i < mask.size(); ++i)
    if (mask[i] == 0.0f && dw[i] != dw0[i]) {
      FAIL_CHECK("dw changed at pruned entry " << i);
      break;
    }
}

void check_linear(int64_t batch, int64_t rows, int64_t cols, double density, uint64_t seed) {
  CAPTURE(batch);
  CAPTURE(rows);
  CAPTURE(cols);
  CAPTURE(density);
  st::Rng rng(seed);
  const auto n_w = static_cast<std::size_t>(rows * cols);
  Floats mask(n_w), w = normal(n_w, rng);
  for (float& m : mask) m = rng.uniform() < density ? 1.0f : 0.0f;
  for (std::size_t i = 0; i < n_w; ++i) w[i] *= mask[i];
  const Floats x = normal(static_cast<std::size_t>(batch * cols), rng), b = normal(static_cast<std::size_t>(rows), rng),
               dy = normal(static_cast<std::size_t>(batch * rows), rng);
  const Floats dx0 = normal(x.size(), rng), dw0 = normal(n_w, rng), db0 = normal(b.size(), rng);
  // double reference
  std::vector<double> y_ref(dy.size()), dx_ref(dx0.begin(), dx0.end()), dw_ref(dw0.begin(), dw0.end()),
      db_ref(db0.begin(), db0.end());
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t r = 0; r < rows; ++r) {
      double sum = b[static_cast<std::size_t>(r)];
      for (int64_t c = 0; c < cols; ++c)
        sum +=
            static_cast<double>(w[static_cast<std::size_t>(r * cols + c)]) * x[static_cast<std::size_t>(n * cols + c)];
      y_ref[static_cast<std::size_t>(n * rows + r)] = sum;
      const double g = dy[static_cast<std::size_t>(n * rows + r)];
      db_ref[static_cast<std::size_t>(r)] += g;
      for (int64_t c = 0; c < cols; ++c) {
        const auto i = static_cast<std::size_t>(r * cols + c);
        dx_ref[static_cast<std::size_t>(n * cols + c)] += g * w[i];
        if (mask[i] != 0.0f) dw_ref[i] += g * x[static_cast<std::size_t>(n * cols + c)];
      }
    }
  const st::cpu::SparsePattern pattern = st::cpu::sparse_pattern(rows, cols, mask.data());
  int64_t kept = 0;
  for (float m : mask) kept += m != 0.0f;
  REQUIRE(pattern.nnz() == kept);
  Floats values(static_cast<std::size_t>(pattern.nnz()));
  st::cpu::sparse_gather(pattern, w.data(), values.data());
  Floats y(dy.size(), std::nanf("")), dx = dx0, dw = dw0, db = db0;
  st::cpu::sparse_linear_forward(batch, pattern, values.data(), x.data(), b.data(), y.data());
  st::cpu::sparse_linear_backward(batch, pattern, values.data(), x.data(), dy.data(), dx.data(), dw.data(), db.data());
  CHECK(error(y, y_ref) < 1e-5);
  CHECK(error(dx, dx_ref) < 1e-5);
  CHECK(error(dw, dw_ref) < 1e-5);
  CHECK(error(db, db_ref) < 1e-5);
  check_pruned_untouched(mask, dw, dw0);
  // bit-identical on repeat
  Floats y2(dy.size()), dx2 = dx0, dw2 = dw0;
  st::cpu::sparse_linear_forward(batch, pattern, values.data(), x.data(), b.data(), y2.data());
  st::cpu::sparse_linear_backward(batch, pattern, values.data(), x.data(), dy.data(), dx2.data(), dw2.data(), nullptr);
  CHECK(y2 == y);
  CHECK(dx2 == dx);
  CHECK(dw2 == dw);
  // the forward's blocked input kept for the backward gives the same results
  Floats xt(static_cast<std::size_t>(st::cpu::sparse_linear_blocked_size(batch, cols)));
  Floats y3(dy.size()), dx3 = dx0, dw3 = dw0, db3 = db0;
  st::cpu::sparse_linear_forward(batch, pattern, values.data(), x.data(), b.data(), y3.data(), xt.data());
  st::cpu::sparse_linear_backward(batch, pattern, values.data(), x.data(), dy.data(), dx3.data(), dw3.data(),
                                  db3.data(), xt.data());
  CHECK(y3 == y);
  CHECK(dx3 == dx);
  CHECK(dw3 == dw);
  CHECK(db3 == db);
}

struct ConvCase {
  int64_t batch, h, w, c, k, kernel, stride, pad;
};

// The sparse convolution against a double-precision direct reference (NHWC x KRSC) with the mask applied;
// dx is checked both accumulated (+= into a prefilled buffer) and overwritten.
void check_conv(const ConvCase& cc, double density, uint64_t seed) {
  CAPTURE(cc.batch);
  CAPTURE(cc.h);
  CAPTURE(cc.c);
  CAPTURE(cc.k);
  CAPTURE(cc.kernel);
  CAPTURE(cc.stride);
  CAPTURE(cc.pad);
  CAPTURE(density);
  st::Conv2dGeometry g;
  g.batch = cc.batch;
  g.in_h = cc.h;
  g.in_w = cc.w;
  g.in_channels = cc.c;
  g.out_channels = cc.k;
  g.kernel_h = g.kernel_w = cc.kernel;
  g.stride = cc.stride;
  g.pad = cc.pad;
  const int64_t oh_n = g.out_h(), ow_n = g.out_w(), patch = g.patch_size();
  st::Rng rng(seed);
  const auto n_w = static_cast<std::size_t>(g.weight_numel());
  Floats mask(n_w), w = normal(n_w, rng);
  for (float& m : mask) m = rng.uniform() < density ? 1.0f : 0.0f;
  for (std::size_t i = 0; i < n_w; ++i) w[i] *= mask[i];
  const auto n_x = static_cast<std::size_t>(g.batch * g.in_h * g.in_w * g.in_channels);
  const auto n_y = static_cast<std::size_t>(g.batch * oh_n * ow_n * g.out_channels);
  const Floats x = normal(n_x, rng), b = normal(static_cast<std::size_t>(g.out_channels), rng), dy = normal(n_y, rng);
  const Floats dx0 = normal(n_x, rng), dw0 = normal(n_w, rng), db0 = normal(b.size(), rng);
  std::vector<double> y_ref(n_y), dx_ref(n_x, 0.0), dw_ref(dw0.begin(), dw0.end()), db_ref(db0.begin(), db0.end());
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t oh = 0; oh < oh_n; ++oh)
      for (int64_t ow = 0; ow < ow_n; ++ow)
        for (int64_t k = 0; k < g.out_channels; ++k) {
          const auto yi = static_cast<std::size_t>(((n * oh_n + oh) * ow_n + ow) * g.out_channels + k);
          double sum = b[static_cast<std::size_t>(k)];
          const double gy = dy[yi];
          db_ref[static_cast<std::size_t>(k)] += gy;
          for (int64_t r = 0; r < g.kernel_h; ++r)
            for (int64_t s = 0; s < g.kernel_w; ++s) {
              const int64_t ih = oh * g.stride + r - g.pad, iw = ow * g.stride + s - g.pad;
              if (ih < 0 || ih >= g.in_h || iw < 0 || iw >= g.in_w) continue;
              for (int64_t c = 0; c < g.in_channels; ++c) {
                const auto wi = static_cast<std::size_t>(k * patch + (r * g.kernel_w + s) * g.in_channels + c);
                const auto xi = static_cast<std::size_t>(((n * g.in_h + ih) * g.in_w + iw) * g.in_channels + c);
                sum += static_cast<double>(w[wi]) * x[xi];
                dx_ref[xi] += gy * w[wi];
                if (mask[wi] != 0.0f) dw_ref[wi] += gy * x[xi];
              }
            }
          y_ref[yi] = sum;
        }
  const st::cpu::SparsePattern pattern = st::cpu::sparse_pattern(g.out_channels, patch, mask.data());
  Floats values(static_cast<std::size_t>(pattern.nnz()));
  st::cpu::sparse_gather(pattern, w.data(), values.data());
  Floats y(n_y, std::nanf("")), dx(n_x, std::nanf("")), dx_acc = dx0, dw = dw0, db = db0;
  st::cpu::sparse_conv_forward(g, pattern, values.data(), x.data(), b.data(), y.data());
  st::cpu::sparse_conv_backward(g, pattern, values.data(), x.data(), dy.data(), st::cpu::GradOut(dx.data(), true),
                                dw.data(), db.data());
  st::cpu::sparse_conv_backward(g, pattern, values.data(), x.data(), dy.data(), dx_acc.data(), nullptr, nullptr);
  std::vector<double> dx_acc_ref(dx_ref);
  for (std::size_t i = 0; i < n_x; ++i) dx_acc_ref[i] += dx0[i];
  CHECK(error(y, y_ref) < 1e-5);
  CHECK(error(dx, dx_ref) < 1e-5);
  CHECK(error(dx_acc, dx_acc_ref) < 1e-5);
  CHECK(error(dw, dw_ref) < 1e-5);
  CHECK(error(db, db_ref) < 1e-5);
  check_pruned_untouched(mask, dw, dw0);
  // bit-identical on repeat
  Floats y2(n_y), dx2(n_x), dw2 = dw0;
  st::cpu::sparse_conv_forward(g, pattern, values.data(), x.data(), b.data(), y2.data());
  st::cpu::sparse_conv_backward(g, pattern, values.data(), x.data(), dy.data(), st::cpu::GradOut(dx2.data(), true),
                                dw2.data(), nullptr);
  CHECK(y2 == y);
  CHECK(dx2 == dx);
  CHECK(dw2 == dw);
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("sparse linear: forward, data and weight gradients equal the masked dense reference") {
    struct Shape {
      int64_t batch, rows, cols;
    };
    const Shape shapes[] = {{1, 1, 1},      {7, 13, 17},  {70, 300, 784}, {130, 100, 300},
                             {64, 10, 100}, {129, 33, 5}, {128, 37, 50},  {272, 20, 40}};
    uint64_t seed = 1;
    for (double density : {1.0, 0.5, 0.1, 0.01, 0.0})
      for (const Shape& s : shapes) check_linear(s.batch, s.rows, s.cols, density, seed++);
  }

  TEST_CASE("sparse convolution: forward, data and weight gradients equal the masked dense reference") {
    // 3x3 pad 1 at strides 1 and 2, 1x1 stride 2 (projection shortcuts), 5x5 pad 2 and unpadded 3x3, odd
    // sizes, batches that are not a multiple of the 16 lanes, one input channel, rows wider than a tile
    const ConvCase cases[] = {{1, 1, 1, 1, 1, 1, 1, 0},   {3, 5, 7, 3, 4, 3, 1, 1},   {17, 9, 9, 5, 6, 3, 2, 1},
                              {20, 8, 8, 6, 7, 1, 2, 0},  {5, 11, 10, 2, 3, 5, 1, 2}, {18, 7, 6, 4, 5, 3, 1, 0},
                              {16, 6, 37, 1, 8, 3, 1, 1}, {2, 13, 13, 3, 2, 3, 2, 0}, {33, 4, 4, 16, 16, 3, 1, 1}};
    uint64_t seed = 100;
    for (double density : {1.0, 0.5, 0.1, 0.01, 0.0})
      for (const ConvCase& c : cases) check_conv(c, density, seed++);
  }

  TEST_CASE("sparse pattern: CSR and CSC describe the same entries") {
    const Floats mask = {0, 1, 1,   //
                         0, 0, 0,   //
                         1, 0, 1};  // 3 x 3, an empty row
    const st::cpu::SparsePattern p = st::cpu::sparse_pattern(3, 3, mask.data());
    CHECK(p.row_start == std::vector<int64_t>{0, 2, 2, 4});
    CHECK(p.col_index == std::vector<int32_t>{1, 2, 0, 2});
    CHECK(p.col_start == std::vector<int64_t>{0, 1, 2, 4});
    CHECK(p.row_index == std::vector<int32_t>{2, 0, 0, 2});
    CHECK(p.csr_position == std::vector<int64_t>{2, 0, 1, 3});
  }
}

// ---- the compute form inside nn::Linear (engine/sparse_kernels.h) ------------------------------------

#include "engine/autograd.h"
#include "engine/nn.h"
#include "engine/ops.h"
#include "engine/sparse_kernels.h"
#include "pruning/random_mask.h"
#include "tests/test_helpers.h"

namespace {

struct ModeScope {  // sets --sparse-kernels for one test and restores off
  explicit ModeScope(st::SparseKernels mode) { st::set_sparse_kernels(mode); }
  ~ModeScope() { st::set_sparse_kernels(st::SparseKernels::Off); }
  ModeScope(const ModeScope&) = delete;
  ModeScope& operator=(const ModeScope&) = delete;
};

struct StepResult {
  Floats y, dx, dw;
};

// One forward and backward of `layer` (weight w) on x with the loss sum(y * r).
StepResult step(st::nn::Module& layer, st::nn::Parameter& w, const st::Tensor& x, const st::Tensor& r) {
  for (st::nn::Parameter* p : layer.parameters()) p->variable.zero_grad();
  st::Tape tape;
  st::Variable input(x.clone(), true), y;
  {
    st::TapeScope scope(tape);
    y = layer.forward(input);
  }
  REQUIRE(y.shape() == r.shape());
  tape.backward(y, r);
  return {y.value().to_vector(), input.grad().to_vector(), w.grad().to_vector()};
}

double error_f(const Floats& got, const Floats& want) {
  return error(got, std::vector<double>(want.begin(), want.end()));
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE(
      "sparse kernels in nn::Linear: on equals off at the kept weights, pruned gradients stay 0, forms follow "
      "the mask") {
    st::Rng rng(3);
    st::nn::Linear layer(300, 100, true, rng);
    st::Rng mask_rng(4);
    st::pruning::apply_random_masks(layer.parameters(), 0.1, mask_rng);
    st::nn::Parameter& w = layer.weight();
    const st::Tensor x = st::testing::random_tensor({70, 300}, rng), r = st::testing::random_tensor({70, 100}, rng);
    const Floats mask = w.mask.to_vector();

    StepResult dense, sparse;
    {
      const ModeScope off(st::SparseKernels::Off);
      dense = step(layer, w, x, r);
      CHECK(!w.sparse);  // off: no form is built
    }
    {
      const ModeScope on(st::SparseKernels::On);
      sparse = step(layer, w, x, r);
      REQUIRE(w.sparse);
      CHECK(w.sparse->use_sparse);
      CHECK(w.sparse->pattern->nnz() == w.kept());
    }
    CHECK(error_f(sparse.y, dense.y) < 1e-5);
    CHECK(error_f(sparse.dx, dense.dx) < 1e-5);
    Floats dense_kept = dense.dw, sparse_kept = sparse.dw;
    int64_t pruned_nonzero = 0;
    for (std::size_t i = 0; i < mask.size(); ++i)
      if (mask[i] == 0.0f) {
        pruned_nonzero += sparse.dw[i] != 0.0f;
        dense_kept[i] = sparse_kept[i] = 0.0f;
      }
    CHECK(pruned_nonzero == 0);  // the sparse weight gradient touches only kept weights
    CHECK(error_f(sparse_kept, dense_kept) < 1e-5);

    {  // a DenseGradientScope (RigL's update steps) runs dense: pruned weights get their gradients
      const ModeScope on(st::SparseKernels::On);
      const st::DenseGradientScope dense_scope;
      const StepResult forced = step(layer, w, x, r);
      CHECK(forced.dw == dense.dw);
    }
    {  // a new mask (its writer bumps mask_version): the form is rebuilt at the next forward
      const ModeScope on(st::SparseKernels::On);
      const uint64_t version = w.mask_version;
      st::Rng other(9);
      st::pruning::apply_random_masks(layer.parameters(), 0.3, other);
      CHECK(w.mask_version > version);
      const StepResult again = step(layer, w, x, r);
      CHECK(w.sparse->pattern->nnz() == w.kept());
      const ModeScope off(st::SparseKernels::Off);
      const StepResult reference = step(layer, w, x, r);
      CHECK(error_f(again.y, reference.y) < 1e-5);
    }
    {  // auto: both paths timed on the layer's shape, the faster kept
      const ModeScope automatic(st::SparseKernels::Auto);
      step(layer, w, x, r);
      CHECK(w.sparse->mode == st::SparseKernels::Auto);
      CHECK(w.sparse->dense_ms > 0.0);
      CHECK(w.sparse->sparse_ms > 0.0);
      CHECK(w.sparse->timed_batch == 70);
      CHECK(w.sparse->use_sparse == (w.sparse->sparse_ms < w.sparse->dense_ms));
      const auto choice = st::current_sparse_choice(w);
      REQUIRE(choice);
      CHECK(choice->use_sparse == w.sparse->use_sparse);
      CHECK(choice->dense_ms == w.sparse->dense_ms);
    }
    {  // a restored decision (resume) is adopted for the current mask instead of timing, then forgotten
      const ModeScope automatic(st::SparseKernels::Auto);
      w.mask_changed();                                   // as a checkpoint load does
      const st::SparseChoice saved{true, 7.0, 9.0, 123};  // sparse although "slower": not re-timed
      st::preset_sparse_choice(w, saved);
      REQUIRE(st::current_sparse_choice(w));  // in force before the next forward (a save right after resuming)
      CHECK(st::current_sparse_choice(w)->dense_ms == 7.0);
      step(layer, w, x, r);
      CHECK(w.sparse->use_sparse);
      CHECK(w.sparse->dense_ms == 7.0);
      CHECK(w.sparse->sparse_ms == 9.0);
      CHECK(w.sparse->timed_batch == 123);
      CHECK(st::current_sparse_choice(w)->sparse_ms == 9.0);
      w.mask_changed();  // a later mask change times again
      step(layer, w, x, r);
      CHECK(w.sparse->timed_batch == 70);
      st::preset_sparse_choice(w, saved);  // a preset for an older mask version is ignored
      w.mask_changed();
      step(layer, w, x, r);
      CHECK(w.sparse->timed_batch == 70);
    }
    {  // on and off record no decision
      const ModeScope on(st::SparseKernels::On);
      step(layer, w, x, r);
      CHECK_FALSE(st::current_sparse_choice(w));
    }
  }
}

#include "kernels/cpu/kernels.h"

namespace {

// Whether two arrays are equal bit for bit (reports the first difference).
bool same_bits(const Floats& a, const Floats& b, const char* what) {
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) {
      FAIL_CHECK(what << " entry " << i << ": " << a[i] << " vs " << b[i]);
      return false;
    }
  return true;
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("adam_step_pattern and rmsprop_step_pattern equal the dense masked steps bit for bit") {
    st::Rng rng(22);
    const int64_t rows = 29, cols = 41;
    const auto n = static_cast<std::size_t>(rows * cols);
    Floats mask(n);
    for (float& m : mask) m = rng.uniform() < 0.25 ? 1.0f : 0.0f;
    Floats w = normal(n, rng), s1 = normal(n, rng), s2 = normal(n, rng);
    const Floats g = normal(n, rng);
    for (std::size_t i = 0; i < n; ++i) {
      s2[i] = std::fabs(s2[i]);  // a second moment is not negative
      if (mask[i] == 0.0f) w[i] = s1[i] = s2[i] = 0.0f;
    }
    const st::cpu::SparsePattern pattern = st::cpu::sparse_pattern(rows, cols, mask.data());
    for (const bool decoupled : {false, true}) {
      CAPTURE(decoupled);
      Floats wd = w, md = s1, vd = s2, ws = w, ms = s1, vs = s2;
      for (int64_t step = 1; step <= 3; ++step) {
        const st::cpu::AdamHyper h{1e-3f, 0.9f, 0.999f, 1e-8f, 5e-4f, decoupled, step};
        st::cpu::adam_step(rows * cols, wd.data(), g.data(), md.data(), vd.data(), mask.data(), h);
        st::cpu::adam_step_pattern(rows, cols, pattern.row_start.data(), pattern.col_index.data(), ws.data(), g.data(),
                                   ms.data(), vs.data(), h);
      }
      CHECK(same_bits(ws, wd, "adam w"));
      CHECK(same_bits(ms, md, "adam m"));
      CHECK(same_bits(vs, vd, "adam v"));
      CHECK(ws != w);  // the kept weights moved
    }
    for (const float momentum : {0.0f, 0.9f}) {
      CAPTURE(momentum);
      Floats wd = w, sd = s2, bd = s1, ws = w, ss = s2, bs = s1;
      for (int step = 0; step < 3; ++step) {
        const st::cpu::RmsPropHyper h{1e-2f, 0.99f, 1e-8f, 5e-4f, momentum};
        st::cpu::rmsprop_step(rows * cols, wd.data(), g.data(), sd.data(), bd.data(), mask.data(), h);
        st::cpu::rmsprop_step_pattern(rows, cols, pattern.row_start.data(), pattern.col_index.data(), ws.data(),
                                      g.data(), ss.data(), bs.data(), h);
      }
      CHECK(same_bits(ws, wd, "rmsprop w"));
      CHECK(same_bits(ss, sd, "rmsprop square_avg"));
      if (momentum != 0.0f) CHECK(same_bits(bs, bd, "rmsprop momentum"));
      CHECK(ws != w);
    }
  }

  TEST_CASE("sgd_step_pattern equals the dense masked SGD step bit for bit (momentum, Nesterov, none)") {
    st::Rng rng(21);
    const int64_t rows = 37, cols = 53;
    const auto n = static_cast<std::size_t>(rows * cols);
    Floats mask(n);
    for (float& m : mask) m = rng.uniform() < 0.2 ? 1.0f : 0.0f;
    Floats w = normal(n, rng), v = normal(n, rng);
    const Floats g = normal(n, rng);
    for (std::size_t i = 0; i < n; ++i)
      if (mask[i] == 0.0f) w[i] = v[i] = 0.0f;  // the state a dense masked step leaves
    const st::cpu::SparsePattern pattern = st::cpu::sparse_pattern(rows, cols, mask.data());
    for (const auto& [momentum, nesterov] : {std::pair{0.9f, false}, std::pair{0.9f, true}, std::pair{0.0f, false}}) {
      CAPTURE(momentum);
      CAPTURE(nesterov);
      const st::cpu::SgdHyper h{0.05f, momentum, 0.0f, 5e-4f, nesterov};
      Floats w_dense = w, v_dense = v, w_sparse = w, v_sparse = v;
      for (int step = 0; step < 3; ++step) {
        st::cpu::sgd_step(rows * cols, w_dense.data(), g.data(), v_dense.data(), mask.data(), h);
        st::cpu::sgd_step_pattern(rows, cols, pattern.row_start.data(), pattern.col_index.data(), w_sparse.data(),
                                  g.data(), v_sparse.data(), h);
      }
      for (std::size_t i = 0; i < n; ++i)
        if (w_sparse[i] != w_dense[i] || v_sparse[i] != v_dense[i]) {
          FAIL_CHECK("entry " << i << " (mask " << mask[i] << "): w " << w_sparse[i] << " vs " << w_dense[i] << ", v "
                              << v_sparse[i] << " vs " << v_dense[i]);
          break;
        }
    }
  }
}

namespace {

// One nn::Conv2d step with the sparse kernels on against off: equal at the kept weights, pruned weights'
// gradients stay 0, and the form has the [K, R*S*C] pattern.
void check_conv_layer(int64_t c, int64_t k, int64_t kernel, int64_t stride, int64_t pad, const st::Shape& input,
                      uint64_t seed) {
  CAPTURE(kernel);
  CAPTURE(stride);
  st::Rng rng(seed);
  st::nn::Conv2d conv(c, k, kernel, stride, pad, true, rng);
  st::Rng mask_rng(seed + 1);
  st::pruning::apply_random_masks(conv.parameters(), 0.2, mask_rng);
  st::nn::Parameter& w = *conv.parameters()[0];
  REQUIRE(w.kind == st::nn::ParameterKind::ConvWeight);
  const int64_t oh = (input[1] + 2 * pad - kernel) / stride + 1, ow = (input[2] + 2 * pad - kernel) / stride + 1;
  const st::Tensor x = st::testing::random_tensor(input, rng),
                   r = st::testing::random_tensor({input[0], oh, ow, k}, rng);
  const Floats mask = w.mask.to_vector();
  StepResult dense, sparse;
  {
    const ModeScope off(st::SparseKernels::Off);
    dense = step(conv, w, x, r);
  }
  {
    const ModeScope on(st::SparseKernels::On);
    sparse = step(conv, w, x, r);
    REQUIRE(w.sparse);
    CHECK(w.sparse->use_sparse);
    CHECK(w.sparse->pattern->rows == k);
    CHECK(w.sparse->pattern->cols == kernel * kernel * c);
    CHECK(w.sparse->pattern->nnz() == w.kept());
    CHECK(w.uses_per_sample == oh * ow);
  }
  CHECK(error_f(sparse.y, dense.y) < 1e-5);
  CHECK(error_f(sparse.dx, dense.dx) < 1e-5);
  Floats dense_kept = dense.dw, sparse_kept = sparse.dw;
  int64_t pruned_nonzero = 0;
  for (std::size_t i = 0; i < mask.size(); ++i)
    if (mask[i] == 0.0f) {
      pruned_nonzero += sparse.dw[i] != 0.0f;
      dense_kept[i] = sparse_kept[i] = 0.0f;
    }
  CHECK(pruned_nonzero == 0);
  CHECK(error_f(sparse_kept, dense_kept) < 1e-5);
  {  // auto: timed on the layer's geometry
    const ModeScope automatic(st::SparseKernels::Auto);
    step(conv, w, x, r);
    CHECK(w.sparse->dense_ms > 0.0);
    CHECK(w.sparse->sparse_ms > 0.0);
    const bool pointwise = kernel == 1 && stride == 1;  // timed as a linear layer over the N*H*W pixels
    CHECK(w.sparse->timed_batch == (pointwise ? input[0] * oh * ow : input[0]));
    CHECK(w.sparse->use_sparse == (w.sparse->sparse_ms < w.sparse->dense_ms));
  }
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE(
      "sparse kernels in nn::Conv2d (pointwise through the linear kernels, 3x3 and strided through the "
      "sparse convolution): on equals off at the kept weights") {
    check_conv_layer(24, 40, 1, 1, 0, {2, 5, 7, 24}, 31);  // pointwise: linear kernels over the pixels
    check_conv_layer(5, 12, 3, 1, 1, {19, 9, 8, 5}, 33);   // 3x3 pad 1, 19 images: a partial 16-image block
    check_conv_layer(6, 10, 3, 2, 1, {3, 11, 11, 6}, 35);  // 3x3 stride 2
    check_conv_layer(8, 16, 1, 2, 0, {4, 8, 8, 8}, 37);    // 1x1 stride 2 (projection shortcut)
    {  // a kernel larger than the padded input (3x3 stride 2 unpadded on 2x2: one output) stays dense
      st::Rng rng(41);
      st::nn::Conv2d conv(3, 4, 3, 2, 0, false, rng);
      st::Rng m(42);
      st::pruning::apply_random_masks(conv.parameters(), 0.5, m);
      const ModeScope on(st::SparseKernels::On);
      const st::Variable y = conv.forward(st::Variable(st::Tensor::full({2, 2, 2, 3}, 0.5f)));
      CHECK(y.shape() == st::Shape{2, 1, 1, 4});
      CHECK(!conv.parameters()[0]->sparse);
      // and the op itself refuses it, naming the sizes
      const st::nn::Parameter& w = *conv.parameters()[0];
      const auto pattern =
          std::make_shared<const st::cpu::SparsePattern>(st::cpu::sparse_pattern(4, 27, w.mask.data()));
      CHECK_THROWS_WITH(st::ops::sparse_conv2d(st::Variable(st::Tensor::full({2, 2, 2, 3}, 0.5f)), w.variable,
                                               st::Variable(), 2, 0, pattern),
                        doctest::Contains("kernel 3x3 larger than the padded input 2x2"));
    }
    {  // grouped (depthwise) convolutions have no sparse kernel: they stay dense under on
      st::Rng rng(39);
      st::nn::Conv2d depthwise(4, 4, 3, 1, 1, false, rng, 4);
      st::Rng m(40);
      st::pruning::apply_random_masks(depthwise.parameters(), 0.5, m);
      const ModeScope on(st::SparseKernels::On);
      depthwise.forward(st::Variable(st::Tensor::full({1, 6, 6, 4}, 0.5f)));
      CHECK(!depthwise.parameters()[0]->sparse);
    }
  }
}

#include "engine/optim.h"
#include "pruning/dynamic.h"

namespace {

// Whether the CSR pattern lists exactly the non-zeros of mask [rows, cols].
bool pattern_matches(const st::cpu::SparsePattern& p, const float* mask) {
  int64_t entry = 0;
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t c = 0; c < p.cols; ++c)
      if (mask[r * p.cols + c] != 0.0f) {
        if (entry >= p.row_start[static_cast<std::size_t>(r + 1)] || p.col_index[static_cast<std::size_t>(entry)] != c)
          return false;
        ++entry;
      }
  return entry == p.nnz();
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE(
      "masked SGD, Adam and RMSProp on a sparse weight: after the mask changes, pruned weights and all their "
      "optimizer state are 0") {
    for (const char* name : {"adam", "rmsprop", "sgd"}) {  // sgd last: the DST part below goes on with it
      CAPTURE(name);
      st::Rng rng(41);
      st::nn::Linear layer(30, 20, true, rng);
      st::Rng mask_rng(42);
      st::pruning::apply_random_masks(layer.parameters(), 0.5, mask_rng);
      st::nn::Parameter& w = layer.weight();
      const st::Tensor x = st::testing::random_tensor({9, 30}, rng), r = st::testing::random_tensor({9, 20}, rng);
      const ModeScope on(st::SparseKernels::On);
      st::OptimizerConfig config;
      config.name = name;
      auto optimizer = st::make_optimizer(config, layer.parameters());
      auto train = [&] {
        optimizer->zero_grad();
        step(layer, w, x, r);
        optimizer->step(0.1f);
      };
      train();
      train();  // the pattern path: a dense masked step has run under this mask
      REQUIRE(st::current_sparse_form(w) != nullptr);
      // prune every other kept weight: their optimizer state is non-zero now
      float* mask = w.mask.data();
      int64_t flip = 0;
      for (int64_t i = 0; i < w.numel(); ++i)
        if (mask[i] != 0.0f && flip++ % 2 == 0) mask[i] = 0.0f;
      w.mask_changed();  // the protocol of every mask writer
      w.apply_mask();
      train();
      train();
      int64_t states = 0;
      for (auto& [state_name, tensor] : optimizer->state()) {
        if (state_name.rfind(w.name + ".", 0) != 0) continue;
        ++states;
        CAPTURE(state_name);
        int64_t nonzero_pruned = 0, nonzero_kept = 0;
        for (int64_t i = 0; i < w.numel(); ++i) {
          if (mask[i] == 0.0f) nonzero_pruned += tensor->data()[i] != 0.0f;
          if (mask[i] != 0.0f) nonzero_kept += tensor->data()[i] != 0.0f;
        }
        CHECK(nonzero_pruned == 0);
        if (std::string(name) != "rmsprop" || state_name.find("square_avg") != std::string::npos)
          CHECK(nonzero_kept > 0);  // the state is in use (RMSProp's momentum buffer included)
      }
      CHECK(states == (std::string(name) == "sgd" ? 1 : 2));
      int64_t pruned = 0;
      for (int64_t i = 0; i < w.numel(); ++i)
        if (mask[i] == 0.0f) {
          ++pruned;
          CHECK(w.value().data()[i] == 0.0f);
        }
      CHECK(pruned > 300);
      CHECK(pattern_matches(*w.sparse->pattern, mask));
      if (std::string(name) != "sgd") continue;

      // A DST update (drop and grow, the non-zero count unchanged) is followed by a new pattern.
      st::Rng dst_rng(43);
      st::pruning::drop_and_grow({&w}, {w.grad().clone()}, 0.3, "set", dst_rng);
      train();
      CHECK(pattern_matches(*w.sparse->pattern, mask));
    }
  }
}
