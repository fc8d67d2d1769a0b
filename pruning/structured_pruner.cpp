// Structured pruning between cycles, as a pruner: before cycle k + 1, physically remove
// --structured-prune of the channels of every coupled channel group by --structured-score
// (pruning/structured.h); the optimizer is rebuilt for the new shapes.
#include <fmt/format.h>

#include "engine/error.h"
#include "pruning/model_size.h"
#include "pruning/pruners.h"
#include "pruning/structured.h"
#include "schedules/cycles.h"

namespace st::pruning {
namespace {

class StructuredShrink final : public Pruner {
 public:
  explicit StructuredShrink(const TrainConfig& config)
      : spec_{config.get<StructuredOptions>().fraction, config.get<StructuredOptions>().score} {}

  std::string name() const override { return "structured"; }

  bool acts_at_cycle_end(int) const override { return true; }
  void at_cycle_end(PruningRun& run, int next_cycle) override {
    const ModelSize before = model_size(run.model());
    const auto groups = prune_filters(run.model(), spec_, run.score_data(1000 + next_cycle));
    run.rebuild_optimizer();  // state tensors of the new shapes
    const ModelSize after = model_size(run.model());
    std::string table = fmt::format("{:<34} {:>9} {:>9}\n", "channel group", "before", "after");
    for (const auto& g : groups) table += fmt::format("{:<34} {:>9} {:>9}\n", g.name, g.channels_before, g.channels_after);
    fmt::print("structured pruning before cycle {} ({} of the channels of every group by {}):\n{}{}", next_cycle,
               spec_.fraction, spec_.score, table, size_table(before, after));
    nlohmann::json json_groups = nlohmann::json::array();
    for (const auto& g : groups)
      json_groups.push_back({{"name", g.name}, {"before", g.channels_before}, {"after", g.channels_after}});
    run.log({{"event", "structured_prune"},
             {"cycle", next_cycle},
             {"groups", json_groups},
             {"parameters_before", before.parameters},
             {"parameters_after", after.parameters},
             {"flops_before", before.flops},
             {"flops_after", after.flops}});
  }

 private:
  StructuredSpec spec_;
};

}  // namespace

std::unique_ptr<Pruner> make_structured_pruner(const TrainConfig& config, const RunSize&) {
  if (config.get<StructuredOptions>().fraction <= 0.0 || !config.get<SelectOptions>().method.empty()) return nullptr;
  return std::make_unique<StructuredShrink>(config);
}

Component structured_options() {
  using O = StructuredOptions;
  Component c;
  c.name = "structured";
  c.title = "Structured pruning between cycles (pruning/structured_pruner.cpp)";
  c.options = {
      option<O>("structured-prune", &O::fraction,
                "between cycles, physically remove this fraction of the channels of every channel group"),
      option<O>("structured-score", &O::score, "filter score",
                {"l1", "l2", "snip", "lp_biased", "hg", "abs_hg", "taylor"}),
  };
  c.validate = [](const TrainConfig& config) {
    const O& o = config.get<O>();
    if (o.fraction == 0.0) return;
    validate(StructuredSpec{o.fraction, o.score});
    if (config.cycles_count < 2) fail("--structured-prune: needs --cycles 2 or more (pruning happens between cycles)");
    if (config.get<schedules::CyclePolicy>().kind == "weight_rewind")
      fail("--structured-prune: weight rewinding cannot restore weights of removed channels; use lr_rewind or finetune");
  };
  return c;
}

}  // namespace st::pruning
