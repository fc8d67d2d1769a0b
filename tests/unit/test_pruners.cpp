// The step-loop pruners (pruning/pruners.h): the registry, which pruners a config makes, and the points
// of the step loop where each acts; and the oracle as the trainer's cycle search. (That the methods train bit-identically to their earlier Trainer
// form was checked against the previous binary when they moved; the e2e suite covers their runs and
// resumes.)
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "engine/error.h"
#include "pruning/pruners.h"
#include "schedules/oracle_search.h"

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

    st::TrainConfig config;
    CHECK(st::pruning::make_pruners(config).empty());  // the default run prunes nothing inside training
    config.gmp.final_sparsity = 0.5;
    config.dst = "rigl";
    CHECK(names(st::pruning::make_pruners(config)) == std::vector<std::string>{"dst", "gmp"});
    config.init_score = "snip";
    config.early_rounds = 2;
    config.early_sparsity = 0.5;
    CHECK(names(st::pruning::make_pruners(config)) == std::vector<std::string>{"dst", "init", "early", "gmp"});
    // between cycles: IMP, or structured shrinking instead, or unit selection before both
    config = {};
    config.cycles_count = 3;
    CHECK(names(st::pruning::make_pruners(config)) == std::vector<std::string>{"imp"});
    config.structured_fraction = 0.3;
    CHECK(names(st::pruning::make_pruners(config)) == std::vector<std::string>{"structured"});
    config.select_method = "gfs";
    CHECK(names(st::pruning::make_pruners(config)) == std::vector<std::string>{"select"});
    config = {};
    config.cycles_count = 2;
    const auto imp = st::pruning::make_imp_pruner(config);
    REQUIRE(imp);
    CHECK(imp->acts_at_cycle_end(1));
    CHECK_FALSE(imp->acts_before_step({0, 0, 100, 10}));
  }

  TEST_CASE("step-loop pruners act where their schedules say, in the first cycle only") {
    st::TrainConfig config;
    config.dst = "set";
    config.dst_interval = 100;
    config.dst_end_fraction = 0.75;
    auto dst = st::pruning::make_dst_pruner(config);
    REQUIRE(dst);
    // the initial mask before step 0; updates after the backward of steps 100, 200, .. below 750 of 1000
    CHECK(acting_steps(*dst, 0, 1000, 50, false) == std::vector<int64_t>{0});
    CHECK(acting_steps(*dst, 0, 1000, 50, true) == std::vector<int64_t>{100, 200, 300, 400, 500, 600, 700});
    CHECK(acting_steps(*dst, 1, 1000, 50, true).empty());
    config.init_score = "snip";  // pruning at initialisation makes the mask: no random one
    CHECK(acting_steps(*st::pruning::make_dst_pruner(config), 0, 1000, 50, false).empty());

    config = {};
    config.init_score = "synflow";
    auto init = st::pruning::make_init_pruner(config);
    REQUIRE(init);
    CHECK(acting_steps(*init, 0, 300, 50, false) == std::vector<int64_t>{0});
    CHECK(acting_steps(*init, 0, 300, 50, true).empty());
    CHECK(acting_steps(*init, 1, 300, 50, false).empty());

    config = {};
    config.early_rounds = 3;
    config.early_sparsity = 0.5;
    auto early = st::pruning::make_early_pruner(config);
    REQUIRE(early);
    CHECK(acting_steps(*early, 0, 1000, 50, false) == std::vector<int64_t>{50, 100, 150});  // epoch ends 1..3

    config = {};
    config.gmp.final_sparsity = 0.9;
    config.gmp.start_iter = 10;
    config.gmp.interval_iters = 20;
    config.gmp.steps = 3;
    auto gmp = st::pruning::make_gmp_pruner(config);
    REQUIRE(gmp);
    // t0 + k dt, k = 0..n, where the sparsity is above 0 (at t0 it is s_i = 0: nothing to prune)
    CHECK(acting_steps(*gmp, 0, 200, 50, false) == std::vector<int64_t>{30, 50, 70});
    config.gmp.initial_sparsity = 0.1;
    CHECK(acting_steps(*st::pruning::make_gmp_pruner(config), 0, 200, 50, false) == std::vector<int64_t>{10, 30, 50, 70});
    CHECK(acting_steps(*gmp, 1, 200, 50, false).empty());
    config.gmp.final_sparsity = 0.0;
    CHECK_FALSE(st::pruning::make_gmp_pruner(config));
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
    config.oracle_grid = {0.01, 0.03, 0.1};
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
