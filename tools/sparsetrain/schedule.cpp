// `sparsetrain schedule`: the learning rate of every iteration of every cycle, without training,
// so a schedule can be checked against its formula and plotted (--csv prints cycle,iter,lr;
// --png draws lr across cycles and max_lr per cycle through tools/plot_schedule.py + matplotlib).
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "engine/error.h"
#include "schedules/cycles.h"
#include "schedules/lr_schedule.h"
#include "tools/sparsetrain/commands.h"

namespace st::cli {
namespace {

std::string silo_phase(const schedules::CyclePolicy& p, int cycle) {
  if (p.kind != "silo") return "-";
  if (cycle <= p.silo_delay) return "no growth";
  const double s = schedules::silo_s_curve(schedules::silo_sparsity_since_delay(p, cycle), p.silo_beta);
  if (s < 0.1) return "slow";
  if (s <= 0.9) return "fast";
  return "saturation";
}

}  // namespace

void add_schedule_command_flags(CLI::App& app, ScheduleOptions& o) {
  add_option_flags(app, o.config, {"schedule"});
  add_silo_flag(app, o.flags);
  app.add_option("--cycles", o.cycles, "number of cycles (cycle 0 = dense training)")->capture_default_str();
  app.add_option("--iters", o.iters, "iterations T of a dense cycle (SILO(...) sets it)")->capture_default_str();
  app.add_option("--every", o.every, "print every N-th iteration (and the last of each cycle)")->capture_default_str();
  app.add_flag("--csv", o.csv, "print cycle,iter,lr as CSV");
  app.add_option("--png", o.png, "draw lr across cycles and max_lr per cycle to this PNG (needs python3-matplotlib)");
}

int run_schedule(ScheduleOptions o) {
  schedules::LrSchedule& shape = o.config.get<schedules::LrSchedule>();
  schedules::CyclePolicy& policy = o.config.get<schedules::CyclePolicy>();
  if (!o.flags.silo_notation.empty()) o.iters = schedules::apply_silo_notation(o.flags.silo_notation, policy, shape);
  if (o.cycles <= 0) fail("--cycles: must be a positive number of cycles, got {}", o.cycles);
  if (o.iters <= 0) fail("--iters: must be a positive number of iterations, got {}", o.iters);
  if (o.every <= 0) fail("--every: must be positive, got {}", o.every);
  if (shape.iters_per_epoch == 0) shape.iters_per_epoch = 430;  // the default experiment's batches per epoch
  schedules::validate(policy, shape, o.iters);

  std::string csv = "cycle,iter,lr\n";
  for (int k = 0; k < o.cycles; ++k) {
    const int64_t iters = schedules::cycle_iters(policy, k, o.iters);
    for (int64_t t = 0; t < iters; ++t)
      if (t % o.every == 0 || t + 1 == iters)
        csv += fmt::format("{},{},{:.9g}\n", k, t, schedules::cycle_learning_rate(policy, shape, k, t, o.iters));
  }
  if (o.csv) {
    std::fwrite(csv.data(), 1, csv.size(), stdout);
  } else {
    fmt::print("schedule: shape {}, policy {}, T = {} iterations, {} cycle(s)\n", shape.shape, policy.kind, o.iters,
               o.cycles);
    fmt::print("{:>5} {:>9} {:>10} {:>8} {:>12} {:>12} {:>12}  {}\n", "cycle", "density", "max_lr", "x_k", "lr(0)",
               "lr(T/2)", "lr(end)", "phase");
    for (int k = 0; k < o.cycles; ++k) {
      const int64_t iters = schedules::cycle_iters(policy, k, o.iters);
      auto lr = [&](int64_t t) { return schedules::cycle_learning_rate(policy, shape, k, t, o.iters); };
      fmt::print("{:>5} {:>9.4f} {:>10.5f} {:>8.4f} {:>12.6g} {:>12.6g} {:>12.6g}  {}\n", k,
                 std::pow(1.0 - policy.prune_rate, k), schedules::cycle_max_lr(policy, shape, k),
                 schedules::silo_sparsity_since_delay(policy, k), lr(0), lr(iters / 2), lr(iters - 1),
                 silo_phase(policy, k));
    }
  }
  if (!o.png.empty()) {
    const std::filesystem::path script = std::filesystem::path(ST_SOURCE_DIR) / "tools" / "plot_schedule.py";
    if (!std::filesystem::exists(script)) fail("--png: the plotting script {} is missing", script.string());
    const auto data = std::filesystem::temp_directory_path() / fmt::format("sparsetrain-schedule-{}.csv", getpid());
    {
      std::ofstream out(data);
      out << csv;
    }
    std::string max_lrs, phases;
    for (int k = 0; k < o.cycles; ++k) {
      max_lrs += fmt::format("{}{:.9g}", k ? "," : "", schedules::cycle_max_lr(policy, shape, k));
      phases += fmt::format("{}{}", k ? "," : "", silo_phase(policy, k));
    }
    const std::string title = fmt::format("{} / {} (T = {})", policy.kind, shape.shape, o.iters);
    const std::string command = fmt::format("/usr/bin/python3 '{}' '{}' '{}' '{}' '{}' '{}'", script.string(),
                                            data.string(), o.png, max_lrs, title, phases);
    const int status = std::system(command.c_str());
    std::filesystem::remove(data);
    if (status != 0) fail("--png: drawing {} failed (exit {}); is python3-matplotlib installed?", o.png, status);
    if (!o.csv) fmt::print("wrote {}\n", o.png);
  }
  return 0;
}

}  // namespace st::cli
