#include "schedules/oracle.h"

#include <fmt/format.h>

#include <cmath>

#include "engine/error.h"

namespace st::schedules {

std::vector<double> log_grid(double low, double high, int count) {
  if (count < 1) fail("--oracle-size: the grid needs at least 1 value, got {}", count);
  if (!(low > 0.0) || !(high >= low)) fail("--oracle-min/--oracle-max: need 0 < min <= max, got {} and {}", low, high);
  std::vector<double> grid;
  for (int i = 0; i < count; ++i) {
    const double fraction = count == 1 ? 0.0 : static_cast<double>(i) / static_cast<double>(count - 1);
    grid.push_back(std::exp(std::log(low) + fraction * (std::log(high) - std::log(low))));
  }
  return grid;
}

void validate_grid(const std::vector<double>& grid) {
  if (grid.empty()) fail("--oracle-grid: the grid of max_lr values is empty");
  for (double lr : grid)
    if (!(lr > 0.0) || !std::isfinite(lr)) fail("--oracle-grid: every max_lr must be positive, got {}", lr);
}

OracleCycle summarize_oracle_cycle(int cycle, double density, const std::vector<OracleBranch>& branches,
                                   double silo_lr, double tolerance) {
  ST_CHECK(!branches.empty(), "oracle cycle {} has no branches", cycle);
  OracleCycle result;
  result.cycle = cycle;
  result.density = density;
  result.branches = branches;
  const OracleBranch* best = &branches.front();
  for (const OracleBranch& b : branches)
    if (b.val_accuracy > best->val_accuracy || (b.val_accuracy == best->val_accuracy && b.max_lr < best->max_lr))
      best = &b;
  result.best_lr = best->max_lr;
  result.best_val_accuracy = best->val_accuracy;
  result.best_test_accuracy = best->test_accuracy;
  result.interval_low = result.interval_high = best->max_lr;
  for (const OracleBranch& b : branches) {
    if (b.val_accuracy < best->val_accuracy - tolerance) continue;
    result.interval_low = std::min(result.interval_low, b.max_lr);
    result.interval_high = std::max(result.interval_high, b.max_lr);
  }
  result.silo_lr = silo_lr;
  result.silo_position = silo_lr < result.interval_low ? "below" : silo_lr > result.interval_high ? "above" : "inside";
  return result;
}

std::string oracle_report_markdown(const std::vector<OracleCycle>& cycles) {
  std::string text =
      "| cycle | density | best max_lr | val acc | test acc | max_lr within 0.5 pt of best | SILO max_lr(k) | SILO |\n"
      "|---:|---:|---:|---:|---:|---|---:|---|\n";
  for (const OracleCycle& c : cycles)
    text += fmt::format("| {} | {:.4f} | {:.3g} | {:.4f} | {:.4f} | [{:.3g}, {:.3g}] | {:.4f} | {} |\n", c.cycle,
                        c.density, c.best_lr, c.best_val_accuracy, c.best_test_accuracy, c.interval_low,
                        c.interval_high, c.silo_lr, c.silo_position);
  text += "\nValidation accuracy of every branch (rows: cycles, columns: max_lr):\n\n| cycle |";
  if (!cycles.empty()) {
    for (const OracleBranch& b : cycles.front().branches) text += fmt::format(" {:.3g} |", b.max_lr);
    text += "\n|---:|";
    for (std::size_t i = 0; i < cycles.front().branches.size(); ++i) text += "---:|";
    text += "\n";
    for (const OracleCycle& c : cycles) {
      text += fmt::format("| {} |", c.cycle);
      for (const OracleBranch& b : c.branches) text += fmt::format(" {:.4f} |", b.val_accuracy);
      text += "\n";
    }
  }
  return text;
}

}  // namespace st::schedules
