// A run's configuration: the engine's own options (data, model name, loop, optimizer, device, run
// directory, output) as fields, and one option block per component (schedules, pruning methods) held by
// type (engine/options.h). config.json, TOML files and the flags of `train` are the same flat keys.
#pragma once

#include <any>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <typeindex>
#include <utility>
#include <vector>

#include "engine/optim.h"
#include "engine/options.h"

namespace st {

struct TrainConfig {
  std::string model = "lenet300";
  std::string dataset = "fashion-mnist";  // fashion-mnist | mnist | cifar10 | cifar100 | imagefolder
  std::string data_dir;                   // empty: the dataset's default location
  int64_t image_size = 64;                // imagefolder: images resized to image_size^2 on load
  int64_t max_images = 200'000;           // imagefolder: refuse a split with more images (memory)
  int64_t epochs = 20;
  int64_t batch_size = 128;
  int64_t iters_per_cycle = 0;  // iterations of training (a cycle); 0 = epochs x batches per epoch
  // Cycles of training: 1 = dense; K + 1 = dense, then K cycles each after a pruning event (IMP). The
  // learning rate of each cycle is the schedules' (engine/learning_rate.h), the pruning the pruners'.
  int cycles_count = 1;
  // Defaults: the default experiment's recipe (lenet300 / Fashion-MNIST reaches about 0.90 test accuracy
  // in 20 epochs with SGD momentum 0.9, weight decay 5e-4, cosine from 0.05).
  OptimizerConfig optimizer;
  float label_smoothing = 0.0f;
  int64_t val_size = 5000;  // images held out of the training set for validation
  int64_t train_limit = 0;  // use only the first N training images (0 = all); for quick runs
  bool augment = false;     // random crop (pad 4) + horizontal flip
  uint64_t seed = 0;
  std::string device = "auto";         // auto | cpu | cuda
  std::string kernels = "ours";        // cuda: ours | vendor (cuDNN/cuBLAS) for convolution, linear, BatchNorm
  std::string sparse_kernels = "off";  // cpu: off | on | auto, masked linear and conv layers (engine/sparse_kernels.h)
  bool tf32 = true;                    // cuda: TF32 tensor cores in convolution and GEMM
  int threads = 0;                     // 0: OpenMP's default (all cores)
  std::string run_dir = "runs/default";
  bool overwrite = false;        // allow a fresh run in a directory that holds an earlier run
  int64_t checkpoint_every = 0;  // steps between checkpoints; 0 = at the end of every epoch / cycle
  int64_t log_every = 0;         // steps between progress lines; 0 = about 5 per epoch
  // A fresh run starts from the weights, masks and BatchNorm statistics of this sparsetrain checkpoint
  // (of the same model; a structurally shrunk one is matched in shape) instead of a new initialisation.
  std::string init_from;
  // Console output (metrics.jsonl is the same in every mode): auto = bar on a terminal, epochs otherwise;
  // bar = one progress line per cycle redrawn in place; epochs = a line per epoch; steps = a line every
  // log_every steps; cycles = a line per cycle (pruning events in one line); quiet = the final line only.
  std::string progress = "auto";

  // The option block of component struct S (its defaults until set).
  template <class S>
  S& get() {
    std::any& block = blocks_[std::type_index(typeid(S))];
    if (!block.has_value()) block = S{};
    return std::any_cast<S&>(block);
  }
  template <class S>
  const S& get() const {
    const auto it = blocks_.find(std::type_index(typeid(S)));
    if (it != blocks_.end()) return std::any_cast<const S&>(it->second);
    static const S defaults{};
    return defaults;
  }

 private:
  std::map<std::type_index, std::any> blocks_;
};

// An option table row (engine/options.h): `access` is a pointer to a member of S, or a callable S& -> T&
// (a field of a nested struct); S is TrainConfig itself for the engine's options.
template <class S, class Access>
Option option(std::string key, Access access, std::string help, std::vector<std::string> choices = {}) {
  Option o;
  o.key = std::move(key);
  o.help = std::move(help);
  o.choices = std::move(choices);
  o.ref = [access](TrainConfig& config) -> OptionRef {
    if constexpr (std::is_same_v<S, TrainConfig>) {
      return &std::invoke(access, config);
    } else {
      return &std::invoke(access, config.template get<S>());
    }
  };
  return o;
}

// The option's value as JSON / set from JSON (an st::Error naming the key on a wrong type).
nlohmann::json option_value(const Option& option, const TrainConfig& config);
void set_option(const Option& option, TrainConfig& config, const nlohmann::json& value);
// The option's value as text, as a flag would be given (lists comma-separated).
std::string option_text(const Option& option, const TrainConfig& config);

// config.json: every option of every component by key (transient ones left out). Reading takes this form
// and the nested form of runs made before the option tables; an unknown key is an error naming it.
nlohmann::json to_json(const TrainConfig& config);
TrainConfig train_config_from_json(const nlohmann::json& json);
// Refuses bad values with an st::Error naming the flag, before any data is read: every text option's
// choices, then each component's checks.
void validate(const TrainConfig& config);
std::string default_data_dir(const std::string& dataset);

}  // namespace st
