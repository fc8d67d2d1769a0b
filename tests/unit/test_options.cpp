// The option tables (engine/options.h, engine/train_config.h): one key per option across the components,
// config.json written and read back for every option, the nested config.json of runs made before the
// tables, and refusals naming the key or flag.
#include <doctest/doctest.h>

#include <set>
#include <string>
#include <type_traits>

#include "engine/error.h"
#include "engine/train_config.h"
#include "pruning/options.h"
#include "pruning/prune.h"
#include "schedules/cycles.h"
#include "schedules/lr_schedule.h"
#include "schedules/options.h"
#include "schedules/sparsity.h"

namespace {

// A value of the option's type other than `config`'s (a different choice for text options with choices).
nlohmann::json other_value(const st::Option& option, const st::TrainConfig& config) {
  const nlohmann::json now = st::option_value(option, config);
  if (now.is_boolean()) return !now.get<bool>();
  if (now.is_number_unsigned()) return now.get<uint64_t>() + 3;
  if (now.is_number_integer()) return now.get<int64_t>() + 3;
  if (now.is_number_float()) return now.get<double>() + 0.25;
  if (now.is_array()) return nlohmann::json::array({2, 5});
  for (const std::string& choice : option.choices)
    if (choice != now.get<std::string>()) return choice;
  return now.get<std::string>() + "-other";
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("option tables: every component's options, one key each, with help") {
    std::set<std::string> components;
    for (const st::Component& c : st::components()) components.insert(c.name);
    CHECK(components == std::set<std::string>{"run", "schedule", "oracle", "prune", "dst", "init", "early", "gmp",
                                              "imp", "structured", "select"});
    std::set<std::string> keys;
    for (const st::Option* o : st::all_options()) {
      CHECK_MESSAGE(keys.insert(o->key).second, "key " << o->key << " twice");
      CHECK_MESSAGE(!o->help.empty(), "key " << o->key << " has no help");
      CHECK(o->key.find('_') == std::string::npos);  // one spelling: dashes, as the flags
    }
    CHECK(keys.size() > 80);
    CHECK(st::find_option("dst-interval") != nullptr);
    CHECK(st::find_option("dst_interval") == nullptr);
  }

  TEST_CASE(
      "config.json: every option written and read back; a missing key is its default; unknown and mistyped keys "
      "refused") {
    st::TrainConfig changed;
    for (const st::Option* o : st::all_options()) st::set_option(*o, changed, other_value(*o, st::TrainConfig{}));
    const nlohmann::json json = st::to_json(changed);
    const st::TrainConfig back = st::train_config_from_json(json);
    int compared = 0;
    for (const st::Option* o : st::all_options()) {
      if (o->transient) {
        CHECK_FALSE(json.contains(o->key));
        continue;
      }
      CHECK_MESSAGE(st::option_value(*o, back) == st::option_value(*o, changed), "key " << o->key);
      CHECK_MESSAGE(st::option_value(*o, back) != st::option_value(*o, st::TrainConfig{}), "key " << o->key);
      ++compared;
    }
    CHECK(compared > 80);
    // the blocks are the components' structs
    CHECK(back.get<st::pruning::DstOptions>().interval == 103);
    CHECK(back.get<st::schedules::LrSchedule>().milestones == std::vector<int64_t>{2, 5});

    nlohmann::json unknown = json;
    unknown["dst_interval"] = 5;
    CHECK_THROWS_WITH_AS(st::train_config_from_json(unknown), doctest::Contains("unknown key 'dst_interval'"),
                         st::Error);
    // a key absent from the file (an option added after the run was made) reads as its default
    nlohmann::json missing = json;
    missing.erase("epochs");
    CHECK(st::train_config_from_json(missing).epochs == st::TrainConfig{}.epochs);
    nlohmann::json mistyped = json;
    mistyped["dst-interval"] = "often";
    CHECK_THROWS_WITH_AS(st::train_config_from_json(mistyped), doctest::Contains("key 'dst-interval'"), st::Error);
    mistyped = json;
    mistyped["seed"] = -1;
    CHECK_THROWS_WITH_AS(st::train_config_from_json(mistyped), doctest::Contains("key 'seed'"), st::Error);
  }

  TEST_CASE("config.json of runs made before the option tables (nested, underscored) reads into the same options") {
    const nlohmann::json legacy = {
        {"model", "lenet5"},
        {"dataset", "mnist"},
        {"batch_size", 64},
        {"cycles_count", 4},
        {"iters_per_cycle", 900},
        {"schedule", {{"shape", "step"}, {"max_lr", 0.1}, {"milestones", {10, 20}}, {"warmup_iters", 5}}},
        {"cycles", {{"kind", "silo"}, {"silo_alpha", 0.07}, {"prune_rate", 0.3}}},
        {"prune", {{"score", "snip"}, {"allocation", "erk"}, {"keep_first_dense", true}}},
        {"select", {{"method", "gfs"}, {"tolerance", 0.05}, {"finetune_steps", 7}}},  // before select.target
        {"structured", {{"fraction", 0.3}, {"score", "l2"}}},
        {"dst", {{"method", "set"}, {"end_fraction", 0.5}, {"interval", 40}}},
        {"gmp", {{"start_iter", 7}, {"interval_iters", 9}, {"final_sparsity", 0.8}}},
        {"optimizer", {{"name", "adam"}, {"weight_decay", 0.001}, {"beta2", 0.99}}},
        {"init_score", "synflow"},
        {"init_density", 0.2},
        {"density", 0.5},
        {"oracle_grid", {0.1, 0.2}},
        {"score_batches", 3},
        {"control", "reinit"},
        {"early_rounds", 2},
        {"sparse_kernels", "on"},
    };
    const st::TrainConfig c = st::train_config_from_json(legacy);
    CHECK(c.model == "lenet5");
    CHECK(c.dataset == "mnist");
    CHECK(c.batch_size == 64);
    CHECK(c.cycles_count == 4);
    CHECK(c.iters_per_cycle == 900);
    CHECK(c.optimizer.name == "adam");
    CHECK(c.optimizer.weight_decay == 0.001f);
    CHECK(c.optimizer.beta2 == 0.99f);
    CHECK(c.sparse_kernels == "on");
    const auto& shape = c.get<st::schedules::LrSchedule>();
    CHECK(shape.shape == "step");
    CHECK(shape.max_lr == 0.1);
    CHECK(shape.milestones == std::vector<int64_t>{10, 20});
    CHECK(shape.warmup_iters == 5);
    const auto& policy = c.get<st::schedules::CyclePolicy>();
    CHECK(policy.kind == "silo");
    CHECK(policy.silo_alpha == 0.07);
    CHECK(policy.prune_rate == 0.3);
    const auto& prune = c.get<st::pruning::PruneSpec>();
    CHECK(prune.score == "snip");
    CHECK(prune.allocation == "erk");
    CHECK(prune.keep_first_dense);
    const auto& select = c.get<st::pruning::SelectOptions>();
    CHECK(select.method == "gfs");
    CHECK(select.tolerance == 0.05);
    CHECK(select.finetune_steps == 7);
    CHECK(select.target == "original");  // what runs made before the option measured against
    CHECK(c.get<st::pruning::StructuredOptions>().fraction == 0.3);
    CHECK(c.get<st::pruning::StructuredOptions>().score == "l2");
    CHECK(c.get<st::pruning::DstOptions>().method == "set");
    CHECK(c.get<st::pruning::DstOptions>().end_fraction == 0.5);
    CHECK(c.get<st::pruning::DstOptions>().interval == 40);
    CHECK(c.get<st::schedules::GmpSchedule>().start_iter == 7);
    CHECK(c.get<st::schedules::GmpSchedule>().interval_iters == 9);
    CHECK(c.get<st::schedules::GmpSchedule>().final_sparsity == 0.8);
    CHECK(c.get<st::pruning::InitOptions>().score == "synflow");
    CHECK(c.get<st::pruning::InitOptions>().density == 0.2);
    CHECK(c.get<st::pruning::InitOptions>().random_density == 0.5);
    CHECK(c.get<st::schedules::OracleOptions>().grid == std::vector<double>{0.1, 0.2});
    CHECK(c.get<st::pruning::ScoringOptions>().batches == 3);
    CHECK(c.get<st::pruning::ImpOptions>().control == "reinit");
    CHECK(c.get<st::pruning::EarlyOptions>().rounds == 2);
  }

  TEST_CASE("validate: a value outside an option's choices is refused naming the flag and the choices") {
    st::TrainConfig c;
    c.get<st::schedules::CyclePolicy>().kind = "sometimes";
    CHECK_THROWS_WITH_AS(
        st::validate(c),
        doctest::Contains("--cycle-policy: expected restart, weight_rewind, lr_rewind, finetune or silo, "
                          "got 'sometimes'"),
        st::Error);
    c = {};
    c.get<st::pruning::DstOptions>().method = "grow";
    CHECK_THROWS_WITH_AS(st::validate(c), doctest::Contains("--dst: expected rigl or set (or nothing), got 'grow'"),
                         st::Error);
    c = {};
    c.get<st::pruning::DstOptions>().method = "rigl";
    c.get<st::pruning::DstOptions>().interval = 0;
    CHECK_THROWS_WITH_AS(st::validate(c), doctest::Contains("--dst-interval: must be positive"), st::Error);
    c = {};
    c.model = "lenet301";
    CHECK_THROWS_WITH_AS(st::validate(c), doctest::Contains("--model: unknown model 'lenet301'"), st::Error);
    CHECK_NOTHROW(st::validate(st::TrainConfig{}));
  }
}
