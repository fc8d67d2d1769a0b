// sparsebench: the sparse linear kernels (kernels/cpu/sparse.h) against our dense ones (kernels/cpu
// linear_forward/backward: OpenBLAS sgemm) on the linear layers of lenet300 and a 4096 x 4096 layer, at
// densities 100, 80, 50, 30, 20, 10, 5, 2 and 1% (a uniformly random mask), for the forward, the data
// gradient and the weight gradient (with the bias gradient); the median of --repeats timed calls after
// a warm-up of at least 50 ms. Prints a markdown table and, per shape, the break-even density: the
// highest density at which the sparse step (all three products) is faster than the dense one.
//
// usage: sparsebench [--batch 128] [--repeats 9] [--threads 0] [--shape all|lenet300|4096] [--out FILE.md]
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

struct Shape {
  std::string name;
  int64_t in, out;
};

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
  double forward = 0, data = 0, weight = 0;
  double total() const { return forward + data + weight; }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sparsebench: sparse vs dense linear kernels on the CPU, by density"};
  int64_t batch = 128;
  int repeats = 9, threads = 0;
  std::string which = "all", out;
  app.add_option("--batch", batch, "batch size")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--repeats", repeats, "timed calls per kernel (median)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (0 = all cores)")->capture_default_str();
  app.add_option("--shape", which, "all, lenet300 or 4096")->check(CLI::IsMember({"all", "lenet300", "4096"}));
  app.add_option("--out", out, "also write the markdown report to this file");
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) omp_set_num_threads(threads);

  std::vector<Shape> shapes;
  if (which == "all" || which == "lenet300")
    shapes = {
        {"lenet300 fc1 784->300", 784, 300}, {"lenet300 fc2 300->100", 300, 100}, {"lenet300 fc3 100->10", 100, 10}};
  if (which == "all" || which == "4096") shapes.push_back({"linear 4096->4096", 4096, 4096});
  const double densities[] = {1.0, 0.8, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01};

  std::string report = fmt::format(
      "sparsebench: batch {}, {} threads, median of {} calls (ms); sparse/dense < 1: sparse faster\n\n"
      "| layer | density | dense fwd | sparse fwd | dense dgrad | sparse dgrad | dense wgrad | sparse wgrad | "
      "sparse/dense (all three) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
      batch, omp_get_max_threads(), repeats);
  std::string break_even;
  st::Rng rng(7);
  for (const Shape& s : shapes) {
    const Floats x = normal(batch * s.in, rng), dy = normal(batch * s.out, rng), b = normal(s.out, rng);
    Floats w = normal(s.in * s.out, rng), y(static_cast<std::size_t>(batch * s.out)), dx(x.size()), dw(w.size()),
           db(b.size());
    // dense: the same kernels at every density (a masked dense weight costs what a dense one costs)
    Times dense;
    dense.forward = median_ms(
        [&] { st::cpu::linear_forward(batch, s.in, s.out, x.data(), w.data(), b.data(), y.data()); }, repeats);
    dense.data = median_ms(
        [&] {
          st::cpu::linear_backward(batch, s.in, s.out, x.data(), w.data(), dy.data(), dx.data(), nullptr, nullptr);
        },
        repeats);
    dense.weight = median_ms(
        [&] {
          st::cpu::linear_backward(batch, s.in, s.out, x.data(), w.data(), dy.data(), nullptr, dw.data(), db.data());
        },
        repeats);
    double even = 0.0;
    for (double density : densities) {
      Floats mask(w.size());
      for (float& m : mask) m = rng.uniform() < density ? 1.0f : 0.0f;
      const st::cpu::SparsePattern pattern = st::cpu::sparse_pattern(s.out, s.in, mask.data());
      Floats values(static_cast<std::size_t>(pattern.nnz()));
      Times sparse;
      sparse.forward = median_ms(
          [&] {
            st::cpu::sparse_gather(pattern, w.data(), values.data());
            st::cpu::sparse_linear_forward(batch, pattern, values.data(), x.data(), b.data(), y.data());
          },
          repeats);
      sparse.data = median_ms(
          [&] {
            st::cpu::sparse_linear_backward(batch, pattern, values.data(), x.data(), dy.data(), dx.data(), nullptr,
                                            nullptr);
          },
          repeats);
      sparse.weight = median_ms(
          [&] {
            st::cpu::sparse_linear_backward(batch, pattern, values.data(), x.data(), dy.data(), nullptr, dw.data(),
                                            db.data());
          },
          repeats);
      const double ratio = sparse.total() / dense.total();
      if (ratio < 1.0) even = std::max(even, density);
      report += fmt::format("| {} | {:.0f}% | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.2f} |\n", s.name,
                            100.0 * density, dense.forward, sparse.forward, dense.data, sparse.data, dense.weight,
                            sparse.weight, ratio);
      std::fprintf(stderr, "sparsebench: %s at %.0f%%\n", s.name.c_str(), 100.0 * density);
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
