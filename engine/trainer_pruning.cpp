// The pruning events of a run (Trainer methods; the scores, allocations and schedules they use are in
// pruning/ and schedules/) between IMP cycles, and the hooks that call the step-loop pruners
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
#include "pruning/greedy.h"
#include "pruning/model_size.h"
#include "models/registry.h"

namespace st {

pruning::ScoreData Trainer::score_data(int64_t stream) {
  // Batches for scores come from their own deterministic epoch of the data order (not the training
  // stream), so scoring does not disturb training and a resumed run scores the same batches.
  const int64_t epoch = 1'000'000 + stream;
  pruning::ScoreData data;
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
  pruning::ScoreOptions options;
  options.name = name;
  options.batches = config_.score_batches;
  Rng rng = Rng::derived(config_.seed, 0x73636f7265ULL + static_cast<uint64_t>(stream));  // "score"
  return pruning::compute_scores(*model_, options, score_data(stream), rng,
                                 name == config_.prune.score ? score_history_.get() : nullptr);
}

void Trainer::report_prune_event(const std::string& what, int cycle, int64_t step,
                                 const std::vector<pruning::LayerChange>& changes, const pruning::Histogram& scores,
                                 io::MetricsLog& metrics) {
  const double density = pruning::global_density(model_->parameters());
  // --progress cycles: the event in one line (the table is in metrics.jsonl); quiet: nothing
  const Progress mode = progress();
  const bool tables = mode != Progress::Cycles && mode != Progress::Quiet;
  if (mode != Progress::Quiet)
    fmt::print("pruning event ({}), cycle {} step {}: global density {:.4f}\n{}", what, cycle, step, density,
               tables ? pruning::format_prune_table(changes) : std::string());
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
  metrics.write({{"event", "prune"},
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
  Services(Trainer& trainer, io::MetricsLog& metrics) : trainer_(trainer), metrics_(metrics) {}
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
  void log(const nlohmann::json& event) override { metrics_.write(event); }
  uint64_t seed() const override { return trainer_.config_.seed; }
  void rewind_weights() override {
    ST_CHECK(!trainer_.rewind_point_.empty(), "weight rewinding without a rewind point");
    std::size_t i = 0;
    for (nn::Parameter* p : trainer_.model_->parameters()) p->value().copy_from(trainer_.rewind_point_[i++]);
    for (const nn::NamedBuffer& b : trainer_.model_->buffers()) b.tensor->copy_from(trainer_.rewind_point_[i++]);
  }
  std::unique_ptr<nn::Module> fresh_model(Rng& rng) override {
    return models::build_model(trainer_.config_.model, trainer_.input_, rng);
  }
  void rebuild_optimizer() override {
    trainer_.optimizer_ = make_optimizer(trainer_.config_.optimizer, trainer_.model_->parameters());
  }

 private:
  Trainer& trainer_;
  io::MetricsLog& metrics_;
};

StepPoint Trainer::step_point(const Position& position) const {
  return {position.cycle, position.step, total_steps(), train_loader_->batches_per_epoch()};
}

void Trainer::pruners_before_step(const StepPoint& at, io::MetricsLog& metrics) {
  // Called before every step: the model moves to the CPU only when some pruner acts (and is released
  // at the end of this function).
  std::optional<HostScope> host;
  Services services(*this, metrics);
  for (const auto& pruner : pruners_) {
    if (!pruner->acts_before_step(at)) continue;
    if (!host) host.emplace(*this);
    pruner->before_step(services, at);
  }
  if (host) host->release();  // here, not in std::optional's noexcept destructor, so a CUDA error propagates
}

bool Trainer::pruners_act_after_backward(const StepPoint& at) const {
  for (const auto& pruner : pruners_)
    if (pruner->acts_after_backward(at)) return true;
  return false;
}

void Trainer::pruners_after_backward(const StepPoint& at, io::MetricsLog& metrics) {
  const HostScope host(*this);  // with the gradients (RigL grows by them)
  Services services(*this, metrics);
  for (const auto& pruner : pruners_)
    if (pruner->acts_after_backward(at)) pruner->after_backward(services, at);
}

std::vector<pruning::GroupChange> Trainer::prune_filters(const pruning::StructuredSpec& spec, int64_t stream) {
  const HostScope host(*this);
  const auto changes = pruning::prune_filters(*model_, spec, score_data(stream));
  optimizer_ = make_optimizer(config_.optimizer, model_->parameters());  // state tensors of the new shapes
  return changes;
}

void Trainer::select_units(int next_cycle, io::MetricsLog& metrics) {
  // The selection set: the first select_eval training images (accuracy), and fresh training
  // minibatches from a stream of their own (losses of the candidates).
  data::Dataset selection = train_;
  const int64_t count = std::min<int64_t>(config_.select_eval, train_.size());
  selection.labels.resize(static_cast<std::size_t>(count));
  selection.pixels.resize(static_cast<std::size_t>(count * train_.pixels_per_image()));
  const pruning::ScoreData data = score_data(2000 + next_cycle);
  model_->train(false);
  const pruning::ModelSize size_before = pruning::model_size(*model_);
  const double original = evaluate(selection).accuracy;
  const bool per_layer = config_.select_target == "layer";
  // The candidates of one GFS step are all scored on the same fresh minibatches (select_batches of
  // them, loaded once per step; averaging 8 instead of 1 did not select fewer units on lenet300,
  // see bench/results/2026-11-21-gfs-lenet300.md).
  struct Minibatch {
    Tensor images;
    std::vector<int32_t> labels;
  };
  std::vector<Minibatch> fresh;
  int64_t fresh_iteration = -1;
  const pruning::SelectionHooks hooks{
      [&](int64_t iteration) {
        if (iteration != fresh_iteration) {
          fresh.assign(static_cast<std::size_t>(config_.select_batches), Minibatch{});
          for (int64_t b = 0; b < config_.select_batches; ++b)
            data.batch(iteration * config_.select_batches + b, fresh[static_cast<std::size_t>(b)].images,
                       fresh[static_cast<std::size_t>(b)].labels);
          fresh_iteration = iteration;
        }
        model_->train(false);
        double sum = 0.0;
        for (const Minibatch& m : fresh)
          sum += static_cast<double>(
              ops::softmax_cross_entropy(model_->forward(Variable(m.images)), m.labels).value().item());
        return sum / static_cast<double>(fresh.size());
      },
      [&] { return evaluate(selection).accuracy; }};
  Rng rng = Rng::derived(config_.seed, 0x676673ULL + static_cast<uint64_t>(next_cycle));  // "gfs"
  fmt::print("unit selection ({}) before cycle {}: accuracy on {} training images {:.4f}; each layer stops at "
             "(1 - {}) of {}\n",
             config_.select_method == "gfs" ? fmt::format("gfs, {} form", config_.select_scale) : config_.select_method,
             next_cycle, count, original, config_.select_tolerance,
             per_layer ? "the accuracy before its selection" : "this");
  fmt::print("{:<28} {:>7} {:>8} {:>9} {:>12} {:>14} {:>12}\n", "layer", "units", "selected", "target", "acc selected",
             "acc finetuned", "loss evals");
  nlohmann::json layers = nlohmann::json::array();
  const std::size_t group_count = model_->channel_groups().size();
  if (group_count == 0) fail("--select: this model describes no channel groups");
  int64_t finetune_batch = 0;
  for (std::size_t g = 0; g < group_count; ++g) {
    const std::vector<nn::ChannelGroup> groups = model_->channel_groups();
    const nn::ChannelGroup& group = groups[g];
    double reference = original;
    if (per_layer && g > 0) {
      model_->train(false);
      reference = evaluate(selection).accuracy;
    }
    const double target = (1.0 - config_.select_tolerance) * reference;
    const pruning::Selection chosen = config_.select_method == "gfs"
                                          ? pruning::greedy_forward_selection(
                                                group, hooks, target,
                                                {config_.select_candidates, config_.select_repeats,
                                                 config_.select_scale == "average"},
                                                rng)
                                          : pruning::magnitude_selection(group, hooks, target);
    std::vector<std::vector<int64_t>> keep(groups.size());
    for (std::size_t i = 0; i < groups.size(); ++i) {
      keep[i].resize(static_cast<std::size_t>(groups[i].channels));
      for (int64_t c = 0; c < groups[i].channels; ++c) keep[i][static_cast<std::size_t>(c)] = c;
    }
    keep[g] = chosen.units;
    pruning::shrink(groups, keep);  // the consumers already carry the selection's scale
    optimizer_ = make_optimizer(config_.optimizer, model_->parameters());
    // Brief fine-tuning after each layer (Ye et al.), at a tenth of the peak learning rate.
    for (int64_t step = 0; step < config_.select_finetune_steps; ++step, ++finetune_batch) {
      Tensor images;
      std::vector<int32_t> labels;
      data.batch(100000 + finetune_batch, images, labels);
      std::vector<float> pixels(images.data(), images.data() + images.numel());
      train_step(pixels, labels, images.dim(0), static_cast<float>(0.1 * config_.schedule.max_lr), nullptr);
    }
    model_->train(false);
    const double finetuned = evaluate(selection).accuracy;
    fmt::print("{:<28} {:>7} {:>8} {:>9.4f} {:>12.4f} {:>14.4f} {:>12}\n", group.name, group.channels,
               chosen.units.size(), target, chosen.accuracy, finetuned, chosen.evaluations);
    layers.push_back({{"name", group.name},
                      {"units", group.channels},
                      {"selected", chosen.units.size()},
                      {"target_accuracy", target},
                      {"accuracy_selected", chosen.accuracy},
                      {"accuracy_finetuned", finetuned},
                      {"scale", chosen.scale},
                      {"picks", chosen.picks}});
  }
  const pruning::ModelSize size_after = pruning::model_size(*model_);
  fmt::print("{}", pruning::size_table(size_before, size_after));
  std::fflush(stdout);
  optimizer_ = make_optimizer(config_.optimizer, model_->parameters());
  metrics.write({{"event", "select_units"},
                 {"method", config_.select_method},
                 {"scale", config_.select_method == "gfs" ? config_.select_scale : "sum"},
                 {"cycle", next_cycle},
                 {"original_accuracy", original},
                 {"target", config_.select_target},
                 {"tolerance", config_.select_tolerance},
                 {"parameters", size_after.parameters},
                 {"parameters_before", size_before.parameters},
                 {"flops_before", size_before.flops},
                 {"flops_after", size_after.flops},
                 {"layers", layers}});
}

void Trainer::prune_for_next_cycle(int next_cycle, io::MetricsLog& metrics) {
  const HostScope host(*this);  // pruning, unit selection (and its fine-tuning steps) on the CPU copy
  if (!config_.select_method.empty()) {
    select_units(next_cycle, metrics);
    return;
  }
  Services services(*this, metrics);
  for (const auto& pruner : pruners_)
    if (pruner->acts_at_cycle_end(next_cycle)) pruner->at_cycle_end(services, next_cycle);
}

}  // namespace st
