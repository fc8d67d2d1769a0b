// `sparsetrain eval`: a run's checkpoint on one of its data splits (train, val or test, exactly as the run
// made them: the same training-image limit, validation hold-out and normalisation). Prints the accuracy,
// the mean loss, the accuracy per class and every prunable tensor's density (kept / total, MFLOPs per
// sample); --json prints the same as one JSON object.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "pruning/prune.h"
#include "tools/sparsetrain/commands.h"

namespace st::cli {

void add_eval_flags(CLI::App& app, EvalOptions& o) {
  app.add_option("--run-dir", o.run_dir, "run directory to evaluate")->required();
  app.add_option("--checkpoint", o.checkpoint, "checkpoint name in run-dir/checkpoints")->capture_default_str();
  app.add_option("--split", o.split, "train | val | test")->capture_default_str();
  app.add_option("--device", o.device, "auto | cpu | cuda")->capture_default_str();
  app.add_flag("--json", o.json, "print one JSON object instead of tables");
}

int run_eval(const EvalOptions& o) {
  const std::filesystem::path checkpoint =
      std::filesystem::path(o.run_dir) / "checkpoints" / (o.checkpoint + ".safetensors");
  if (!std::filesystem::exists(checkpoint))
    fail("--checkpoint: {} does not exist (see {}/checkpoints)", checkpoint.string(), o.run_dir);
  if (o.split != "train" && o.split != "val" && o.split != "test")
    fail("--split: expected train, val or test, got '{}'", o.split);
  TrainConfig config = Trainer::config_of_checkpoint(checkpoint);
  config.device = o.device;
  Trainer trainer(config);
  trainer.restore(checkpoint);
  const EvalResult result = trainer.evaluate(trainer.split(o.split, "--split"));

  nlohmann::json layers = nlohmann::json::array();
  std::vector<nn::Parameter*> prunable;
  for (nn::Parameter* p : trainer.model().parameters()) {
    if (!p->prunable()) continue;
    prunable.push_back(p);
    const int64_t kept = p->kept();
    layers.push_back({{"name", p->name},
                      {"shape", p->value().shape()},
                      {"kept", kept},
                      {"total", p->numel()},
                      {"density", static_cast<double>(kept) / static_cast<double>(std::max<int64_t>(p->numel(), 1))},
                      {"mflops_per_sample", 2.0 * static_cast<double>(kept * p->uses_per_sample) / 1e6}});
  }
  nlohmann::json classes = nlohmann::json::array();
  for (std::size_t c = 0; c < result.class_count.size(); ++c)
    classes.push_back({{"class", c},
                       {"images", result.class_count[c]},
                       {"correct", result.class_correct[c]},
                       {"accuracy", result.class_count[c] > 0 ? static_cast<double>(result.class_correct[c]) /
                                                                    static_cast<double>(result.class_count[c])
                                                              : 0.0}});
  const double density = pruning::global_density(prunable);
  if (o.json) {
    const nlohmann::json out = {{"checkpoint", checkpoint.string()}, {"model", config.model},
                                {"split", o.split},                  {"images", result.count},
                                {"accuracy", result.accuracy},       {"loss", result.loss},
                                {"density", density},                {"classes", classes},
                                {"layers", layers}};
    fmt::print("{}\n", out.dump());
    return 0;
  }
  fmt::print("{} ({}) on the {} split, {} images: accuracy {:.4f}, loss {:.4f}, density {:.4f}\n", checkpoint.string(),
             config.model, o.split, result.count, result.accuracy, result.loss, density);
  fmt::print("\n| class | images | correct | accuracy |\n|---:|---:|---:|---:|\n");
  for (const auto& c : classes)
    fmt::print("| {} | {} | {} | {:.4f} |\n", c.at("class").get<std::size_t>(), c.at("images").get<int64_t>(),
               c.at("correct").get<int64_t>(), c.at("accuracy").get<double>());
  fmt::print("\n| layer | shape | kept / total | density | MFLOPs per sample |\n|---|---|---:|---:|---:|\n");
  for (const auto& l : layers) {
    std::string shape;
    for (const auto& d : l.at("shape")) shape += (shape.empty() ? "" : "x") + std::to_string(d.get<int64_t>());
    fmt::print("| {} | {} | {} / {} | {:.4f} | {:.3f} |\n", l.at("name").get<std::string>(), shape,
               l.at("kept").get<int64_t>(), l.at("total").get<int64_t>(), l.at("density").get<double>(),
               l.at("mflops_per_sample").get<double>());
  }
  return 0;
}

}  // namespace st::cli
