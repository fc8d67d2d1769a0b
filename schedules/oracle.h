// The oracle of the SILO paper (Liu et al., TMLR 2023): for each pruning cycle, branch from the same
// pruned state, train once per max_lr of a grid, keep the branch with the best VALIDATION accuracy
// and continue from it. The trainer runs the branches; this file holds the grid and the pure
// bookkeeping: the best max_lr, the interval of max_lr within `tolerance` (0.5 points) of the best
// validation accuracy, and where SILO's max_lr(k) falls against that interval.
#pragma once

#include <string>
#include <vector>

namespace st::schedules {

// count log-spaced values from low to high inclusive (default: 10 in [1e-4, 1e-1]).
std::vector<double> log_grid(double low, double high, int count);
// Refuses an empty grid or non-positive values (naming --oracle-grid).
void validate_grid(const std::vector<double>& grid);

struct OracleBranch {
  double max_lr = 0.0, val_accuracy = 0.0, test_accuracy = 0.0;
};

struct OracleCycle {
  int cycle = 0;
  double density = 1.0;
  std::vector<OracleBranch> branches;  // in grid order
  double best_lr = 0.0, best_val_accuracy = 0.0, best_test_accuracy = 0.0;
  double interval_low = 0.0, interval_high = 0.0;  // max_lr within tolerance of the best validation accuracy
  double silo_lr = 0.0;
  std::string silo_position;  // "below", "inside" or "above" the interval
};

// The best branch is the first one with the highest validation accuracy (ties: the smaller max_lr).
OracleCycle summarize_oracle_cycle(int cycle, double density, const std::vector<OracleBranch>& branches,
                                   double silo_lr, double tolerance = 0.005);
std::string oracle_report_markdown(const std::vector<OracleCycle>& cycles);

}  // namespace st::schedules
