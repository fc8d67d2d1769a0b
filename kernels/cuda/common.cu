// Error reporting, the TF32 switch and the per-stream scratch buffer (see common.h).
#include <atomic>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "kernels/cuda/common.h"

namespace st::cuda {

void throw_error(const char* library, const char* name, const char* description, const char* call, const char* file,
                 int line) {
  std::ostringstream message;
  message << library << " error " << name;
  if (description != nullptr && description[0] != '\0') message << ": " << description;
  message << " in `" << call << "` at " << file << ":" << line;
  throw std::runtime_error(message.str());
}

void throw_invalid_argument(const char* function, const char* message) {
  std::ostringstream text;
  text << function << ": " << message;
  throw std::invalid_argument(text.str());
}

namespace {

std::atomic<bool> tf32_allowed{true};

struct Workspace {
  void* data = nullptr;
  std::size_t bytes = 0;
};

std::mutex workspace_mutex;
std::map<std::pair<int, Stream>, Workspace> workspaces;  // (device, stream) -> buffer; freed at exit by the driver

}  // namespace

void set_tf32_enabled(bool enabled) { tf32_allowed.store(enabled); }
bool tf32_enabled() { return tf32_allowed.load(); }

void* stream_workspace(Stream stream, std::size_t bytes) {
  int device = 0;
  ST_CUDA_CHECK(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(workspace_mutex);
  Workspace& workspace = workspaces[{device, stream}];
  if (bytes <= workspace.bytes) return workspace.data;
  constexpr std::size_t kGranule = std::size_t{1} << 20;  // grow in MiB steps: fewer regrowths
  const std::size_t rounded = (bytes + kGranule - 1) / kGranule * kGranule;
  if (workspace.data != nullptr) {
    ST_CUDA_CHECK(cudaStreamSynchronize(stream));  // queued work may still read the old buffer
    ST_CUDA_CHECK(cudaFree(workspace.data));
    workspace = Workspace{};
  }
  ST_CUDA_CHECK(cudaMalloc(&workspace.data, rounded));
  workspace.bytes = rounded;
  return workspace.data;
}

}  // namespace st::cuda
