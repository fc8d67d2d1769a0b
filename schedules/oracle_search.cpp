// See oracle_search.h.
#include "schedules/oracle_search.h"

#include <fmt/format.h>

#include <vector>

#include "schedules/cycles.h"
#include "schedules/oracle.h"
#include "schedules/options.h"

namespace st::schedules {
namespace {

class Oracle final : public CycleSearch {
 public:
  explicit Oracle(const TrainConfig& config)
      : grid_(config.get<OracleOptions>().grid), silo_(config.get<CyclePolicy>()) {
    silo_.kind = "silo";
  }

  void search(CycleBranches& run, int cycle, double density) override {
    std::vector<OracleBranch> branches;
    double best_val = -1.0;
    for (double lr : grid_) {
      const CycleBranches::Score score = run.train(lr);
      branches.push_back({lr, score.val_accuracy, score.test_accuracy});
      run.note(fmt::format("oracle cycle {} max_lr {:.4g}: val acc {:.4f}, test acc {:.4f}", cycle, lr,
                           score.val_accuracy, score.test_accuracy));
      run.log({{"event", "oracle_branch"},
               {"cycle", cycle},
               {"max_lr", lr},
               {"val_accuracy", score.val_accuracy},
               {"test_accuracy", score.test_accuracy}});
      if (score.val_accuracy > best_val) {
        best_val = score.val_accuracy;
        run.choose_current();
      }
    }
    cycles_.push_back(summarize_oracle_cycle(cycle, density, branches, silo_max_lr(silo_, cycle)));
    run.write_report("oracle.md", fmt::format("# Oracle: best max_lr per pruning cycle\n\nSILO parameters: offset {}, "
                                              "alpha {}, beta {}, d {}, p {}\n\n{}",
                                              silo_.silo_offset, silo_.silo_alpha, silo_.silo_beta, silo_.silo_delay,
                                              silo_.prune_rate, oracle_report_markdown(cycles_)));
  }
  int64_t branches() const override { return static_cast<int64_t>(grid_.size()); }
  std::string describe() const override { return fmt::format("oracle over {} max_lr values", grid_.size()); }

 private:
  std::vector<double> grid_;
  CyclePolicy silo_;                 // the run's policy parameters with SILO's max_lr(k) (for the report)
  std::vector<OracleCycle> cycles_;  // the cycles searched by this run (since its start or resume)
};

}  // namespace

std::unique_ptr<CycleSearch> make_cycle_search(const TrainConfig& config) {
  if (config.get<OracleOptions>().grid.empty()) return nullptr;
  return std::make_unique<Oracle>(config);
}

}  // namespace st::schedules
