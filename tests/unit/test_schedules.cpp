// Schedules against their formulas (../shared/spec/schedules.md), evaluated independently here.
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>

#include "engine/error.h"
#include "schedules/cycles.h"
#include "schedules/lr_schedule.h"

using namespace st;
using namespace st::schedules;

namespace {

LrSchedule shape_of(const std::string& name, double max_lr) {
  LrSchedule s;
  s.shape = name;
  s.max_lr = max_lr;
  return s;
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("constant and step (multistep) shapes") {
    CHECK(learning_rate(shape_of("constant", 0.1), 0, 100) == doctest::Approx(0.1));
    CHECK(learning_rate(shape_of("constant", 0.1), 99, 100) == doctest::Approx(0.1));
    LrSchedule step = shape_of("step", 0.2);
    step.milestones = {30, 60};
    CHECK(learning_rate(step, 29, 100) == doctest::Approx(0.2));
    CHECK(learning_rate(step, 30, 100) == doctest::Approx(0.02));
    CHECK(learning_rate(step, 60, 100) == doctest::Approx(0.002));
    CHECK(learning_rate(step, 99, 100) == doctest::Approx(0.002));
  }

  TEST_CASE("linear warmup ramps from eta_W / W and composes with any shape") {
    LrSchedule s = shape_of("cosine", 0.1);
    s.warmup_iters = 10;
    CHECK(learning_rate(s, 0, 110) == doctest::Approx(0.01));  // 0.1 * 1 / 10
    CHECK(learning_rate(s, 4, 110) == doctest::Approx(0.05));
    CHECK(learning_rate(s, 9, 110) == doctest::Approx(0.1));
    // cosine after warmup: eta_min + (eta - eta_min)/2 (1 + cos(pi (t - W) / (T - W)))
    CHECK(learning_rate(s, 60, 110) == doctest::Approx(0.05));
    CHECK(learning_rate(s, 35, 110) == doctest::Approx(0.05 * (1 + std::cos(std::numbers::pi * 0.25))));
    LrSchedule step = shape_of("step", 0.4);
    step.warmup_iters = 4;
    step.milestones = {50};
    CHECK(learning_rate(step, 1, 100) == doctest::Approx(0.2));
    CHECK(learning_rate(step, 60, 100) == doctest::Approx(0.04));
    // a milestone exactly at W: the ramp still targets shape(W) = eta gamma (unchanged)
    step.milestones = {4, 50};
    CHECK(learning_rate(step, 1, 100) == doctest::Approx(0.02));
  }

  TEST_CASE("step: decays inside the warmup scale the rest of the ramp (the SILO authors' scripts)") {
    // ramp of max_lr / 20 per iteration, x0.1 at 10 and x0.01 at 15, before the ramp would end at 20
    LrSchedule s = shape_of("step", 0.06);
    s.warmup_iters = 20;
    s.milestones = {10, 15};
    CHECK_NOTHROW(validate(s, 40));
    CHECK(learning_rate(s, 0, 40) == doctest::Approx(0.06 / 20));
    CHECK(learning_rate(s, 9, 40) == doctest::Approx(0.06 * 10 / 20));
    CHECK(learning_rate(s, 10, 40) == doctest::Approx(0.006 * 11 / 20));
    CHECK(learning_rate(s, 15, 40) == doctest::Approx(0.0006 * 16 / 20));
    CHECK(learning_rate(s, 19, 40) == doctest::Approx(0.0006));
    CHECK(learning_rate(s, 30, 40) == doctest::Approx(0.0006));
    // other shapes still refuse a milestone inside the warmup
    LrSchedule c = shape_of("cosine", 0.06);
    c.warmup_iters = 20;
    c.milestones = {10};
    CHECK_THROWS_WITH_AS(validate(c, 40), doctest::Contains("falls inside the warmup"), Error);
  }

  TEST_CASE("cyclical: triangular, triangular2, exp_range (Smith 2015)") {
    LrSchedule s = shape_of("cyclical", 0.1);
    s.min_lr = 0.01;
    s.half_cycle_iters = 10;
    auto formula = [](double t, double scale) {
      const double c = std::floor(1 + t / 20), x = std::fabs(t / 10 - 2 * c + 1);
      return 0.01 + 0.09 * std::max(0.0, 1 - x) * scale;
    };
    for (int64_t t : {0, 5, 10, 15, 20, 27, 33}) CHECK(learning_rate(s, t, 100) == doctest::Approx(formula(static_cast<double>(t), 1)));
    CHECK(learning_rate(s, 10, 100) == doctest::Approx(0.1));  // peak
    CHECK(learning_rate(s, 20, 100) == doctest::Approx(0.01));  // trough
    s.cyclical_mode = "triangular2";
    CHECK(learning_rate(s, 30, 100) == doctest::Approx(0.01 + 0.09 * 0.5));  // second peak halved
    CHECK(learning_rate(s, 50, 100) == doctest::Approx(0.01 + 0.09 * 0.25));
    s.cyclical_mode = "exp_range";
    s.cyclical_gamma = 0.99;
    CHECK(learning_rate(s, 30, 100) == doctest::Approx(0.01 + 0.09 * std::pow(0.99, 30)));
  }

  TEST_CASE("one-cycle rises from eta/div to eta, then anneals to eta/(div*final_div)") {
    LrSchedule s = shape_of("one_cycle", 0.1);
    s.one_cycle_fraction = 0.25;
    CHECK(learning_rate(s, 0, 100) == doctest::Approx(0.1 / 25));
    CHECK(learning_rate(s, 25, 100) == doctest::Approx(0.1));  // the rise ends at f T = 25
    CHECK(learning_rate(s, 99, 100) == doctest::Approx(0.1 / 25 / 1e4));
    // cosine rise: 0.004 + 0.096 (1 - cos(pi t / 25)) / 2
    CHECK(learning_rate(s, 10, 100) ==
          doctest::Approx(0.1 + 0.5 * (0.004 - 0.1) * (1 + std::cos(std::numbers::pi * 0.4))));
    s.one_cycle_anneal = "linear";
    CHECK(learning_rate(s, 5, 100) == doctest::Approx(0.004 + (0.1 - 0.004) * 0.2));
    CHECK(learning_rate(s, 62, 100) == doctest::Approx(0.1 + (0.1 / 25 / 1e4 - 0.1) * 0.5));
  }

  TEST_CASE("exponential-decay sine wave (An et al. 2017, cited form)") {
    LrSchedule s = shape_of("exp_sine", 0.1);
    s.sine_alpha = 0.5;
    s.sine_beta = 0.6;
    s.iters_per_epoch = 50;
    for (int64_t t : {0, 10, 123, 499}) {
      const double decay = std::exp(-0.5 * static_cast<double>(t) / 500.0);
      const double expected =
          0.1 * decay * (std::sin(0.6 * static_cast<double>(t) / (2 * std::numbers::pi * 50)) + decay + 0.5);
      CHECK(learning_rate(s, t, 500) == doctest::Approx(expected));
    }
  }

  TEST_CASE("SILO max_lr per cycle with the authors' defaults") {
    CyclePolicy p;  // offset 0.03, alpha 0.04, beta 5, d 1, p 0.2
    p.kind = "silo";
    const double expected[] = {0.030, 0.030, 0.030, 0.032, 0.048, 0.064, 0.069, 0.070};
    for (int k = 0; k < 8; ++k) {
      INFO("cycle " << k);
      CHECK(silo_max_lr(p, k) == doctest::Approx(expected[k]).epsilon(0.02));
    }
    // exact values from the formula
    const double x3 = 1 - 0.8 * 0.8;
    const double s3 = std::pow(x3, 5) / (std::pow(x3, 5) + std::pow(1 - x3, 5));
    CHECK(silo_max_lr(p, 3) == doctest::Approx(0.03 + 0.04 * s3));
    CHECK(silo_s_curve(0.5, 5) == doctest::Approx(0.5));
    CHECK(silo_s_curve(0.0, 5) == 0.0);
    CHECK(silo_s_curve(1.0, 5) == 1.0);
    CHECK(silo_max_lr(p, 40) == doctest::Approx(0.07).epsilon(1e-3));  // saturation at offset + alpha
  }

  TEST_CASE("across cycles: rewinding, fine-tuning, SILO restarts") {
    LrSchedule s = shape_of("step", 0.1);
    s.milestones = {50, 75};
    CyclePolicy p;
    p.kind = "lr_rewind";
    p.rewind_iter = 20;
    CHECK(cycle_iters(p, 0, 100) == 100);
    CHECK(cycle_iters(p, 1, 100) == 80);
    CHECK(cycle_learning_rate(p, s, 1, 0, 100) == doctest::Approx(0.1));    // schedule from t_k = 20
    CHECK(cycle_learning_rate(p, s, 1, 30, 100) == doctest::Approx(0.01));  // iteration 50 of the original
    p.kind = "finetune";
    CHECK(cycle_learning_rate(p, s, 0, 0, 100) == doctest::Approx(0.1));
    CHECK(cycle_learning_rate(p, s, 2, 0, 100) == doctest::Approx(0.001));  // the final lr, constant
    p.kind = "silo";
    CHECK(cycle_learning_rate(p, s, 4, 0, 100) == doctest::Approx(silo_max_lr(p, 4)));
    CHECK(cycle_learning_rate(p, s, 4, 80, 100) == doctest::Approx(silo_max_lr(p, 4) * 0.01));
  }

  TEST_CASE("SILO(offset, alpha, W, D1, D2, T) notation") {
    CyclePolicy p;
    LrSchedule s;
    CHECK(apply_silo_notation("SILO(5e-2, 5e-2, 4K, 23K, 46K, 62K)", p, s) == 62000);
    CHECK(p.kind == "silo");
    CHECK(p.silo_offset == doctest::Approx(0.05));
    CHECK(p.silo_alpha == doctest::Approx(0.05));
    CHECK(s.shape == "step");
    CHECK(s.warmup_iters == 4000);
    CHECK(s.milestones == std::vector<int64_t>{23000, 46000});
    CHECK(cycle_learning_rate(p, s, 0, 3999, 62000) == doctest::Approx(0.05));
    CHECK(cycle_learning_rate(p, s, 0, 23000, 62000) == doctest::Approx(0.005));
    CHECK(cycle_learning_rate(p, s, 0, 46000, 62000) == doctest::Approx(0.0005));
    CHECK_THROWS_WITH_AS(apply_silo_notation("SILO(5e-2, 5e-2, 4K, 23K, 46K)", p, s), doctest::Contains("6 fields"),
                         Error);
    CHECK_THROWS_WITH_AS(apply_silo_notation("SILO(5e-2, x, 4K, 23K, 46K, 62K)", p, s),
                         doctest::Contains("not a number"), Error);
    CHECK_THROWS_WITH_AS(apply_silo_notation("SILO(5e-2, 5e-2, 4K, 46K, 23K, 62K)", p, s),
                         doctest::Contains("--milestones"), Error);
  }

  TEST_CASE("bad schedule parameters are refused naming the flag") {
    LrSchedule s = shape_of("step", -0.1);
    CHECK_THROWS_WITH_AS(validate(s, 100), doctest::Contains("--lr"), Error);
    s.max_lr = 0.1;
    s.milestones = {60, 30};
    CHECK_THROWS_WITH_AS(validate(s, 100), doctest::Contains("--milestones: must be increasing"), Error);
    s.milestones = {30, 100};
    CHECK_THROWS_WITH_AS(validate(s, 100), doctest::Contains("--milestones: 100 is outside"), Error);
    s.milestones = {};
    s.warmup_iters = 100;
    CHECK_THROWS_WITH_AS(validate(s, 100), doctest::Contains("--warmup-iters"), Error);
    CyclePolicy p;
    p.kind = "silo";
    p.silo_beta = 0.0;
    CHECK_THROWS_WITH_AS(validate(p, shape_of("step", 0.1), 100), doctest::Contains("--silo-beta"), Error);
    p.silo_beta = 5.0;
    p.prune_rate = 1.0;
    CHECK_THROWS_WITH_AS(validate(p, shape_of("step", 0.1), 100), doctest::Contains("--prune-rate"), Error);
    p.prune_rate = 0.2;
    p.kind = "sometimes";
    CHECK_THROWS_WITH_AS(validate(p, shape_of("step", 0.1), 100), doctest::Contains("--cycle-policy"), Error);
    CHECK_THROWS_WITH_AS(validate(shape_of("cyclical", 0.1), 100), doctest::Contains("--half-cycle-iters"), Error);
    CHECK_THROWS_WITH_AS(validate(shape_of("triangle", 0.1), 100), doctest::Contains("--schedule"), Error);
  }

  TEST_CASE("the step loop's LearningRate is the cycle policy and shape as functions of (cycle, iteration)") {
    CyclePolicy policy;
    policy.kind = "silo";
    LrSchedule shape;
    shape.shape = "cosine";
    shape.max_lr = 0.1;
    const int64_t total = 200;
    const auto rate = make_learning_rate(policy, shape, total);
    for (int cycle : {0, 1, 4}) {
      CHECK(rate->cycle_iters(cycle) == cycle_iters(policy, cycle, total));
      CHECK(rate->max_lr(cycle) == cycle_max_lr(policy, shape, cycle));
      for (int64_t t : {int64_t{0}, int64_t{57}, int64_t{199}})
        CHECK(rate->lr(cycle, t) == cycle_learning_rate(policy, shape, cycle, t, total));
    }
    CHECK(rate->max_lr(4) > rate->max_lr(1));  // SILO's peak grows with the cycles' sparsity
    CHECK(rate->lr(1, 0) > rate->lr(1, 150));  // a cosine decay inside the cycle
  }
}
