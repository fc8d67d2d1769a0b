// Checkpoints: everything needed to resume a run bit-exactly, in one safetensors file written
// atomically (engine/io/safetensors.h: temp file + fsync + rename, checksummed data section).
//   param/<name>   weights and every other trainable tensor (F32)
//   mask/<name>    masks of the prunable tensors (F32, 0 or 1)
//   buffer/<name>  BatchNorm running statistics (F32)
//   optim/<slot>   optimizer state ("<param>.momentum", "<param>.exp_avg", ...) (F32)
//   rng/<name>     generator states (U64[4])
//   metadata: sparsetrain.format = "sparsetrain-checkpoint-1", sparsetrain.config (the resolved run
//   config as JSON), sparsetrain.position (JSON: epoch, batch, global step, optimizer steps, ...)
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/nn.h"
#include "engine/optim.h"
#include "engine/rng.h"

namespace st::io {

struct CheckpointContents {
  nn::Module* model = nullptr;
  Optimizer* optimizer = nullptr;     // may be null (weights-only checkpoint)
  std::map<std::string, Rng*> rngs;   // named generators
  std::vector<std::pair<std::string, Tensor*>> extra;  // other tensors (e.g. the rewind point), "extra/<name>"
  std::string config_json;            // the resolved run config
  std::string position_json;          // where in the run this checkpoint was taken
};

void save_checkpoint(const std::filesystem::path& path, const CheckpointContents& contents);

// Restores into the given model/optimizer/generators, which must have the same structure; every
// mismatch (missing tensor, wrong shape) is an st::Error naming the file and the tensor.
void load_checkpoint(const std::filesystem::path& path, CheckpointContents& contents);

// Reads only the metadata (config and position) of a checkpoint, validating the whole file.
std::map<std::string, std::string> read_checkpoint_metadata(const std::filesystem::path& path);

}  // namespace st::io
