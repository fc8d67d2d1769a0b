#include "engine/device.h"

#include <atomic>
#include <cmath>
#include <exception>

#include "engine/error.h"

#ifdef ST_HAVE_CUDA
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/common.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/elementwise.h"
#endif

namespace st {
namespace {

std::atomic<KernelSource> current_kernel_source{KernelSource::Ours};

#ifdef ST_HAVE_CUDA
// Runs a CUDA-side call and turns its exceptions (std::runtime_error / std::invalid_argument from
// kernels/cuda) into st::Error naming what the engine was doing, so the CLI prints one clear line.
template <typename Call>
auto checked(const char* what, Call&& call) -> decltype(call()) {
  try {
    return call();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("{}: {} (if a kernel faulted, rerun with CUDA_LAUNCH_BLOCKING=1 to name it)", what, e.what());
  }
}
#endif

}  // namespace

const CudaStatus& cuda_status() {
  static const CudaStatus status = [] {
    CudaStatus s;
#ifdef ST_HAVE_CUDA
    const cuda::DeviceInfo info = cuda::query_devices();
    s.available = info.count > 0;
    s.name = info.first_name;
    s.reason = s.available ? "" : info.unavailable;
#else
    s.reason = "this build has no CUDA backend (built with ST_WITH_CUDA=OFF or without nvcc)";
#endif
    return s;
  }();
  return status;
}

void require_cuda(const std::string& what) {
  const CudaStatus& status = cuda_status();
  if (!status.available) fail("{}: needs a CUDA device, but none is usable ({})", what, status.reason);
}

void set_kernel_source(KernelSource source) { current_kernel_source.store(source); }
KernelSource kernel_source() { return current_kernel_source.load(); }
std::string kernel_source_name(KernelSource source) { return source == KernelSource::Ours ? "ours" : "vendor"; }

KernelSource parse_kernel_source(const std::string& value, const std::string& flag) {
  if (value == "ours") return KernelSource::Ours;
  if (value == "vendor") return KernelSource::Vendor;
  fail("{}: must be ours (our CUDA kernels) or vendor (cuDNN/cuBLAS), got '{}'", flag, value);
}

void set_tf32(bool enabled) {
#ifdef ST_HAVE_CUDA
  cuda::set_tf32_enabled(enabled);
#else
  (void)enabled;
#endif
}

bool tf32() {
#ifdef ST_HAVE_CUDA
  return cuda::tf32_enabled();
#else
  return false;
#endif
}

#ifdef ST_HAVE_CUDA
cudaStream_t engine_stream() {
  static const cudaStream_t stream = [] {
    require_cuda("engine stream");
    cudaStream_t s = nullptr;
    checked("creating the engine stream", [&] { ST_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); });
    return s;
  }();
  return stream;
}
#endif

void synchronize_device() {
#ifdef ST_HAVE_CUDA
  if (!cuda_status().available) return;
  checked("synchronize_device", [] { ST_CUDA_CHECK(cudaStreamSynchronize(engine_stream())); });
#endif
}

namespace device_memory {

void* allocate(std::size_t bytes) {
  require_cuda(fmt::format("tensor: cuda storage of {} bytes", bytes));
#ifdef ST_HAVE_CUDA
  return checked("tensor: cuda storage", [&] { return cuda::device_allocate(bytes, engine_stream()); });
#else
  fail("tensor: cuda storage in a build without CUDA");  // not reached: require_cuda failed
#endif
}

void release(void* pointer) {
#ifdef ST_HAVE_CUDA
  if (pointer != nullptr) cuda::device_free(pointer);  // never throws for a pointer device_allocate gave
#else
  (void)pointer;
#endif
}

void fill(float* data, int64_t count, float value) {
#ifdef ST_HAVE_CUDA
  if (count == 0) return;
  checked("Tensor::fill on cuda", [&] {
    // All-zero bits are +0.0f: a memset, as fast as it gets (the common case: gradient buffers).
    if (value == 0.0f && !std::signbit(value)) {
      ST_CUDA_CHECK(cudaMemsetAsync(data, 0, static_cast<std::size_t>(count) * sizeof(float), engine_stream()));
    } else {
      cuda::fill(count, value, data, engine_stream());
    }
  });
#else
  (void)data;
  (void)count;
  (void)value;
  fail("Tensor::fill: a cuda tensor in a build without CUDA ({})", cuda_status().reason);
#endif
}

void copy(void* destination, Device destination_device, const void* source, Device source_device, std::size_t bytes) {
  if (bytes == 0) return;
#ifdef ST_HAVE_CUDA
  checked("tensor copy between devices", [&] {
    if (destination_device == Device::CUDA && source_device == Device::CUDA) {
      ST_CUDA_CHECK(cudaMemcpyAsync(destination, source, bytes, cudaMemcpyDeviceToDevice, engine_stream()));
    } else if (destination_device == Device::CUDA) {
      cuda::copy_to_device(destination, source, bytes, engine_stream());
    } else {
      cuda::copy_to_host(destination, source, bytes, engine_stream());
    }
  });
#else
  (void)destination;
  (void)destination_device;
  (void)source;
  (void)source_device;
  fail("tensor copy: a cuda tensor in a build without CUDA ({})", cuda_status().reason);
#endif
}

}  // namespace device_memory

}  // namespace st
