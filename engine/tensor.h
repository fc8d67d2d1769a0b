// Tensor: a contiguous fp32 array with a shape, on one device. Activations are NHWC, conv weights
// KRSC (out, kh, kw, in), linear weights (out, in) — on every backend. Tensors share storage on
// copy (like a handle); clone() makes a deep copy. There are no strided views: reshape shares the
// storage with a new shape, everything else produces a new contiguous tensor.
//
// Device::CUDA tensors hold device memory (engine/device.h: caching allocator, one engine stream):
// data() is then a device pointer, for kernels only. fill/zero/clone/copy_from work on any device (and
// copy_from between devices); item() and to_vector() read device tensors back (synchronising); to()
// copies to another device. Without CUDA (or without a GPU) a CUDA tensor request fails with a clear error.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace st {

enum class Device { CPU, CUDA };
std::string device_name(Device device);

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& shape);
std::string shape_string(const Shape& shape);

struct Storage {
  float* data = nullptr;
  int64_t numel = 0;
  Device device = Device::CPU;
  Storage(int64_t numel, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(const Shape& shape, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, Device device = Device::CPU);
  static Tensor full(const Shape& shape, float value, Device device = Device::CPU);
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values);

  bool defined() const { return storage_ != nullptr; }
  Device device() const;
  const Shape& shape() const { return shape_; }
  int64_t dim(int index) const;  // negative index counts from the end
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  float* data() { return storage_ ? storage_->data : nullptr; }
  const float* data() const { return storage_ ? storage_->data : nullptr; }
  float item() const;  // the single value of a one-element tensor (read back from a device)

  Tensor reshape(const Shape& shape) const;  // shares storage
  Tensor clone() const;
  void fill(float value);
  void zero() { fill(0.0f); }
  void copy_from(const Tensor& source);  // same numel required; any pair of devices
  std::vector<float> to_vector() const;  // host copy of the values (from any device)
  // This tensor on `device`: itself (shared storage) when already there, else a copy.
  Tensor to(Device device) const;
  bool same_storage(const Tensor& other) const { return storage_ == other.storage_; }

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
};

}  // namespace st
