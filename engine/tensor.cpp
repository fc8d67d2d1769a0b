#include "engine/tensor.h"

#include <algorithm>
#include <cstring>

#include "engine/allocator.h"
#include "engine/device.h"
#include "engine/error.h"

#include <fmt/ranges.h>

namespace st {

std::string device_name(Device device) { return device == Device::CPU ? "cpu" : "cuda"; }

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const Shape& shape) {
  return fmt::format("[{}]", fmt::join(shape, ","));
}

Storage::Storage(int64_t count, Device where) : numel(count), device(where) {
  if (device == Device::CUDA) {
    data = static_cast<float*>(device_memory::allocate(static_cast<std::size_t>(numel) * sizeof(float)));
    return;
  }
  data = static_cast<float*>(host_allocate(static_cast<std::size_t>(numel) * sizeof(float)));
}

Storage::~Storage() {
  if (device == Device::CUDA) {
    device_memory::release(data);
    return;
  }
  host_free(data, static_cast<std::size_t>(numel) * sizeof(float));
}

Tensor Tensor::empty(const Shape& shape, Device device) {
  for (int64_t d : shape) ST_CHECK(d >= 0, "negative dimension in shape {}", shape_string(shape));
  Tensor t;
  t.storage_ = std::make_shared<Storage>(shape_numel(shape), device);
  t.shape_ = shape;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, Device device) { return full(shape, 0.0f, device); }

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor t = empty(shape, device);
  t.fill(value);
  return t;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values) {
  ST_CHECK(shape_numel(shape) == static_cast<int64_t>(values.size()), "shape {} needs {} values, got {}",
           shape_string(shape), shape_numel(shape), values.size());
  Tensor t = empty(shape);
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

Device Tensor::device() const { return storage_ ? storage_->device : Device::CPU; }

int64_t Tensor::dim(int index) const {
  const int n = ndim();
  const int i = index < 0 ? index + n : index;
  ST_CHECK(i >= 0 && i < n, "dimension {} out of range for shape {}", index, shape_string(shape_));
  return shape_[static_cast<std::size_t>(i)];
}

float Tensor::item() const {
  ST_CHECK(numel() == 1, "item() needs one element, shape is {}", shape_string(shape_));
  if (device() == Device::CUDA) {
    float value = 0.0f;
    device_memory::copy(&value, Device::CPU, data(), Device::CUDA, sizeof(float));
    return value;
  }
  return data()[0];
}

Tensor Tensor::reshape(const Shape& shape) const {
  ST_CHECK(shape_numel(shape) == numel(), "cannot reshape {} to {}", shape_string(shape_), shape_string(shape));
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, device());
  t.copy_from(*this);
  return t;
}

void Tensor::fill(float value) {
  float* p = data();
  const int64_t n = numel();
  if (device() == Device::CUDA) {
    device_memory::fill(p, n, value);
    return;
  }
  // Gradient buffers of activations are megabytes: fill them with every thread.
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) p[i] = value;
}

void Tensor::copy_from(const Tensor& source) {
  ST_CHECK(source.numel() == numel(), "copy of {} into {}", shape_string(source.shape()), shape_string(shape_));
  if (device() == Device::CUDA || source.device() == Device::CUDA) {
    device_memory::copy(data(), device(), source.data(), source.device(),
                        static_cast<std::size_t>(numel()) * sizeof(float));
    return;
  }
  const float* from = source.data();
  float* to = data();
  const int64_t n = numel();
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) to[i] = from[i];
}

std::vector<float> Tensor::to_vector() const {
  if (device() == Device::CUDA) {
    std::vector<float> values(static_cast<std::size_t>(numel()));
    device_memory::copy(values.data(), Device::CPU, data(), Device::CUDA, values.size() * sizeof(float));
    return values;
  }
  return std::vector<float>(data(), data() + numel());
}

Tensor Tensor::to(Device target) const {
  if (!defined() || device() == target) return *this;
  Tensor t = empty(shape_, target);
  t.copy_from(*this);
  return t;
}

}  // namespace st
