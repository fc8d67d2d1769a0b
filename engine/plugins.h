// What the trainer asks of the rooms that plug into the engine (../shared/design.md, "Plug-in points"):
// models/ builds networks by name, schedules/ makes the learning rate lr(cycle, iteration) and the cycle
// search (the oracle), pruning/ makes a run's pruners, its initial masks, scores and their history. The
// engine includes none of them: st::install_components() (components/install.h) fills this table once,
// from every program's main, before any Trainer is made; their options are registered with it
// (engine/options.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/cycle_search.h"
#include "engine/input_spec.h"
#include "engine/learning_rate.h"
#include "engine/nn.h"
#include "engine/pruner.h"
#include "engine/rng.h"
#include "engine/train_config.h"

namespace st {

// The length of a run's dense cycle and of its epochs, known once the data is loaded.
struct RunSize {
  int64_t dense_steps = 0;
  int64_t batches_per_epoch = 0;
};

struct Plugins {
  // models/: a freshly initialised network of `model` for `input`, and the smallest image side it takes
  // (smaller inputs are zero-padded); an unknown name is an st::Error naming --model.
  std::function<std::unique_ptr<nn::Module>(const std::string& model, const InputSpec& input, Rng& rng)> build_model;
  std::function<int64_t(const std::string& model)> model_image_size;
  // schedules/: the learning rate of a run; its cycle search, or null when the config asks for none.
  std::function<std::unique_ptr<LearningRate>(const TrainConfig&, const RunSize&)> learning_rate;
  std::function<std::unique_ptr<CycleSearch>(const TrainConfig&)> cycle_search;
  // pruning/: the pruners a config asks for (refusing what does not fit the run's size), in registry order;
  // the masks of a fresh network (before it moves to its device); the history the config's pruning score
  // keeps (null: none); the scores `name` of every prunable tensor (history: the run's, given for the
  // config's pruning score); a network's parameters resized to the shapes of a structurally shrunk one.
  std::function<std::vector<std::unique_ptr<Pruner>>(const TrainConfig&, const RunSize&)> pruners;
  std::function<void(const TrainConfig&, nn::Module&)> initial_masks;
  std::function<std::unique_ptr<TrainingHistory>(const TrainConfig&, nn::Module&)> training_history;
  std::function<std::vector<Tensor>(const TrainConfig&, nn::Module&, const std::string& name, const ScoreData& data,
                                    Rng& rng, TrainingHistory* history)>
      scores;
  std::function<void(nn::Module&, const std::map<std::string, Shape>&)> resize_to_shapes;
};

void install_plugins(Plugins plugins);
// The installed table; an st::Error when install_components() was not called.
const Plugins& plugins();

}  // namespace st
