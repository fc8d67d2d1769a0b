// `sparsetrain export`: a run's checkpoint as PyTorch-loadable safetensors (engine/io/export.h), and
// with --check a second file <out>.check.safetensors holding a fixed random input (NCHW) and the
// logits sparsetrain computes for it in evaluation mode, for tools/export_check.py.
#include <fmt/format.h>

#include "engine/error.h"
#include "engine/io/export.h"
#include "tools/sparsetrain/commands.h"

namespace st::cli {

void add_export_flags(CLI::App& app, ExportOptions& o) {
  app.add_option("--run-dir", o.run_dir, "run directory to export")->required();
  app.add_option("--checkpoint", o.checkpoint, "checkpoint name in run-dir/checkpoints")->capture_default_str();
  app.add_option("--out", o.out, "output safetensors file")->required();
  app.add_flag("--check", o.check, "also write <out>.check.safetensors (input and sparsetrain's logits)");
}

int run_export(const ExportOptions& o) {
  const std::filesystem::path checkpoint =
      std::filesystem::path(o.run_dir) / "checkpoints" / (o.checkpoint + ".safetensors");
  if (!std::filesystem::exists(checkpoint))
    fail("--checkpoint: {} does not exist (see {}/checkpoints)", checkpoint.string(), o.run_dir);
  TrainConfig config = Trainer::config_of_checkpoint(checkpoint);
  config.train_limit = std::max<int64_t>(config.val_size + 1, 2000);  // the data is not needed: keep loading quick
  config.device = "cpu";  // the export reads the weights (and computes the check logits) on the host
  Trainer trainer(config);
  trainer.restore(checkpoint);
  nn::Module& model = trainer.model();
  const InputSpec& input = trainer.input_spec();
  io::write_safetensors(o.out, io::pytorch_state_dict(model, input));
  fmt::print("exported {} ({} parameters, {}) to {}\n", checkpoint.string(), model.parameter_count(), config.model,
             o.out);
  if (!o.check) return 0;
  Rng rng(12345);
  Tensor nhwc = Tensor::empty({2, input.height, input.width, input.channels});
  for (int64_t i = 0; i < nhwc.numel(); ++i) nhwc.data()[i] = rng.normal();
  model.train(false);
  const Tensor logits = model.forward(Variable(nhwc)).value();
  Tensor nchw = Tensor::empty({2, input.channels, input.height, input.width});
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t h = 0; h < input.height; ++h)
      for (int64_t w = 0; w < input.width; ++w)
        for (int64_t c = 0; c < input.channels; ++c)
          nchw.data()[((n * input.channels + c) * input.height + h) * input.width + w] =
              nhwc.data()[((n * input.height + h) * input.width + w) * input.channels + c];
  io::SafetensorsFile check;
  check.metadata["model"] = config.model;
  check.add_f32("input", nchw.shape(), nchw.data());
  check.add_f32("logits", logits.shape(), logits.data());
  io::write_safetensors(o.out + ".check.safetensors", check);
  fmt::print("wrote {}.check.safetensors (input and logits)\n", o.out);
  return 0;
}

}  // namespace st::cli
