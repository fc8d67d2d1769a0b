// The pruning events of a run (Trainer methods; the scores, allocations and schedules they use are
// pruning/'s and schedules/' plug-ins, engine/plugins.h), and the hooks that call the step-loop pruners
// (engine/pruner.h; the methods inside training, in pruning/pruners.h) with this trainer's services.
// Every event prints and logs the per-layer table (shape, kept, density and FLOPs before/after) and the
// global density.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>
#include <optional>

#include "engine/error.h"
#include "engine/io/metrics.h"
#include "engine/trainer.h"
#include "engine/ops.h"
#include "engine/sparse_kernels.h"
#include "engine/plugins.h"

namespace st {

ScoreData Trainer::score_data(int64_t stream) {
  // Batches for scores come from their own deterministic epoch of the data order (not the training
  // stream), so scoring does not disturb training and a resumed run scores the same batches.
  const int64_t epoch = 1'000'000 + stream;
  ScoreData data;
  data.sample_shape = {1, input_.height, input_.width, input_.channels};
  data.batch = [this, epoch](int64_t index, Tensor& images, std::vector<int32_t>& labels) {
    std::vector<float> pixels;
    const int64_t batches = train_loader_->batches_per_epoch();
    const int64_t count = train_loader_->fill_batch(epoch + index / batches, index % batches, pixels, labels);
    images = Tensor::empty({count, input_.height, input_.width, input_.channels});
    std::copy(pixels.begin(), pixels.begin() + images.numel(), images.data());
    labels.resize(static_cast<std::size_t>(count));
  };
  data.balanced_batch = [this, epoch](int64_t per_class, Tensor& images, std::vector<int32_t>& labels) {
    const int64_t classes = input_.num_classes, sample = input_.height * input_.width * input_.channels;
    std::vector<int64_t> taken(static_cast<std::size_t>(classes), 0);
    std::vector<float> chosen;
    labels.clear();
    std::vector<float> pixels;
    std::vector<int32_t> batch_labels;
    for (int64_t b = 0; b < train_loader_->batches_per_epoch() && static_cast<int64_t>(labels.size()) < per_class * classes;
         ++b) {
      const int64_t count = train_loader_->fill_batch(epoch, b, pixels, batch_labels);
      for (int64_t i = 0; i < count; ++i) {
        const int32_t label = batch_labels[static_cast<std::size_t>(i)];
        if (taken[static_cast<std::size_t>(label)] >= per_class) continue;
        ++taken[static_cast<std::size_t>(label)];
        labels.push_back(label);
        chosen.insert(chosen.end(), pixels.begin() + i * sample, pixels.begin() + (i + 1) * sample);
      }
    }
    const auto count = static_cast<int64_t>(labels.size());
    images = Tensor::empty({count, input_.height, input_.width, input_.channels});
    std::copy(chosen.begin(), chosen.end(), images.data());
  };
  return data;
}

std::vector<Tensor> Trainer::compute_scores(const std::string& name, int64_t stream) {
  Rng rng = Rng::derived(config_.seed, 0x73636f7265ULL + static_cast<uint64_t>(stream));  // "score"
  return plugins().scores(config_, *model_, name, score_data(stream), rng, score_history_.get());
}

void Trainer::report_prune_event(const std::string& what, int cycle, int64_t step,
                                 const std::vector<LayerChange>& changes, const Histogram& scores,
                                 io::MetricsLog* metrics) {
  const double density = global_density(model_->parameters());
  // --progress cycles: the event in one line (the table is in metrics.jsonl); quiet: nothing
  const Progress mode = progress();
  const bool tables = mode != Progress::Cycles && mode != Progress::Quiet;
  if (mode != Progress::Quiet)
    fmt::print("pruning event ({}), cycle {} step {}: global density {:.4f}\n{}", what, cycle, step, density,
               tables ? format_prune_table(changes) : std::string());
  std::fflush(stdout);
  // Under --sparse-kernels, each masked linear and convolution layer's compute form for the new mask,
  // chosen now (auto: both paths timed at the training batch; a convolution on the geometry of its largest
  // training batch, so one that has not run yet is listed from its next forward on) and listed with
  // the event.
  std::map<std::string, const SparseForm*> forms;
  if (device_.device == Device::CPU && sparse_kernels() != SparseKernels::Off) {
    std::string lines;
    for (nn::Parameter* p : model_->parameters()) {
      if (!sparse_path_allowed(*p)) continue;
      const bool linear = p->kind == nn::ParameterKind::LinearWeight;
      // (a convolution shrunk since its last forward is listed from its next forward on)
      const bool conv = p->kind == nn::ParameterKind::ConvWeight && p->sparse && p->sparse->conv &&
                        p->sparse->conv->out_channels == p->value().dim(0) &&
                        p->sparse->conv->patch_size() == p->numel() / p->value().dim(0);
      if (!linear && !conv) continue;
      std::optional<Conv2dGeometry> geometry;
      if (conv) geometry = p->sparse->conv;
      const SparseForm& form = conv ? refresh_sparse_form(*p, geometry->batch, &*geometry)
                                    : refresh_sparse_form(*p, config_.batch_size);
      forms[p->name] = &form;
      lines += fmt::format("  {:<30} {:>6}", p->name, form.use_sparse ? "sparse" : "dense");
      if (form.timed_batch > 0)
        lines += fmt::format("  (dense {:.3f} ms, sparse {:.3f} ms per step at batch {})", form.dense_ms, form.sparse_ms,
                             form.timed_batch);
      lines += "\n";
    }
    if (!lines.empty() && tables)
      fmt::print("compute form of the sparse-capable layers (--sparse-kernels {}):\n{}",
                 sparse_kernels_name(sparse_kernels()), lines);
  }
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& c : changes) {
    nlohmann::json layer = {{"name", c.name},
                            {"shape", c.shape},
                            {"kept_before", c.kept_before},
                            {"kept", c.kept_after},
                            {"numel", c.numel},
                            {"flops_before", 2 * c.kept_before * c.uses_per_sample},
                            {"flops_after", 2 * c.kept_after * c.uses_per_sample}};
    if (const auto form = forms.find(c.name); form != forms.end()) {
      layer["compute"] = form->second->use_sparse ? "sparse" : "dense";
      if (form->second->timed_batch > 0) {
        layer["dense_ms"] = form->second->dense_ms;
        layer["sparse_ms"] = form->second->sparse_ms;
      }
    }
    layers.push_back(layer);
  }
  if (!scores.counts.empty() && tables)
    fmt::print("score histogram ({} bins, Sturges) over [{:.4g}, {:.4g}]: {}\n", scores.counts.size(), scores.low,
               scores.high, fmt::join(scores.counts, " "));
  if (metrics == nullptr) return;
  metrics->write({{"event", "prune"},
                 {"what", what},
                 {"cycle", cycle},
                 {"step", step},
                 {"density", density},
                 {"layers", layers},
                 {"score_histogram", {{"low", scores.low}, {"high", scores.high}, {"counts", scores.counts}}}});
}

// The PruningRun of a trainer: its model, optimizer, scores and event reports, for the step-loop pruners.
class Trainer::Services final : public PruningRun {
 public:
  // metrics: null to log nothing
  Services(Trainer& trainer, io::MetricsLog* metrics) : trainer_(trainer), metrics_(metrics) {}
  nn::Module& model() override { return *trainer_.model_; }
  Optimizer& optimizer() override { return *trainer_.optimizer_; }
  std::vector<Tensor> scores(const std::string& name, int64_t stream) override {
    return trainer_.compute_scores(name, stream);
  }
  void report(const std::string& what, const StepPoint& at, const std::vector<LayerChange>& changes,
              const Histogram& histogram) override {
    trainer_.report_prune_event(what, at.cycle, at.step, changes, histogram, metrics_);
  }
  ScoreData score_data(int64_t stream) override { return trainer_.score_data(stream); }
  void log(const nlohmann::json& event) override {
    if (metrics_ != nullptr) metrics_->write(event);
  }
  uint64_t seed() const override { return trainer_.config_.seed; }
  void rewind_weights() override {
    ST_CHECK(!trainer_.rewind_point_.empty(), "weight rewinding without a rewind point");
    std::size_t i = 0;
    for (nn::Parameter* p : trainer_.model_->parameters()) p->value().copy_from(trainer_.rewind_point_[i++]);
    for (const nn::NamedBuffer& b : trainer_.model_->buffers()) b.tensor->copy_from(trainer_.rewind_point_[i++]);
  }
  std::unique_ptr<nn::Module> fresh_model(Rng& rng) override {
    return plugins().build_model(trainer_.config_.model, trainer_.input_, rng);
  }
  void rebuild_optimizer() override {
    trainer_.optimizer_ = make_optimizer(trainer_.config_.optimizer, trainer_.model_->parameters());
  }
  double training_prefix_accuracy(int64_t count) override {
    if (!prefix_ || prefix_count_ != count) {  // made once per count, reused by every evaluation
      prefix_ = std::make_unique<data::Dataset>(trainer_.train_);
      prefix_count_ = std::min<int64_t>(count, trainer_.train_.size());
      prefix_->labels.resize(static_cast<std::size_t>(prefix_count_));
      prefix_->pixels.resize(static_cast<std::size_t>(prefix_count_ * trainer_.train_.pixels_per_image()));
    }
    return trainer_.evaluate(*prefix_).accuracy;
  }
  int64_t training_images() const override { return trainer_.train_.size(); }
  float train_step(const Tensor& images, const std::vector<int32_t>& labels, float lr) override {
    std::vector<float> pixels(images.data(), images.data() + images.numel());
    return trainer_.train_step(pixels, labels, images.dim(0), lr, nullptr);
  }

 private:
  Trainer& trainer_;
  io::MetricsLog* metrics_;
  std::unique_ptr<data::Dataset> prefix_;  // the first prefix_count_ training images
  int64_t prefix_count_ = 0;
};

StepPoint Trainer::step_point(const Position& position) const {
  return {position.cycle, position.step, total_steps(), train_loader_->batches_per_epoch()};
}

bool Trainer::pruners_act(PrunerActs acts, const StepPoint& at) const {
  for (const auto& pruner : pruners_)
    if (((*pruner).*acts)(at)) return true;
  return false;
}

void Trainer::run_pruners(PrunerActs acts, PrunerHook hook, const StepPoint& at, io::MetricsLog& metrics) {
  // Called at every step: the model moves to the CPU only when some pruner acts (and is released at the end
  // of this function); after the backward, with the gradients (RigL grows by them).
  std::optional<HostScope> host;
  Services services(*this, &metrics);
  for (const auto& pruner : pruners_) {
    if (!((*pruner).*acts)(at)) continue;
    if (!host) host.emplace(*this);
    ((*pruner).*hook)(services, at);
  }
  if (host) host->release();  // here, not in std::optional's noexcept destructor, so a CUDA error propagates
}

void Trainer::change_model(const std::function<void(PruningRun&)>& change) {
  const HostScope host(*this);
  Services services(*this, nullptr);
  change(services);
}

void Trainer::prune_for_next_cycle(int next_cycle, io::MetricsLog& metrics) {
  const HostScope host(*this);  // pruning, unit selection (and its fine-tuning steps) on the CPU copy
  Services services(*this, &metrics);
  for (const auto& pruner : pruners_)
    if (pruner->acts_at_cycle_end(next_cycle)) pruner->at_cycle_end(services, next_cycle);
}

}  // namespace st
