// sparsebench: the sparse CPU kernels (kernels/cpu/sparse.h) against our dense ones (linear: OpenBLAS
// sgemm; convolution: conv2d_forward/backward, the AVX-512 direct kernel or im2col + sgemm) on the
// layers of lenet300, lenet5 (28 x 28 input), resnet20 and vgg16 (CIFAR, 32 x 32) and a 4096 x 4096
// linear layer, at densities 100, 80, 50, 30, 20, 10, 5, 2 and 1% (a uniformly random mask): the
// forward, the data gradient, the weight gradient (with the bias gradient) and the layer's whole step
// (forward + one backward computing both gradients); the median of --repeats timed calls after a
// warm-up of at least 50 ms. Prints a markdown table and, per layer, the break-even density: the
// highest density of the grid at which the sparse step is faster than the dense one.
//
// usage: sparsebench [--batch 128] [--repeats 9] [--threads 0] [--densities 1,0.5,...] [--layer TEXT]
//                    [--shape all|lenet300|lenet5|resnet20|vgg16|4096] [--out FILE.md]
#include <fmt/format.h>
#include <omp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "engine/rng.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/sparse.h"

namespace {

using Floats = std::vector<float>;

// A layer of a benchmark network: linear (in -> out) or a convolution (geometry without the batch).
struct Shape {
  std::string name;
  int64_t in = 0, out = 0;
  bool conv = false;
  st::Conv2dGeometry geometry;
};

Shape linear(std::string name, int64_t in, int64_t out) { return {std::move(name), in, out, false, {}}; }

// A 3x3 (or kernel x kernel) convolution of c -> k channels over an h x h input.
Shape conv(std::string name, int64_t c, int64_t k, int64_t h, int64_t kernel, int64_t stride, int64_t pad) {
  Shape s{std::move(name), kernel * kernel * c, k, true, {}};
  s.geometry.in_h = s.geometry.in_w = h;
  s.geometry.in_channels = c;
  s.geometry.out_channels = k;
  s.geometry.kernel_h = s.geometry.kernel_w = kernel;
  s.geometry.stride = stride;
  s.geometry.pad = pad;
  return s;
}

// Warm-up calls for at least 50 ms (OpenBLAS's and OpenMP's thread pools settle: a single warm-up
// left the first dense kernel timed 30x slow now and then), then the median of `repeats` calls.
double median_ms(const std::function<void()>& call, int repeats) {
  const auto warm_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  for (int calls = 0; calls < 3 || std::chrono::steady_clock::now() < warm_until; ++calls) call();
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    call();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

Floats normal(int64_t n, st::Rng& rng) {
  Floats v(static_cast<std::size_t>(n));
  for (float& x : v) x = rng.normal();
  return v;
}

struct Times {
  double forward = 0, data = 0, weight = 0, step = 0;
};

// The dense and the sparse kernels of one layer at one batch, with their arrays.
struct Bench {
  const Shape& s;
  int64_t batch;
  int repeats;
  st::Conv2dGeometry g;
  Floats x, dy, b, w, y, dx, dw, db;

  Bench(const Shape& shape, int64_t n, int reps, st::Rng& rng) : s(shape), batch(n), repeats(reps), g(shape.geometry) {
    g.batch = batch;
    const int64_t x_count = s.conv ? batch * g.in_h * g.in_w * g.in_channels : batch * s.in;
    const int64_t y_count = s.conv ? batch * g.out_h() * g.out_w() * g.out_channels : batch * s.out;
    x = normal(x_count, rng);
    dy = normal(y_count, rng);
    b = normal(s.out, rng);
    w = normal(s.in * s.out, rng);
    y.resize(dy.size());
    dx.resize(x.size());
    dw.resize(w.size());
    db.resize(b.size());
  }

  void dense_forward() {
    if (s.conv) {
      st::cpu::conv2d_forward(g, x.data(), w.data(), b.data(), y.data());
    } else {
      st::cpu::linear_forward(batch, s.in, s.out, x.data(), w.data(), b.data(), y.data());
    }
  }
  void dense_backward(bool data, bool weight) {
    float* gx = data ? dx.data() : nullptr;
    float* gw = weight ? dw.data() : nullptr;
    float* gb = weight ? db.data() : nullptr;
    if (s.conv) {
      st::cpu::conv2d_backward(g, x.data(), w.data(), dy.data(), st::cpu::GradOut(gx, true), gw, gb);
    } else {
      st::cpu::linear_backward(batch, s.in, s.out, x.data(), w.data(), dy.data(), gx, gw, gb);
    }
  }
  void sparse_forward(const st::cpu::SparsePattern& p, float* values) {
    st::cpu::sparse_gather(p, w.data(), values);
    if (s.conv) {
      st::cpu::sparse_conv_forward(g, p, values, x.data(), b.data(), y.data());
    } else {
      st::cpu::sparse_linear_forward(batch, p, values, x.data(), b.data(), y.data());
    }
  }
  void sparse_backward(const st::cpu::SparsePattern& p, const float* values, bool data, bool weight) {
    float* gx = data ? dx.data() : nullptr;
    float* gw = weight ? dw.data() : nullptr;
    float* gb = weight ? db.data() : nullptr;
    if (s.conv) {
      st::cpu::sparse_conv_backward(g, p, values, x.data(), dy.data(), st::cpu::GradOut(gx, true), gw, gb);
    } else {
      st::cpu::sparse_linear_backward(batch, p, values, x.data(), dy.data(), gx, gw, gb);
    }
  }

  Times dense_times() {
    Times t;
    t.forward = median_ms([&] { dense_forward(); }, repeats);
    t.data = median_ms([&] { dense_backward(true, false); }, repeats);
    t.weight = median_ms([&] { dense_backward(false, true); }, repeats);
    t.step = median_ms(
        [&] {
          dense_forward();
          dense_backward(true, true);
        },
        repeats);
    return t;
  }
  Times sparse_times(const st::cpu::SparsePattern& p) {
    Floats values(static_cast<std::size_t>(p.nnz()));
    Times t;
    t.forward = median_ms([&] { sparse_forward(p, values.data()); }, repeats);
    t.data = median_ms([&] { sparse_backward(p, values.data(), true, false); }, repeats);
    t.weight = median_ms([&] { sparse_backward(p, values.data(), false, true); }, repeats);
    t.step = median_ms(
        [&] {
          sparse_forward(p, values.data());
          sparse_backward(p, values.data(), true, true);
        },
        repeats);
    return t;
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sparsebench: sparse vs dense linear and convolution kernels on the CPU, by density"};
  int64_t batch = 128;
  int repeats = 9, threads = 0;
  std::string which = "all", out;
  app.add_option("--batch", batch, "batch size")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--repeats", repeats, "timed calls per kernel (median)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (0 = all cores)")->capture_default_str();
  app.add_option("--shape", which, "all, lenet300, lenet5, resnet20, vgg16 or 4096")
      ->check(CLI::IsMember({"all", "lenet300", "lenet5", "resnet20", "vgg16", "4096"}));
  std::vector<double> densities = {1.0, 0.8, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01};
  std::string layer_filter;
  app.add_option("--densities", densities, "densities to time (comma separated)")
      ->delimiter(',')
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--layer", layer_filter, "only the layers whose name contains this text");
  app.add_option("--out", out, "also write the markdown report to this file");
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) omp_set_num_threads(threads);

  std::vector<Shape> shapes;
  auto want = [&](const char* name) { return which == "all" || which == name; };
  if (want("lenet300"))
    shapes.insert(shapes.end(), {linear("lenet300 fc1 784->300", 784, 300), linear("lenet300 fc2 300->100", 300, 100),
                                 linear("lenet300 fc3 100->10", 100, 10)});
  if (want("lenet5"))
    shapes.insert(shapes.end(), {conv("lenet5 conv1 1->6 5x5 @28", 1, 6, 28, 5, 1, 2),
                                 conv("lenet5 conv2 6->16 5x5 @14", 6, 16, 14, 5, 1, 0),
                                 linear("lenet5 fc1 400->120", 400, 120), linear("lenet5 fc2 120->84", 120, 84)});
  if (want("resnet20"))
    shapes.insert(
        shapes.end(),
        {conv("resnet20 conv1 3->16 @32", 3, 16, 32, 3, 1, 1), conv("resnet20 16->16 @32", 16, 16, 32, 3, 1, 1),
         conv("resnet20 16->32 /2 @32", 16, 32, 32, 3, 2, 1), conv("resnet20 32->32 @16", 32, 32, 16, 3, 1, 1),
         conv("resnet20 32->64 /2 @16", 32, 64, 16, 3, 2, 1), conv("resnet20 64->64 @8", 64, 64, 8, 3, 1, 1),
         conv("resnet20 shortcut 1x1 16->32 /2 @32", 16, 32, 32, 1, 2, 0), linear("resnet20 fc 64->10", 64, 10)});
  if (want("vgg16"))
    shapes.insert(shapes.end(),
                  {conv("vgg16 3->64 @32", 3, 64, 32, 3, 1, 1), conv("vgg16 64->64 @32", 64, 64, 32, 3, 1, 1),
                   conv("vgg16 64->128 @16", 64, 128, 16, 3, 1, 1), conv("vgg16 128->128 @16", 128, 128, 16, 3, 1, 1),
                   conv("vgg16 128->256 @8", 128, 256, 8, 3, 1, 1), conv("vgg16 256->256 @8", 256, 256, 8, 3, 1, 1),
                   conv("vgg16 256->512 @4", 256, 512, 4, 3, 1, 1), conv("vgg16 512->512 @4", 512, 512, 4, 3, 1, 1),
                   conv("vgg16 512->512 @2", 512, 512, 2, 3, 1, 1), linear("vgg16 fc 512->10", 512, 10)});
  if (want("4096")) shapes.push_back(linear("linear 4096->4096", 4096, 4096));

  std::string report = fmt::format(
      "sparsebench: batch {}, {} threads, median of {} calls (ms); step = forward + one backward computing both "
      "gradients; sparse/dense < 1: sparse faster\n\n"
      "| layer | density | dense fwd | sparse fwd | dense dgrad | sparse dgrad | dense wgrad | sparse wgrad | "
      "dense step | sparse step | sparse/dense (step) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
      batch, omp_get_max_threads(), repeats);
  std::string break_even;
  st::Rng rng(7);
  for (const Shape& s : shapes) {
    if (!layer_filter.empty() && s.name.find(layer_filter) == std::string::npos) continue;
    Bench bench(s, batch, repeats, rng);
    // dense: the same kernels at every density (a masked dense weight costs what a dense one costs)
    const Times dense = bench.dense_times();
    double even = 0.0;
    for (double density : densities) {
      Floats mask(bench.w.size());
      for (float& m : mask) m = rng.uniform() < density ? 1.0f : 0.0f;
      const st::cpu::SparsePattern pattern = st::cpu::sparse_pattern(s.out, s.in, mask.data());
      const Times sparse = bench.sparse_times(pattern);
      const double ratio = sparse.step / dense.step;
      if (ratio < 1.0) even = std::max(even, density);
      report += fmt::format(
          "| {} | {:.0f}% | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.2f} |\n", s.name,
          100.0 * density, dense.forward, sparse.forward, dense.data, sparse.data, dense.weight, sparse.weight,
          dense.step, sparse.step, ratio);
      std::fprintf(stderr, "sparsebench: %s at %.0f%%: %.2f\n", s.name.c_str(), 100.0 * density, ratio);
    }
    break_even += fmt::format("| {} | {} |\n", s.name, even > 0.0 ? fmt::format("{:.0f}%", 100.0 * even) : "none");
  }
  report +=
      "\nBreak-even density (the highest density of the grid at which the sparse step is faster):\n\n"
      "| layer | break-even density |\n|---|---:|\n" +
      break_even;
  std::fputs(report.c_str(), stdout);
  if (!out.empty()) {
    std::ofstream file(out);
    if (!file) {
      std::fprintf(stderr, "sparsebench: error: --out: cannot write %s\n", out.c_str());
      return 1;
    }
    file << report;
  }
  return 0;
}
