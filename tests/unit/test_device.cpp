// The device plumbing seen from the CPU: a CUDA tensor (or --device cuda) without a usable GPU is a
// clear error; the kernel-source flag is validated; moving CPU tensors and modules to the CPU is a no-op
// that keeps the storage (so CPU runs are untouched by the CUDA backend).
#include <doctest/doctest.h>

#include "engine/device.h"
#include "engine/error.h"
#include "engine/nn.h"
#include "engine/trainer.h"
#include "models/registry.h"

using namespace st;

TEST_SUITE("unit") {
  TEST_CASE("a CUDA tensor or --device cuda without a usable GPU is a clear error") {
    if (cuda_status().available) return;  // covered by the gpu suite on machines with a GPU
    CHECK_FALSE(cuda_status().reason.empty());
    CHECK_THROWS_WITH_AS(Tensor::empty({2, 3}, Device::CUDA), doctest::Contains("cuda"), Error);
    CHECK_THROWS_WITH_AS(Tensor::zeros({4}, Device::CUDA), doctest::Contains(cuda_status().reason.c_str()), Error);
    CHECK_THROWS_WITH_AS(Tensor::full({1}, 1.0f).to(Device::CUDA), doctest::Contains("needs a CUDA device"), Error);
    CHECK_THROWS_WITH_AS(choose_device("cuda"), doctest::Contains("--device cuda: no usable CUDA device"), Error);
    const DeviceChoice automatic = choose_device("auto");
    CHECK(automatic.device == Device::CPU);
    CHECK(automatic.description.find("no CUDA device") != std::string::npos);
    CHECK(choose_device("cpu").device == Device::CPU);
    CHECK_NOTHROW(synchronize_device());
  }

  TEST_CASE("--kernels accepts ours and vendor only") {
    CHECK(parse_kernel_source("ours", "--kernels") == KernelSource::Ours);
    CHECK(parse_kernel_source("vendor", "--kernels") == KernelSource::Vendor);
    CHECK(kernel_source_name(KernelSource::Vendor) == "vendor");
    CHECK_THROWS_WITH_AS(parse_kernel_source("cudnn", "--kernels"), doctest::Contains("--kernels"), Error);
    CHECK_THROWS_WITH_AS(parse_kernel_source("cudnn", "--kernels"), doctest::Contains("'cudnn'"), Error);
  }

  TEST_CASE("moving CPU tensors and modules to the CPU keeps their storage") {
    const Tensor t = Tensor::full({3}, 2.0f);
    CHECK(t.to(Device::CPU).same_storage(t));
    CHECK(Tensor().to(Device::CPU).defined() == false);
    Rng rng(1);
    auto net = models::build_model("lenet5", models::find_model("lenet5").reference_input, rng);
    std::vector<Tensor> before;
    for (nn::Parameter* p : net->parameters()) before.push_back(p->value());
    net->to(Device::CPU);
    std::size_t i = 0;
    for (nn::Parameter* p : net->parameters()) CHECK(p->value().same_storage(before[i++]));
  }
}
