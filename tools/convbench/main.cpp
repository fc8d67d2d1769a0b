// CPU convolution microbenchmark: forward, data gradient and weight gradient of the 3x3 convolutions
// of resnet20 at full and half width (batch 128, NHWC), each timed alone through the same
// cpu::conv2d_forward / conv2d_backward the engine calls; GFLOP/s = 2 * MACs / best of 5 repetitions
// (3 calls each). The figures in bench/results/2026-11-21-structured-resnet20.md come from
//   build/convbench --threads 1
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/rng.h"
#include "kernels/cpu/kernels.h"

namespace {

double seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <typename F>
double best_time(F&& call) {
  call();  // warm-up (packing buffers, first touch)
  double best = 1e30;
  for (int repetition = 0; repetition < 5; ++repetition) {
    const double start = seconds();
    for (int i = 0; i < 3; ++i) call();
    best = std::min(best, (seconds() - start) / 3.0);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--threads") threads = std::atoi(argv[i + 1]);
  if (threads < 1) {
    std::fprintf(stderr, "convbench: --threads must be at least 1\n");
    return 2;
  }
  omp_set_num_threads(threads);
  struct Shape {
    int64_t in_channels, out_channels, size, stride;
  };
  // resnet20's 3x3 convolutions at half width (8/16/32) and full width (16/32/64), the stem (1 input
  // channel, Fashion-MNIST), then 24 output channels (the paired kernel)
  const Shape shapes[] = {{8, 8, 32, 1},  {16, 16, 32, 1}, {16, 16, 16, 1}, {32, 32, 16, 1},
                          {32, 32, 8, 1}, {64, 64, 8, 1},  {8, 16, 32, 2},  {16, 32, 32, 2},
                          {16, 32, 16, 2}, {32, 64, 16, 2}, {1, 8, 32, 1},   {1, 16, 32, 1},
                          {16, 24, 32, 1}, {8, 24, 32, 2},  {24, 24, 16, 1}};
  st::Rng rng(1);
  std::printf("convbench: batch 128, 3x3 pad 1, %d thread(s); GFLOP/s of forward, data gradient, weight gradient\n",
              threads);
  for (const Shape& shape : shapes) {
    st::Conv2dGeometry g;
    g.batch = 128;
    g.in_h = g.in_w = shape.size;
    g.in_channels = shape.in_channels;
    g.out_channels = shape.out_channels;
    g.kernel_h = g.kernel_w = 3;
    g.stride = shape.stride;
    g.pad = 1;
    std::vector<float> x(static_cast<std::size_t>(g.batch * g.in_h * g.in_w * g.in_channels));
    std::vector<float> w(static_cast<std::size_t>(g.weight_numel())), dw(w.size());
    std::vector<float> dy(static_cast<std::size_t>(g.batch * g.out_h() * g.out_w() * g.out_channels)), y(dy.size());
    std::vector<float> dx(x.size());
    for (float& v : x) v = rng.uniform(-0.5f, 0.5f);
    for (float& v : w) v = rng.uniform(-0.5f, 0.5f);
    for (float& v : dy) v = rng.uniform(-0.5f, 0.5f);
    const double flops = 2.0 * static_cast<double>(g.macs());
    const double forward = best_time([&] { st::cpu::conv2d_forward(g, x.data(), w.data(), nullptr, y.data()); });
    const double data = best_time(
        [&] { st::cpu::conv2d_backward(g, x.data(), w.data(), dy.data(), {dx.data(), true}, nullptr, nullptr); });
    const double weight = best_time(
        [&] { st::cpu::conv2d_backward(g, x.data(), w.data(), dy.data(), nullptr, dw.data(), nullptr); });
    std::printf("%3lld -> %3lld channels %2lldx%-2lld stride %lld: forward %6.2f ms %6.1f | data grad %6.2f ms %6.1f | "
                "weight grad %6.2f ms %6.1f\n",
                static_cast<long long>(g.in_channels), static_cast<long long>(g.out_channels),
                static_cast<long long>(g.in_h), static_cast<long long>(g.in_w), static_cast<long long>(g.stride),
                forward * 1e3, flops / forward * 1e-9, data * 1e3, flops / data * 1e-9, weight * 1e3,
                flops / weight * 1e-9);
  }
  return 0;
}
