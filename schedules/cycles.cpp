#include "schedules/cycles.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <vector>

#include "engine/error.h"

namespace st::schedules {

double silo_sparsity_since_delay(const CyclePolicy& p, int cycle) {
  if (cycle <= p.silo_delay) return 0.0;
  return 1.0 - std::pow(1.0 - p.prune_rate, static_cast<double>(cycle - p.silo_delay));
}

double silo_s_curve(double x, double beta) {
  if (x <= 0.0) return 0.0;
  if (x >= 1.0) return 1.0;
  const double a = std::pow(x, beta), b = std::pow(1.0 - x, beta);
  return a / (a + b);
}

double silo_max_lr(const CyclePolicy& p, int cycle) {
  return p.silo_offset + p.silo_alpha * silo_s_curve(silo_sparsity_since_delay(p, cycle), p.silo_beta);
}

double cycle_max_lr(const CyclePolicy& p, const LrSchedule& shape, int cycle) {
  return p.kind == "silo" ? silo_max_lr(p, cycle) : shape.max_lr;
}

int64_t cycle_iters(const CyclePolicy& p, int cycle, int64_t total_iters) {
  if (cycle >= 1 && (p.kind == "weight_rewind" || p.kind == "lr_rewind")) return total_iters - p.rewind_iter;
  return total_iters;
}

double cycle_learning_rate(const CyclePolicy& p, const LrSchedule& shape, int cycle, int64_t iter,
                           int64_t total_iters) {
  if (cycle == 0) return learning_rate(shape, cycle_max_lr(p, shape, 0), iter, total_iters);
  if (p.kind == "weight_rewind" || p.kind == "lr_rewind")
    return learning_rate(shape, shape.max_lr, p.rewind_iter + iter, total_iters);
  if (p.kind == "finetune") return learning_rate(shape, shape.max_lr, total_iters - 1, total_iters);
  return learning_rate(shape, cycle_max_lr(p, shape, cycle), iter, total_iters);
}

void validate(const CyclePolicy& p, const LrSchedule& shape, int64_t total_iters) {
  if (p.kind != "restart" && p.kind != "weight_rewind" && p.kind != "lr_rewind" && p.kind != "finetune" &&
      p.kind != "silo")
    fail("--cycle-policy: unknown policy '{}' (known: restart, weight_rewind, lr_rewind, finetune, silo)", p.kind);
  if (p.rewind_iter < 0 || p.rewind_iter >= total_iters)
    fail("--rewind-iter: must be in [0, {}) (the iterations of a cycle), got {}", total_iters, p.rewind_iter);
  if (!(p.prune_rate > 0.0 && p.prune_rate < 1.0))
    fail("--prune-rate: must be in (0, 1), got {}", p.prune_rate);
  if (p.kind == "silo") {
    if (!(p.silo_offset > 0.0)) fail("--silo-offset: must be a positive learning rate, got {}", p.silo_offset);
    if (!(p.silo_alpha >= 0.0)) fail("--silo-alpha: must be >= 0, got {}", p.silo_alpha);
    if (!(p.silo_beta > 0.0)) fail("--silo-beta: must be > 0, got {}", p.silo_beta);
    if (p.silo_delay < 0) fail("--silo-delay: must be >= 0 cycles, got {}", p.silo_delay);
  }
  validate(shape, total_iters);
}

namespace {

// "4K" -> 4000, "5e-2" -> 0.05, "62K" -> 62000, "1.5M" -> 1500000.
double parse_number(std::string text, const std::string& whole) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.erase(text.begin());
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  double scale = 1.0;
  if (!text.empty() && (text.back() == 'K' || text.back() == 'k')) scale = 1e3;
  if (!text.empty() && (text.back() == 'M' || text.back() == 'm')) scale = 1e6;
  if (scale != 1.0) text.pop_back();
  std::size_t used = 0;
  double value = 0.0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size())
    fail("--silo: '{}' is not a number in '{}' (expected SILO(offset, alpha, W, D1, D2, T))", text, whole);
  return value * scale;
}

}  // namespace

int64_t apply_silo_notation(const std::string& text, CyclePolicy& policy, LrSchedule& shape) {
  const auto open = text.find('('), close = text.rfind(')');
  std::string head = text.substr(0, open == std::string::npos ? 0 : open);
  while (!head.empty() && std::isspace(static_cast<unsigned char>(head.back()))) head.pop_back();
  if (open == std::string::npos || close == std::string::npos || close < open || head != "SILO")
    fail("--silo: expected SILO(offset, alpha, W, D1, D2, T), got '{}'", text);
  std::vector<std::string> fields;
  std::string current;
  for (char ch : text.substr(open + 1, close - open - 1)) {
    if (ch == ',') {
      fields.push_back(current);
      current.clear();
    } else {
      current += ch;
    }
  }
  fields.push_back(current);
  if (fields.size() != 6) fail("--silo: expected 6 fields SILO(offset, alpha, W, D1, D2, T), got {} in '{}'",
                               fields.size(), text);
  std::vector<double> v;
  for (const std::string& field : fields) v.push_back(parse_number(field, text));
  for (std::size_t i = 2; i < 6; ++i)
    if (v[i] != std::floor(v[i]) || v[i] < 0.0)
      fail("--silo: W, D1, D2 and T must be whole numbers of iterations, got '{}' in '{}'", fields[i], text);
  policy.kind = "silo";
  policy.silo_offset = v[0];
  policy.silo_alpha = v[1];
  shape.shape = "step";
  shape.max_lr = v[0];
  shape.warmup_iters = static_cast<int64_t>(v[2]);
  shape.milestones = {static_cast<int64_t>(v[3]), static_cast<int64_t>(v[4])};
  shape.gamma = 0.1;
  const auto total = static_cast<int64_t>(v[5]);
  validate(policy, shape, total);
  return total;
}

namespace {

class PolicyLearningRate final : public LearningRate {
 public:
  PolicyLearningRate(const CyclePolicy& policy, const LrSchedule& shape, int64_t total_iters)
      : policy_(policy), shape_(shape), total_iters_(total_iters) {}
  int64_t cycle_iters(int cycle) const override { return schedules::cycle_iters(policy_, cycle, total_iters_); }
  double max_lr(int cycle) const override { return cycle_max_lr(policy_, shape_, cycle); }
  double lr(int cycle, int64_t iteration) const override {
    return cycle_learning_rate(policy_, shape_, cycle, iteration, total_iters_);
  }
  int64_t rewind_iteration() const override { return policy_.kind == "weight_rewind" ? policy_.rewind_iter : -1; }
  std::string describe() const override {
    return fmt::format("policy {}, prune {:.0f}% of the remaining weights per cycle", policy_.kind,
                       100.0 * policy_.prune_rate);
  }

 private:
  CyclePolicy policy_;
  LrSchedule shape_;
  int64_t total_iters_;
};

}  // namespace

std::unique_ptr<LearningRate> make_learning_rate(const CyclePolicy& policy, const LrSchedule& shape,
                                                 int64_t total_iters) {
  return std::make_unique<PolicyLearningRate>(policy, shape, total_iters);
}

}  // namespace st::schedules
