// A search over the ways to train one pruning cycle (the oracle of the SILO paper: one branch per
// max_lr of a grid, the best on validation kept). engine/ defines the interface; schedules/ implements the
// oracle (schedules/oracle.h), and the trainer hands it the branch controls. A run without a search trains
// each cycle once, at the learning rate's peak for that cycle (engine/learning_rate.h).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace st {

// The trainer's controls for the branches of one cycle.
class CycleBranches {
 public:
  struct Score {
    double val_accuracy = 0.0, test_accuracy = 0.0;
  };
  virtual ~CycleBranches() = default;
  // Trains the cycle from its start state (restored first) with peak learning rate max_lr, as a branch
  // (no checkpoints, no progress lines); its accuracies on the validation and test sets.
  virtual Score train(double max_lr) = 0;
  // The branch just trained becomes the one the run continues from (replacing an earlier choice).
  virtual void choose_current() = 0;
  // A console line (not under --progress quiet), an event for metrics.jsonl, a report file of the run
  // directory (written atomically).
  virtual void note(const std::string& line) = 0;
  virtual void log(const nlohmann::json& event) = 0;
  virtual void write_report(const std::string& file_name, const std::string& text) = 0;
};

class CycleSearch {
 public:
  virtual ~CycleSearch() = default;
  // Trains cycle `cycle` (its network at global density `density`) through `branches`, choosing one.
  virtual void search(CycleBranches& branches, int cycle, double density) = 0;
  // Branches trained per cycle after the first (for the run's ETA), and a few words for the start line.
  virtual int64_t branches() const = 0;
  virtual std::string describe() const = 0;
};

}  // namespace st
