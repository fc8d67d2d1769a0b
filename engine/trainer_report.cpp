// The per-cycle distribution report (spec/pruning.md: "the run's report shows weight-gradient and
// activation distributions per cycle"; the SILO paper's evidence that weight-gradient distributions
// narrow as ReLU networks are pruned, so sparser networks want larger learning rates).
//
// At the start of every cycle (after pruning and rewinding: the network that cycle trains), one
// training minibatch from a stream of its own (score_data(3000 + cycle)) goes forward in evaluation
// mode with the activation probe on and backward to the dense loss gradient. Recorded:
//   - gradients of the surviving weights of every prunable tensor: a Sturges histogram of all of
//     them, and per tensor the mean |g| and the standard deviation;
//   - activations at every activation site (ReLU, fused BN-ReLU, residual join, ReLU6, GELU): the
//     fraction of exact zeros, mean and standard deviation, and a Sturges histogram of the non-zero
//     values of all sites (an evenly strided sample of at most 65,536 values per site).
// Nothing of the training state changes: evaluation mode (no running-statistics update), gradients
// zeroed afterwards, a data stream the training never reads. The event goes to metrics.jsonl and
// report.md is rewritten from every "distributions" event of metrics.jsonl (so a resumed run's
// report holds every cycle; the last event of a cycle wins).
#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <map>

#include "engine/io/metrics.h"
#include "engine/ops.h"
#include "engine/probe.h"
#include "engine/trainer.h"
#include "engine/pruner.h"

namespace st {
namespace fs = std::filesystem;

namespace {

nlohmann::json histogram_json(const Histogram& h) {
  return {{"low", h.low}, {"high", h.high}, {"counts", h.counts}};
}

struct Moments {
  double mean_abs = 0.0, std = 0.0;
};

Moments moments(const std::vector<float>& values) {
  Moments m;
  if (values.empty()) return m;
  double sum = 0.0, abs_sum = 0.0, squares = 0.0;
  for (float v : values) {
    sum += v;
    abs_sum += std::fabs(v);
    squares += static_cast<double>(v) * v;
  }
  const auto n = static_cast<double>(values.size());
  const double mean = sum / n;
  m.mean_abs = abs_sum / n;
  m.std = std::sqrt(std::max(0.0, squares / n - mean * mean));
  return m;
}

std::string sparkline(const std::vector<int64_t>& counts) {
  static const char* const levels[] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  int64_t top = 1;
  for (int64_t c : counts) top = std::max(top, c);
  std::string line;
  for (int64_t c : counts) line += levels[c == 0 ? 0 : 1 + (7 * c) / top];
  return line;
}

}  // namespace

nlohmann::json Trainer::measure_distributions(int cycle) {
  const ScoreData data = score_data(3000 + cycle);
  Tensor images;
  std::vector<int32_t> labels;
  data.batch(0, images, labels);
  const std::vector<nn::Parameter*> parameters = model_->parameters();
  for (nn::Parameter* p : parameters) p->variable.zero_grad();
  model_->train(false);
  ActivationProbe probe(1 << 16);
  Tape tape;
  Variable loss;
  {
    TapeScope recording(tape);
    ProbeScope probing(probe);
    loss = ops::softmax_cross_entropy(model_->forward(Variable(images)), labels);
  }
  tape.backward(loss);

  std::vector<float> all_gradients;
  nlohmann::json layers = nlohmann::json::array();
  for (nn::Parameter* p : parameters) {
    if (!p->prunable()) continue;
    std::vector<float> kept;
    const float* g = p->grad().data();
    const float* mask = p->mask.defined() ? p->mask.data() : nullptr;
    for (int64_t i = 0; i < p->numel(); ++i)
      if (mask == nullptr || mask[i] != 0.0f) kept.push_back(g[i]);
    const Moments m = moments(kept);
    layers.push_back({{"name", p->name}, {"kept", kept.size()}, {"mean_abs", m.mean_abs}, {"std", m.std}});
    all_gradients.insert(all_gradients.end(), kept.begin(), kept.end());
  }
  for (nn::Parameter* p : parameters) p->variable.zero_grad();
  const Moments global = moments(all_gradients);

  std::vector<float> nonzero;
  int64_t values = 0, zeros = 0;
  nlohmann::json sites = nlohmann::json::array();
  for (const ActivationSite& s : probe.sites()) {
    values += s.count;
    zeros += s.zeros;
    for (float v : s.sample)
      if (v != 0.0f) nonzero.push_back(v);
    sites.push_back({{"op", s.op},
                     {"shape", shape_string(s.shape)},
                     {"zero_fraction", s.count > 0 ? static_cast<double>(s.zeros) / static_cast<double>(s.count) : 0.0},
                     {"mean", s.mean},
                     {"std", s.std}});
  }
  return {{"event", "distributions"},
          {"cycle", cycle},
          {"density", global_density(parameters)},
          {"images", images.dim(0)},
          {"loss", static_cast<double>(loss.value().item())},
          {"gradient",
           {{"kept", all_gradients.size()},
            {"mean_abs", global.mean_abs},
            {"std", global.std},
            {"histogram", histogram_json(sturges_histogram(all_gradients))},
            {"layers", layers}}},
          {"activation",
           {{"values", values},
            {"zero_fraction", values > 0 ? static_cast<double>(zeros) / static_cast<double>(values) : 0.0},
            {"nonzero_histogram", histogram_json(sturges_histogram(nonzero))},
            {"sites", sites}}}};
}

void Trainer::write_distribution_report(const fs::path& run_dir) {
  std::map<int, nlohmann::json> by_cycle;
  std::ifstream in(run_dir / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("\"distributions\"") == std::string::npos) continue;
    const nlohmann::json event = nlohmann::json::parse(line, nullptr, false);
    if (event.is_discarded() || event.value("event", "") != "distributions") continue;
    by_cycle[event.at("cycle").get<int>()] = event;
  }
  std::string text = fmt::format(
      "# {}: weight-gradient and activation distributions per cycle\n\n"
      "Measured at the start of each cycle (after pruning and rewinding) on one training minibatch, evaluation "
      "mode. Gradients: d(loss)/dw of the surviving weights of every prunable tensor. Activations: every "
      "ReLU / fused BN-ReLU / residual-join ReLU / ReLU6 / GELU output. Histograms: Sturges bins over [low, high]. "
      "Plots: `/usr/bin/python3 tools/plot_report.py {}`.\n\n"
      "| cycle | density | loss | grad std | grad mean abs | grad histogram | act zero fraction | non-zero act "
      "histogram |\n|---:|---:|---:|---:|---:|---|---:|---|\n",
      config_.model, run_dir.string());
  for (const auto& [cycle, e] : by_cycle) {
    const auto& g = e.at("gradient");
    const auto& a = e.at("activation");
    text += fmt::format("| {} | {:.4f} | {:.4f} | {:.4g} | {:.4g} | `{}` [{:.3g}, {:.3g}] | {:.4f} | `{}` [{:.3g}, {:.3g}] |\n",
                        cycle, e.at("density").get<double>(), e.at("loss").get<double>(), g.at("std").get<double>(),
                        g.at("mean_abs").get<double>(),
                        sparkline(g.at("histogram").at("counts").get<std::vector<int64_t>>()),
                        g.at("histogram").at("low").get<double>(), g.at("histogram").at("high").get<double>(),
                        a.at("zero_fraction").get<double>(),
                        sparkline(a.at("nonzero_histogram").at("counts").get<std::vector<int64_t>>()),
                        a.at("nonzero_histogram").at("low").get<double>(),
                        a.at("nonzero_histogram").at("high").get<double>());
  }
  text += "\n## Gradient standard deviation per prunable tensor\n\n| tensor |";
  std::string rule = "|---|";
  for (const auto& [cycle, e] : by_cycle) {
    text += fmt::format(" cycle {} |", cycle);
    rule += "---:|";
  }
  text += "\n" + rule + "\n";
  if (!by_cycle.empty()) {
    const auto& first_layers = by_cycle.begin()->second.at("gradient").at("layers");
    for (std::size_t i = 0; i < first_layers.size(); ++i) {
      text += "| " + first_layers[i].at("name").get<std::string>() + " |";
      for (const auto& [cycle, e] : by_cycle) {
        const auto& layers = e.at("gradient").at("layers");
        text += i < layers.size() ? fmt::format(" {:.4g} |", layers[i].at("std").get<double>()) : " |";
      }
      text += "\n";
    }
  }
  io::write_text_atomic(run_dir / "report.md", text);
}

}  // namespace st
