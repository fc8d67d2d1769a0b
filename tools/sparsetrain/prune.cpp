// `sparsetrain prune`: one-shot pruning of a run's checkpoint with any score and allocation, written as a
// new checkpoint of the same run (never over an existing file). Prints the per-layer table and the test
// accuracy before and after pruning (no fine-tuning); `sparsetrain train --init-from` fine-tunes the result
// and `sparsetrain eval --checkpoint NAME` evaluates it.
#include <fmt/format.h>

#include "engine/error.h"
#include "pruning/options.h"
#include "pruning/prune.h"
#include "pruning/scores.h"
#include "tools/sparsetrain/commands.h"

namespace st::cli {

void add_prune_flags(CLI::App& app, PruneOptions& o) {
  app.add_option("--run-dir", o.run_dir, "run directory holding the checkpoint")->required();
  app.add_option("--checkpoint", o.checkpoint, "checkpoint name in run-dir/checkpoints")->capture_default_str();
  app.add_option("--out-checkpoint", o.out_checkpoint, "name of the new checkpoint in run-dir/checkpoints")
      ->required();
  app.add_option("--density", o.density, "keep this fraction of the prunable weights (0 < D <= 1)");
  app.add_option("--rate", o.rate, "or remove this fraction of the remaining weights (0 < R < 1)");
  add_option_flags(app, o.pruning, {"prune"});  // --prune-score, --prune-allocation, --keep-*, --score-batches
  app.add_option("--device", o.device, "auto | cpu | cuda (scores and evaluation)")->capture_default_str();
}

int run_prune(const PruneOptions& o) {
  const std::filesystem::path checkpoint =
      std::filesystem::path(o.run_dir) / "checkpoints" / (o.checkpoint + ".safetensors");
  if (!std::filesystem::exists(checkpoint))
    fail("--checkpoint: {} does not exist (see {}/checkpoints)", checkpoint.string(), o.run_dir);
  if ((o.density != 0.0) == (o.rate != 0.0))
    fail("--density / --rate: give exactly one (got --density {} and --rate {})", o.density, o.rate);
  if (o.density < 0.0 || o.density > 1.0) fail("--density: must be in (0, 1], got {}", o.density);
  if (o.rate < 0.0 || o.rate >= 1.0) fail("--rate: must be in (0, 1), got {}", o.rate);
  if (o.out_checkpoint.empty() || o.out_checkpoint.find('/') != std::string::npos)
    fail("--out-checkpoint: expected a name without '/', got '{}'", o.out_checkpoint);
  TrainConfig config = Trainer::config_of_checkpoint(checkpoint);
  config.device = o.device;
  pruning::PruneSpec& prune = config.get<pruning::PruneSpec>();
  prune = o.pruning.get<pruning::PruneSpec>();
  config.get<pruning::ScoringOptions>() = o.pruning.get<pruning::ScoringOptions>();
  Trainer trainer(config);  // validates the score, allocation and score batches
  const std::filesystem::path out = trainer.checkpoint_path(o.out_checkpoint);
  if (std::filesystem::exists(out)) fail("--out-checkpoint: {} exists already (choose another name)", out.string());
  trainer.restore(checkpoint);
  const EvalResult before = trainer.evaluate(trainer.split("test", "--split"));
  pruning::PruneSpec spec = prune;
  if (o.rate > 0.0) spec.rate = o.rate;
  pruning::validate(spec);
  std::vector<LayerChange> changes;
  trainer.change_model([&](PruningRun& run) {
    const std::vector<Tensor> scores = run.scores(spec.score, 3'000'000);
    const auto parameters = run.model().parameters();
    changes = o.density > 0.0 ? pruning::prune_to_density(parameters, scores, o.density, spec)
                              : pruning::prune_fraction(parameters, scores, spec);
    for (nn::Parameter* p : parameters) {
      p->apply_mask();
      p->mask_changed();
    }
    run.optimizer().reset_state();
  });
  const EvalResult after = trainer.evaluate(trainer.split("test", "--split"));
  fmt::print("one-shot pruning of {} ({}, {} {}): global density {:.4f}\n{}", checkpoint.string(), config.model,
             spec.allocation, spec.score, pruning::global_density(trainer.model().parameters()),
             pruning::format_prune_table(changes));
  fmt::print("test accuracy {:.4f} before, {:.4f} after pruning (no fine-tuning)\n", before.accuracy, after.accuracy);
  trainer.save_new_checkpoint(o.out_checkpoint, "--out-checkpoint");
  fmt::print("wrote {}; fine-tune it with: sparsetrain train --model {} --init-from {} --run-dir NEW_DIR\n",
             out.string(), config.model, out.string());
  return 0;
}

}  // namespace st::cli
