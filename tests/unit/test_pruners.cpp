// The step-loop pruners (pruning/pruners.h): the registry, which pruners a config makes, and the points
// of the step loop where each acts; and the oracle as the trainer's cycle search. (That the methods train bit-identically to their earlier Trainer
// form was checked against the previous binary when they moved; the e2e suite covers their runs and
// resumes.)
#include <doctest/doctest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/plugins.h"
#include "engine/trainer.h"
#include "pruning/pruners.h"
#include "schedules/oracle_search.h"
#include "schedules/options.h"
#include "schedules/sparsity.h"

namespace {

std::vector<std::string> names(const std::vector<std::unique_ptr<st::Pruner>>& pruners) {
  std::vector<std::string> out;
  for (const auto& p : pruners) out.push_back(p->name());
  return out;
}

// The steps of [0, steps) of cycle `cycle` at which the pruner acts before the step (or after the backward).
std::vector<int64_t> acting_steps(const st::Pruner& pruner, int cycle, int64_t steps, int64_t batches, bool after) {
  std::vector<int64_t> out;
  for (int64_t t = 0; t < steps; ++t) {
    const st::StepPoint at{cycle, t, steps, batches};
    if (after ? pruner.acts_after_backward(at) : pruner.acts_before_step(at)) out.push_back(t);
  }
  return out;
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("pruner registry: names, lookup errors, and the pruners a config asks for, in registry order") {
    std::vector<std::string> registered;
    for (const auto& entry : st::pruning::pruner_registry()) registered.push_back(entry.name);
    CHECK(registered == std::vector<std::string>{"dst", "init", "early", "gmp", "imp", "structured", "select"});
    CHECK(st::pruning::find_pruner("gmp").name == "gmp");
    CHECK_THROWS_WITH_AS(st::pruning::find_pruner("lottery"),
                         doctest::Contains("unknown pruning method 'lottery' (known: dst, init, early, gmp, imp, structured, select)"), st::Error);

    const st::RunSize size{10000, 50};
    st::TrainConfig config;
    CHECK(st::pruning::make_pruners(config, size).empty());  // the default run prunes nothing inside training
    config.get<st::schedules::GmpSchedule>().final_sparsity = 0.5;
    config.get<st::pruning::DstOptions>().method = "rigl";
    CHECK(names(st::pruning::make_pruners(config, size)) == std::vector<std::string>{"dst", "gmp"});
    config.get<st::pruning::InitOptions>().score = "snip";
    config.get<st::pruning::EarlyOptions>().rounds = 2;
    config.get<st::pruning::EarlyOptions>().sparsity = 0.5;
    CHECK(names(st::pruning::make_pruners(config, size)) == std::vector<std::string>{"dst", "init", "early", "gmp"});
    // between cycles: IMP, or structured shrinking instead, or unit selection before both
    config = {};
    config.cycles_count = 3;
    CHECK(names(st::pruning::make_pruners(config, size)) == std::vector<std::string>{"imp"});
    config.get<st::pruning::StructuredOptions>().fraction = 0.3;
    CHECK(names(st::pruning::make_pruners(config, size)) == std::vector<std::string>{"structured"});
    config.get<st::pruning::SelectOptions>().method = "gfs";
    CHECK(names(st::pruning::make_pruners(config, size)) == std::vector<std::string>{"select"});
    config = {};
    config.cycles_count = 2;
    const auto imp = st::pruning::make_imp_pruner(config, size);
    REQUIRE(imp);
    CHECK(imp->acts_at_cycle_end(1));
    CHECK_FALSE(imp->acts_before_step({0, 0, 100, 10}));
  }

  TEST_CASE("step-loop pruners act where their schedules say, in the first cycle only") {
    const st::RunSize size{1000, 50};
    st::TrainConfig config;
    config.get<st::pruning::DstOptions>().method = "set";
    config.get<st::pruning::DstOptions>().interval = 100;
    config.get<st::pruning::DstOptions>().end_fraction = 0.75;
    auto dst = st::pruning::make_dst_pruner(config, size);
    REQUIRE(dst);
    // the initial mask before step 0; updates after the backward of steps 100, 200, .. below 750 of 1000
    CHECK(acting_steps(*dst, 0, 1000, 50, false) == std::vector<int64_t>{0});
    CHECK(acting_steps(*dst, 0, 1000, 50, true) == std::vector<int64_t>{100, 200, 300, 400, 500, 600, 700});
    CHECK(acting_steps(*dst, 1, 1000, 50, true).empty());
    config.get<st::pruning::InitOptions>().score = "snip";  // pruning at initialisation makes the mask: no random one
    CHECK(acting_steps(*st::pruning::make_dst_pruner(config, size), 0, 1000, 50, false).empty());

    config = {};
    config.get<st::pruning::InitOptions>().score = "synflow";
    auto init = st::pruning::make_init_pruner(config, size);
    REQUIRE(init);
    CHECK(acting_steps(*init, 0, 300, 50, false) == std::vector<int64_t>{0});
    CHECK(acting_steps(*init, 0, 300, 50, true).empty());
    CHECK(acting_steps(*init, 1, 300, 50, false).empty());

    config = {};
    config.get<st::pruning::EarlyOptions>().rounds = 3;
    config.get<st::pruning::EarlyOptions>().sparsity = 0.5;
    auto early = st::pruning::make_early_pruner(config, size);
    REQUIRE(early);
    CHECK(acting_steps(*early, 0, 1000, 50, false) == std::vector<int64_t>{50, 100, 150});  // epoch ends 1..3

    config = {};
    config.get<st::schedules::GmpSchedule>().final_sparsity = 0.9;
    config.get<st::schedules::GmpSchedule>().start_iter = 10;
    config.get<st::schedules::GmpSchedule>().interval_iters = 20;
    config.get<st::schedules::GmpSchedule>().steps = 3;
    auto gmp = st::pruning::make_gmp_pruner(config, size);
    REQUIRE(gmp);
    // t0 + k dt, k = 0..n, where the sparsity is above 0 (at t0 it is s_i = 0: nothing to prune)
    CHECK(acting_steps(*gmp, 0, 200, 50, false) == std::vector<int64_t>{30, 50, 70});
    config.get<st::schedules::GmpSchedule>().initial_sparsity = 0.1;
    CHECK(acting_steps(*st::pruning::make_gmp_pruner(config, size), 0, 200, 50, false) == std::vector<int64_t>{10, 30, 50, 70});
    CHECK(acting_steps(*gmp, 1, 200, 50, false).empty());
    config.get<st::schedules::GmpSchedule>().final_sparsity = 0.0;
    CHECK_FALSE(st::pruning::make_gmp_pruner(config, size));
  }
}

// The oracle as a cycle search (schedules/oracle_search.h), driven through scripted branches.
namespace {

struct ScriptedBranches final : st::CycleBranches {
  std::vector<double> val;  // validation accuracy of the branch at each max_lr, in grid order
  std::vector<double> trained;
  double chosen = -1.0;
  std::vector<std::string> notes;
  std::vector<nlohmann::json> events;
  std::string report_name, report;
  Score train(double max_lr) override {
    trained.push_back(max_lr);
    return {val[trained.size() - 1], 0.5};
  }
  void choose_current() override { chosen = trained.back(); }
  void note(const std::string& line) override { notes.push_back(line); }
  void log(const nlohmann::json& event) override { events.push_back(event); }
  void write_report(const std::string& name, const std::string& text) override {
    report_name = name;
    report = text;
  }
};

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("the oracle trains one branch per grid max_lr and continues from the first best on validation") {
    st::TrainConfig config;
    CHECK_FALSE(st::schedules::make_cycle_search(config));  // no grid, no search
    config.get<st::schedules::OracleOptions>().grid = {0.01, 0.03, 0.1};
    const auto oracle = st::schedules::make_cycle_search(config);
    REQUIRE(oracle);
    ScriptedBranches branches;
    branches.val = {0.70, 0.80, 0.80};  // a tie: the smaller max_lr, trained first, is kept
    oracle->search(branches, 2, 0.64);
    CHECK(branches.trained == std::vector<double>{0.01, 0.03, 0.1});
    CHECK(branches.chosen == 0.03);
    REQUIRE(branches.events.size() == 3);
    CHECK(branches.events[1]["event"] == "oracle_branch");
    CHECK(branches.events[1]["cycle"] == 2);
    CHECK(branches.events[1]["max_lr"] == 0.03);
    CHECK(branches.notes[0] == "oracle cycle 2 max_lr 0.01: val acc 0.7000, test acc 0.5000");
    CHECK(branches.report_name == "oracle.md");
    CHECK(branches.report.find("# Oracle: best max_lr per pruning cycle") == 0);
  }
}

// A pruner with an after-step hook and state of its own, plugged in beside the registry's (engine/plugins.h).
namespace {

struct CountingPruner final : st::Pruner {
  st::Tensor steps = st::Tensor::zeros({1});  // optimizer steps seen, as the method's checkpointed state
  int64_t last_step = -1;
  std::string name() const override { return "counting"; }
  bool acts_after_step(const st::StepPoint&) const override { return true; }
  void after_step(st::PruningRun&, const st::StepPoint& at) override {
    CHECK(at.step == last_step + 1);  // once per step, in order
    last_step = at.step;
    steps.data()[0] += 1.0f;
  }
  std::vector<st::Tensor*> state() override { return {&steps}; }
};

// Installs plugins that add a CountingPruner to every run's pruners; the installed ones come back at the end.
class WithCountingPruner {
 public:
  WithCountingPruner() : installed_(st::plugins()) {
    st::Plugins with = installed_;
    auto made = made_;
    with.pruners = [installed = installed_, made](const st::TrainConfig& config, const st::RunSize& size) {
      auto pruners = installed.pruners(config, size);
      auto counting = std::make_unique<CountingPruner>();
      made->push_back(counting.get());
      pruners.push_back(std::move(counting));
      return pruners;
    };
    st::install_plugins(with);
  }
  ~WithCountingPruner() { st::install_plugins(installed_); }
  WithCountingPruner(const WithCountingPruner&) = delete;
  WithCountingPruner& operator=(const WithCountingPruner&) = delete;
  const std::vector<CountingPruner*>& made() const { return *made_; }

 private:
  st::Plugins installed_;
  std::shared_ptr<std::vector<CountingPruner*>> made_ = std::make_shared<std::vector<CountingPruner*>>();
};

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("a pruner's after-step hook runs after every optimizer step, and its own state is checkpointed") {
    if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist")) {
      MESSAGE("skipped: /usr/share/datasets/fashion-mnist is not installed (apt-get install dataset-fashion-mnist)");
      return;
    }
    const std::filesystem::path dir = std::filesystem::temp_directory_path() / "sparsetrain-unit-pruner-state";
    std::filesystem::remove_all(dir);  // this test's own directory
    st::TrainConfig config;
    config.train_limit = 700;
    config.val_size = 100;
    config.batch_size = 100;
    config.epochs = 2;  // 6 steps per epoch
    config.device = "cpu";
    config.progress = "quiet";
    config.run_dir = dir.string();
    const WithCountingPruner plugged;
    st::Trainer trainer(config);
    trainer.run(false);
    REQUIRE(plugged.made().size() == 1);
    CHECK(plugged.made()[0]->steps.data()[0] == 12.0f);
    // a second trainer of the run restores the pruner's state from the final checkpoint
    st::Trainer again(config);
    REQUIRE(plugged.made().size() == 2);
    CHECK(plugged.made()[1]->steps.data()[0] == 0.0f);
    again.restore(again.checkpoint_path("final"));
    CHECK(plugged.made()[1]->steps.data()[0] == 12.0f);
    std::filesystem::remove_all(dir);
  }
}
