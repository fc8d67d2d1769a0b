#include "engine/io/checkpoint.h"

#include <cstring>

#include "engine/error.h"
#include "engine/io/safetensors.h"

namespace st::io {
namespace {

constexpr const char* kFormat = "sparsetrain-checkpoint-1";

void add_tensor(SafetensorsFile& file, const std::string& name, const Tensor& tensor) {
  file.add_f32(name, tensor.shape(), tensor.data());
}

void restore_tensor(const SafetensorsFile& file, const std::string& name, Tensor& tensor) {
  const TensorRecord& record = file.at(name);
  if (record.dtype != DType::F32 || record.shape != tensor.shape())
    fail("checkpoint {}: tensor '{}' is {} {}, expected F32 {}", file.path, name, dtype_name(record.dtype),
         shape_string(record.shape), shape_string(tensor.shape()));
  std::memcpy(tensor.data(), record.bytes.data(), record.bytes.size());
}

}  // namespace

void save_checkpoint(const std::filesystem::path& path, const CheckpointContents& contents) {
  SafetensorsFile file;
  file.metadata["sparsetrain.format"] = kFormat;
  file.metadata["sparsetrain.config"] = contents.config_json;
  file.metadata["sparsetrain.position"] = contents.position_json;
  for (nn::Parameter* p : contents.model->parameters()) {
    add_tensor(file, "param/" + p->name, p->value());
    if (p->mask.defined()) add_tensor(file, "mask/" + p->name, p->mask);
  }
  for (const nn::NamedBuffer& buffer : contents.model->buffers()) add_tensor(file, "buffer/" + buffer.name, *buffer.tensor);
  if (contents.optimizer != nullptr)
    for (auto& [slot, tensor] : contents.optimizer->state()) add_tensor(file, "optim/" + slot, *tensor);
  for (const auto& [name, rng] : contents.rngs) file.add_u64("rng/" + name, {4}, rng->state().data());
  for (const auto& [name, tensor] : contents.extra) add_tensor(file, "extra/" + name, *tensor);
  std::filesystem::create_directories(path.parent_path());
  write_safetensors(path, file);
}

void load_checkpoint(const std::filesystem::path& path, CheckpointContents& contents) {
  const SafetensorsFile file = read_safetensors(path);
  const auto format = file.metadata.find("sparsetrain.format");
  if (format == file.metadata.end() || format->second != kFormat)
    fail("checkpoint {}: not a sparsetrain checkpoint (metadata sparsetrain.format is missing or not '{}')",
         path.string(), kFormat);
  for (nn::Parameter* p : contents.model->parameters()) {
    restore_tensor(file, "param/" + p->name, p->value());
    if (p->mask.defined()) {
      restore_tensor(file, "mask/" + p->name, p->mask);
      p->mask_changed();
    }
  }
  for (const nn::NamedBuffer& buffer : contents.model->buffers())
    restore_tensor(file, "buffer/" + buffer.name, *buffer.tensor);
  if (contents.optimizer != nullptr)
    for (auto& [slot, tensor] : contents.optimizer->state()) restore_tensor(file, "optim/" + slot, *tensor);
  for (auto& [name, rng] : contents.rngs) {
    const std::vector<uint64_t> words = file.u64("rng/" + name);
    if (words.size() != 4) fail("checkpoint {}: rng/{} has {} words, expected 4", path.string(), name, words.size());
    rng->set_state({words[0], words[1], words[2], words[3]});
  }
  for (auto& [name, tensor] : contents.extra) restore_tensor(file, "extra/" + name, *tensor);
  contents.config_json = file.metadata.count("sparsetrain.config") ? file.metadata.at("sparsetrain.config") : "";
  contents.position_json = file.metadata.count("sparsetrain.position") ? file.metadata.at("sparsetrain.position") : "";
}

std::map<std::string, std::string> read_checkpoint_metadata(const std::filesystem::path& path) {
  const SafetensorsFile file = read_safetensors(path);
  const auto format = file.metadata.find("sparsetrain.format");
  if (format == file.metadata.end() || format->second != kFormat)
    fail("checkpoint {}: not a sparsetrain checkpoint (metadata sparsetrain.format is missing or not '{}')",
         path.string(), kFormat);
  return file.metadata;
}

}  // namespace st::io
