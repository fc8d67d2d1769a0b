// `sparsetrain import`: a PyTorch state dict (safetensors, float32, the names and layouts `sparsetrain
// export` writes: the natural PyTorch definitions, torchvision's for resnet18/resnet50) into a sparsetrain
// checkpoint of a new or existing run directory, never over an existing file. The run's data set fixes
// the input (channels, size, classes) the model is built for. Then `sparsetrain eval`, `prune` and
// `train --init-from` take it.
#include <fmt/format.h>

#include "engine/error.h"
#include "engine/io/export.h"
#include "pruning/prune.h"
#include "tools/sparsetrain/commands.h"

namespace st::cli {

void add_import_flags(CLI::App& app, ImportOptions& o) {
  // the run's options that fix the network: its model and the data set it is for (its input)
  add_option_flags(app, o.config, {"run"}, {"model", "data", "data-dir", "image-size", "run-dir"});
  app.get_option("--model")->required()->default_str("");
  app.get_option("--run-dir")->required()->default_str("");
  app.add_option("--state", o.state, "PyTorch state dict as safetensors (float32)")->required();
  app.add_option("--checkpoint", o.checkpoint, "name of the new checkpoint in run-dir/checkpoints")
      ->capture_default_str();
}

int run_import(ImportOptions o) {
  if (!std::filesystem::is_regular_file(o.state)) fail("--state: {} is not a file", o.state);
  if (o.checkpoint.empty() || o.checkpoint.find('/') != std::string::npos)
    fail("--checkpoint: expected a name without '/', got '{}'", o.checkpoint);
  o.config.device = "cpu";
  Trainer trainer(o.config);
  const std::filesystem::path out = trainer.checkpoint_path(o.checkpoint);
  if (std::filesystem::exists(out)) fail("--checkpoint: {} exists already (choose another name)", out.string());
  io::load_pytorch_state_dict(trainer.model(), trainer.input_spec(), io::read_safetensors(o.state));
  trainer.save_new_checkpoint(o.checkpoint, "--checkpoint");
  fmt::print("imported {} into {} ({}, {} parameters, density {:.4f})\n", o.state, out.string(), o.config.model,
             trainer.model().parameter_count(), pruning::global_density(trainer.model().parameters()));
  return 0;
}

}  // namespace st::cli
