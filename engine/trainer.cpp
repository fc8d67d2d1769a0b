#include "engine/trainer.h"

#include "engine/op_times.h"

#include <fmt/format.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <optional>

#include "engine/data/image_folder.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/io/metrics.h"
#include "engine/io/safetensors.h"
#include "engine/ops.h"
#include "engine/sparse_kernels.h"
#include "engine/plugins.h"

namespace st {

DeviceChoice choose_device(const std::string& requested) {
  const CudaStatus& cuda = cuda_status();
  if (requested == "cuda" && !cuda.available) fail("--device cuda: no usable CUDA device ({})", cuda.reason);
  if (requested == "cuda" || (requested == "auto" && cuda.available))
    return {Device::CUDA, fmt::format("cuda ({}), kernels {}, tf32 {}", cuda.name, kernel_source_name(kernel_source()),
                                      tf32() ? "on" : "off")};
  if (cuda.available)
    return {Device::CPU, fmt::format("cpu, {} threads (CUDA device {} not used: --device cpu)", omp_get_max_threads(),
                                     cuda.name)};
  return {Device::CPU, fmt::format("cpu, {} threads (no CUDA device: {})", omp_get_max_threads(), cuda.reason)};
}

// ---- trainer -----------------------------------------------------------------------------------

namespace {

data::Dataset load_split(const TrainConfig& c, bool train) {
  const std::string dir = c.data_dir.empty() ? default_data_dir(c.dataset) : c.data_dir;
  if (c.dataset == "fashion-mnist" || c.dataset == "mnist")
    return data::load_idx_directory(dir, train, c.dataset + (train ? "/train" : "/test"));
  if (c.dataset == "imagefolder")  // train = ROOT/train, test = ROOT/val
    return data::load_image_folder(dir, train, {c.image_size, c.max_images});
  return data::load_cifar_directory(dir, train, c.dataset == "cifar100");
}

std::string format_duration(double seconds) {
  const auto total = static_cast<int64_t>(std::max(0.0, seconds));
  return fmt::format("{}:{:02}:{:02}", total / 3600, (total / 60) % 60, total % 60);
}

}  // namespace

Trainer::Trainer(TrainConfig config) : config_(std::move(config)), model_rng_(config_.seed) {
  validate(config_);
  if (config_.threads > 0) omp_set_num_threads(config_.threads);
  // The device before any data is read (--device cuda without a GPU fails at once); the kernel settings
  // and threads before it, since its description names them.
  set_kernel_source(parse_kernel_source(config_.kernels, "--kernels"));
  set_sparse_kernels(parse_sparse_kernels(config_.sparse_kernels, "--sparse-kernels"));
  set_tf32(config_.tf32);
  device_ = choose_device(config_.device);
  data::Dataset full_train = load_split(config_, true);
  test_ = load_split(config_, false);
  if (config_.train_limit > 0 && config_.train_limit < full_train.size()) {
    full_train.labels.resize(static_cast<std::size_t>(config_.train_limit));
    full_train.pixels.resize(static_cast<std::size_t>(config_.train_limit * full_train.pixels_per_image()));
  }
  if (config_.val_size >= full_train.size())
    fail("--val-size: {} validation images leave none to train on (the training set has {})", config_.val_size,
         full_train.size());
  std::tie(train_, validation_) = data::split_train_validation(full_train, config_.val_size, config_.seed);
  normalization_ = data::compute_normalization(train_);

  const int64_t side = std::max({plugins().model_image_size(config_.model), train_.height, train_.width});
  input_ = {train_.channels, side, side, train_.num_classes};
  data::AugmentOptions augment;
  augment.pad_to = (train_.height == side && train_.width == side) ? 0 : side;
  eval_augment_ = augment;
  if (config_.augment) {
    augment.pad_crop = 4;
    augment.flip = true;
  }
  train_loader_ = std::make_unique<data::BatchLoader>(train_, config_.batch_size, true, false, config_.seed, augment,
                                                      normalization_);
  const RunSize size{total_steps(), train_loader_->batches_per_epoch()};
  learning_rate_ = plugins().learning_rate(config_, size);
  cycle_search_ = plugins().cycle_search(config_);
  model_ = plugins().build_model(config_.model, input_, model_rng_);
  plugins().initial_masks(config_, *model_);
  // The model is built and masked on the CPU (the same initial weights on every device), then moved;
  // the optimizer state is made there.
  model_->to(device_.device);
  model_device_ = device_.device;
  optimizer_ = make_optimizer(config_.optimizer, model_->parameters());
  score_history_ = plugins().training_history(config_, *model_);
  pruners_ = plugins().pruners(config_, size);
}

void Trainer::place_model(Device device) {
  model_->to(device);
  optimizer_->to(device);
  model_device_ = device;
}

Trainer::HostScope::HostScope(Trainer& trainer)
    : trainer_(trainer), previous_(trainer.model_device_), exceptions_(std::uncaught_exceptions()) {
  if (previous_ != Device::CPU) trainer_.place_model(Device::CPU);
}

Trainer::HostScope::~HostScope() noexcept(false) {
  // While an exception unwinds (the run is failing anyway) the model stays on the CPU: a second
  // exception from here would terminate the process without the first one's message.
  if (std::uncaught_exceptions() > exceptions_) return;
  release();
}

void Trainer::HostScope::release() {
  if (previous_ == Device::CPU) return;
  const Device device = previous_;
  previous_ = Device::CPU;
  trainer_.place_model(device);
}

int64_t Trainer::total_steps() const {
  return config_.iters_per_cycle > 0 ? config_.iters_per_cycle
                                     : train_loader_->batches_per_epoch() * config_.epochs;
}

std::filesystem::path Trainer::checkpoint_path(const std::string& name) const {
  return std::filesystem::path(config_.run_dir) / "checkpoints" / (name + ".safetensors");
}

TrainConfig Trainer::config_of_run(const std::filesystem::path& run_dir) {
  const auto path = run_dir / "checkpoints" / "last.safetensors";
  if (!std::filesystem::exists(path))
    fail("--resume {}: no checkpoint at {} (was the run started with this directory?)", run_dir.string(),
         path.string());
  TrainConfig config = config_of_checkpoint(path);
  config.run_dir = run_dir.string();
  return config;
}

TrainConfig Trainer::config_of_checkpoint(const std::filesystem::path& path) {
  const auto metadata = io::read_checkpoint_metadata(path);
  const auto it = metadata.find("sparsetrain.config");
  if (it == metadata.end()) fail("checkpoint {}: no sparsetrain.config metadata", path.string());
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    fail("checkpoint {}: sparsetrain.config is not valid JSON: {}", path.string(), e.what());
  }
  TrainConfig config = train_config_from_json(json);
  config.run_dir = path.parent_path().parent_path().string();  // RUN/checkpoints/NAME.safetensors
  return config;
}

std::vector<Tensor*> Trainer::state_tensors() {
  std::vector<Tensor*> tensors;
  for (nn::Parameter* p : model_->parameters()) {
    tensors.push_back(&p->value());
    if (p->mask.defined()) tensors.push_back(&p->mask);
  }
  for (const nn::NamedBuffer& buffer : model_->buffers()) tensors.push_back(buffer.tensor);
  for (auto& [slot, tensor] : optimizer_->state()) tensors.push_back(tensor);
  for (const auto& pruner : pruners_)
    for (Tensor* t : pruner->state()) tensors.push_back(t);
  return tensors;
}

Trainer::Snapshot Trainer::snapshot() {
  const HostScope host(*this);
  Snapshot s;
  for (Tensor* t : state_tensors()) s.tensors.push_back(t->clone());
  for (const Tensor& t : rewind_point_) s.rewind.push_back(t.clone());
  s.rng = model_rng_.state();
  s.optimizer_steps = optimizer_->steps_taken();
  for (nn::Parameter* p : model_->parameters())
    if (const auto choice = current_sparse_choice(*p)) s.sparse_choices[p->name] = *choice;
  return s;
}

void Trainer::restore(const Snapshot& s) {
  const HostScope host(*this);
  const std::vector<Tensor*> tensors = state_tensors();
  ST_CHECK(tensors.size() == s.tensors.size(), "snapshot of {} tensors restored into {}", s.tensors.size(),
           tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) tensors[i]->copy_from(s.tensors[i]);
  for (nn::Parameter* p : model_->parameters()) {
    p->mask_changed();
    if (const auto choice = s.sparse_choices.find(p->name); choice != s.sparse_choices.end())
      preset_sparse_choice(*p, choice->second);
  }
  rewind_point_.clear();
  for (const Tensor& t : s.rewind) rewind_point_.push_back(t.clone());
  model_rng_.set_state(s.rng);
  optimizer_->set_steps_taken(s.optimizer_steps);
}

io::CheckpointContents Trainer::checkpoint_contents() {
  io::CheckpointContents contents;
  contents.model = model_.get();
  contents.optimizer = optimizer_.get();
  contents.rngs["model"] = &model_rng_;
  for (std::size_t i = 0; i < rewind_point_.size(); ++i)
    contents.extra.emplace_back(fmt::format("rewind/{}", i), &rewind_point_[i]);
  if (score_history_) {
    const std::vector<Tensor*> history = score_history_->state();
    for (std::size_t i = 0; i < history.size(); ++i) contents.extra.emplace_back(fmt::format("score/{}", i), history[i]);
  }
  for (const auto& pruner : pruners_) {
    const std::vector<Tensor*> state = pruner->state();
    for (std::size_t i = 0; i < state.size(); ++i)
      contents.extra.emplace_back(fmt::format("pruner/{}/{}", pruner->name(), i), state[i]);
  }
  return contents;
}

void Trainer::save(const std::string& name, const Position& position) {
  const HostScope host(*this);
  io::CheckpointContents contents = checkpoint_contents();
  contents.config_json = to_json(config_).dump();
  nlohmann::json position_json = {{"cycle", position.cycle},
                                  {"step", position.step},
                                  {"data_step", position.data_step},
                                  {"global_step", position.global_step},
                                  {"optimizer_steps", optimizer_->steps_taken()},
                                  {"rewind_tensors", rewind_point_.size()},
                                  {"seconds", position.seconds}};
  // --sparse-kernels auto: each layer's decision for its current mask, adopted again on resume.
  nlohmann::json choices = nlohmann::json::object();
  for (nn::Parameter* p : model_->parameters())
    if (const auto choice = current_sparse_choice(*p))
      choices[p->name] = {{"sparse", choice->use_sparse},
                          {"dense_ms", choice->dense_ms},
                          {"sparse_ms", choice->sparse_ms},
                          {"batch", choice->timed_batch}};
  if (!choices.empty()) position_json["sparse_choices"] = choices;
  contents.position_json = position_json.dump();
  io::save_checkpoint(checkpoint_path(name), contents);
}

Trainer::Position Trainer::load(const std::filesystem::path& path) {
  const HostScope host(*this);
  const auto metadata = io::read_checkpoint_metadata(path);
  Position position;
  std::size_t rewind_tensors = 0;
  std::map<std::string, SparseChoice> sparse_choices;
  try {
    const auto json = nlohmann::json::parse(metadata.at("sparsetrain.position"));
    if (json.contains("sparse_choices"))
      for (const auto& [name, c] : json.at("sparse_choices").items())
        sparse_choices[name] = {c.at("sparse").get<bool>(), c.at("dense_ms").get<double>(),
                                c.at("sparse_ms").get<double>(), c.at("batch").get<int64_t>()};
    position.cycle = json.at("cycle").get<int>();
    position.step = json.at("step").get<int64_t>();
    position.data_step = json.at("data_step").get<int64_t>();
    position.global_step = json.at("global_step").get<int64_t>();
    position.seconds = json.value("seconds", 0.0);
    rewind_tensors = json.at("rewind_tensors").get<std::size_t>();
    optimizer_->set_steps_taken(json.at("optimizer_steps").get<int64_t>());
  } catch (const std::exception& e) {
    fail("checkpoint {}: bad sparsetrain.position metadata: {}", path.string(), e.what());
  }
  // A structurally pruned run saved smaller tensors: shrink the fresh model to them first.
  if (shrink_to_checkpoint(path)) {
    const int64_t steps = optimizer_->steps_taken();
    optimizer_ = make_optimizer(config_.optimizer, model_->parameters());
    optimizer_->set_steps_taken(steps);
  }
  rewind_point_.clear();
  if (rewind_tensors > 0)
    for (nn::Parameter* p : model_->parameters()) rewind_point_.push_back(Tensor::empty(p->value().shape()));
  if (rewind_tensors > 0)
    for (const nn::NamedBuffer& b : model_->buffers()) rewind_point_.push_back(Tensor::empty(b.tensor->shape()));
  if (rewind_point_.size() != rewind_tensors)
    fail("checkpoint {}: {} rewind tensors for a model with {} weights and buffers", path.string(), rewind_tensors,
         rewind_point_.size());
  io::CheckpointContents contents = checkpoint_contents();
  const int64_t optimizer_steps = optimizer_->steps_taken();
  io::load_checkpoint(path, contents);
  optimizer_->set_steps_taken(optimizer_steps);
  for (nn::Parameter* p : model_->parameters()) {
    const auto choice = sparse_choices.find(p->name);
    if (choice == sparse_choices.end()) continue;
    if (!p->mask.defined())
      fail("checkpoint {}: sparse_choices names {}, which has no mask", path.string(), p->name);
    preset_sparse_choice(*p, choice->second);
  }
  return position;
}

bool Trainer::shrink_to_checkpoint(const std::filesystem::path& path) {
  std::map<std::string, Shape> shapes;
  bool shrunk = false;
  for (const auto& record : io::read_safetensors(path).tensors)
    if (record.name.rfind("param/", 0) == 0) shapes[record.name.substr(6)] = record.shape;
  for (nn::Parameter* p : model_->parameters())
    if (const auto it = shapes.find(p->name); it != shapes.end() && it->second != p->value().shape()) shrunk = true;
  if (!shrunk) return false;
  plugins().resize_to_shapes(*model_, shapes);
  // what was made for the model's shapes
  score_history_ = plugins().training_history(config_, *model_);
  pruners_ = plugins().pruners(config_, {total_steps(), train_loader_->batches_per_epoch()});
  return true;
}

void Trainer::init_from_checkpoint(const std::filesystem::path& path) {
  const HostScope host(*this);
  const auto metadata = io::read_checkpoint_metadata(path);  // refuses a file that is not a checkpoint
  if (const auto config = metadata.find("sparsetrain.config"); config != metadata.end()) {
    std::string model;
    try {
      model = nlohmann::json::parse(config->second).at("model").get<std::string>();
    } catch (const std::exception& e) {
      fail("--init-from {}: bad sparsetrain.config metadata: {}", path.string(), e.what());
    }
    if (model != config_.model)
      fail("--init-from {}: a checkpoint of {}, but this run trains {} (--model)", path.string(), model, config_.model);
  }
  shrink_to_checkpoint(path);  // a structurally shrunk network saved smaller tensors
  io::CheckpointContents contents;  // weights, masks and buffers only: the optimizer starts fresh
  contents.model = model_.get();
  io::load_checkpoint(path, contents);
  for (nn::Parameter* p : model_->parameters()) p->apply_mask();
  optimizer_ = make_optimizer(config_.optimizer, model_->parameters());
  if (progress() != Progress::Quiet)
    fmt::print("initialised from {}: density {:.4f}\n", path.string(), global_density(model_->parameters()));
}

void Trainer::save_new_checkpoint(const std::string& name, const std::string& flag) {
  if (std::filesystem::exists(checkpoint_path(name)))
    fail("{}: {} exists already (choose another name)", flag, checkpoint_path(name).string());
  save(name, Position{});
}

void Trainer::capture_rewind_point() {
  const HostScope host(*this);  // the rewind point is kept on the CPU
  rewind_point_.clear();
  for (nn::Parameter* p : model_->parameters()) rewind_point_.push_back(p->value().clone());
  for (const nn::NamedBuffer& b : model_->buffers()) rewind_point_.push_back(b.tensor->clone());
}

float Trainer::train_step(const std::vector<float>& images, const std::vector<int32_t>& labels, int64_t batch, float lr,
                          int64_t* correct, const std::function<void()>& after_backward) {
  Tensor input = Tensor::empty({batch, input_.height, input_.width, input_.channels});
  std::copy(images.begin(), images.begin() + input.numel(), input.data());
  // Each batch is uploaded (synchronously) when the model is on the GPU; a dataset resident on the
  // device with augmentation there is later work.
  if (model_device_ != Device::CPU) input = input.to(model_device_);
  std::vector<int32_t> batch_labels(labels.begin(), labels.begin() + batch);
  model_->train(true);
  {
    const OpTimer timer("zero_grad");
    optimizer_->zero_grad();
  }
  // A step followed by a DST update runs dense: RigL grows by the gradients of pruned weights.
  std::optional<DenseGradientScope> dense_gradients;
  if (after_backward) dense_gradients.emplace();
  Tape tape;
  Variable logits, loss;
  {
    TapeScope scope(tape);
    logits = model_->forward(Variable(input));
    loss = ops::softmax_cross_entropy(logits, batch_labels, config_.label_smoothing);
  }
  tape.backward(loss);
  if (after_backward) after_backward();
  {
    const OpTimer timer("optimizer step");
    optimizer_->step(lr);
  }
  if (correct != nullptr) *correct = ops::count_correct(logits.value(), batch_labels);
  return loss.value().item();
}

EvalResult Trainer::evaluate(const data::Dataset& dataset) {
  model_->train(false);
  const data::BatchLoader loader(dataset, 1000, false, false, 0, eval_augment_, normalization_);
  std::vector<float> images;
  std::vector<int32_t> labels;
  EvalResult result;
  result.class_correct.assign(static_cast<std::size_t>(dataset.num_classes), 0);
  result.class_count.assign(static_cast<std::size_t>(dataset.num_classes), 0);
  double loss_sum = 0.0;
  int64_t correct = 0;
  for (int64_t b = 0; b < loader.batches_per_epoch(); ++b) {
    const int64_t batch = loader.fill_batch(0, b, images, labels);
    Tensor input = Tensor::empty({batch, input_.height, input_.width, input_.channels});
    std::copy(images.begin(), images.begin() + input.numel(), input.data());
    if (model_device_ != Device::CPU) input = input.to(model_device_);
    labels.resize(static_cast<std::size_t>(batch));
    const Variable logits = model_->forward(Variable(input));
    loss_sum += static_cast<double>(ops::softmax_cross_entropy(logits, labels, 0.0f).value().item()) *
                static_cast<double>(batch);
    const std::vector<int32_t> predicted = ops::argmax_rows(logits.value());
    for (int64_t n = 0; n < batch; ++n) {
      const auto label = static_cast<std::size_t>(labels[static_cast<std::size_t>(n)]);
      ST_CHECK(label < result.class_count.size(), "evaluate: label {} of a dataset with {} classes", label,
               result.class_count.size());
      const bool right = predicted[static_cast<std::size_t>(n)] == labels[static_cast<std::size_t>(n)];
      ++result.class_count[label];
      if (right) ++result.class_correct[label];
      correct += right ? 1 : 0;
    }
    result.count += batch;
  }
  result.loss = loss_sum / static_cast<double>(std::max<int64_t>(result.count, 1));
  result.accuracy = static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(result.count, 1));
  return result;
}

const data::Dataset& Trainer::split(const std::string& name, const std::string& flag) const {
  if (name == "train") return train_;
  if (name == "val") return validation_;
  if (name == "test") return test_;
  fail("{}: expected train, val or test, got '{}'", flag, name);
}

Trainer::Progress Trainer::progress() const {
  if (config_.progress == "bar") return Progress::Bar;
  if (config_.progress == "epochs") return Progress::Epochs;
  if (config_.progress == "steps") return Progress::Steps;
  if (config_.progress == "cycles") return Progress::Cycles;
  if (config_.progress == "quiet") return Progress::Quiet;
  return isatty(fileno(stdout)) != 0 ? Progress::Bar : Progress::Epochs;
}

int64_t Trainer::steps_after_cycle(int cycle) const {
  const int64_t branches = cycle_search_ ? cycle_search_->branches() : 1;
  int64_t steps = 0;
  for (int c = cycle + 1; c < config_.cycles_count; ++c)
    steps += learning_rate_->cycle_iters(c) * (c > 0 ? branches : 1);
  return steps;
}

void Trainer::train_cycle(Position& position, double max_lr, bool main_line, io::MetricsLog& metrics) {
  const int64_t batches = train_loader_->batches_per_epoch();
  const int64_t cycle_iters = learning_rate_->cycle_iters(position.cycle);
  const bool single_cycle = config_.cycles_count == 1;
  const int64_t log_every = config_.log_every > 0 ? config_.log_every : std::max<int64_t>(1, batches / 5);
  const int64_t rewind_iteration = config_.cycles_count > 1 ? learning_rate_->rewind_iteration() : -1;
  // The LR of this cycle: the policy's, with the peak replaced by max_lr (the oracle's branches).
  const double policy_peak = learning_rate_->max_lr(position.cycle);
  const double peak_scale = max_lr / policy_peak;
  std::vector<float> images;
  std::vector<int32_t> labels;
  auto window_start = std::chrono::steady_clock::now();
  int64_t window_images = 0, window_correct = 0, window_steps = 0;
  double window_loss = 0.0;
  const Progress mode = progress();
  const int64_t epochs_in_cycle = (cycle_iters + batches - 1) / batches;
  // the epoch's training statistics, for the line per epoch
  auto epoch_start = std::chrono::steady_clock::now();
  int64_t epoch_images = 0, epoch_correct = 0, epoch_steps = 0;
  double epoch_loss = 0.0;
  // the epoch within the cycle of the step just taken (the data stream's epochs run on across cycles)
  const auto where = [&](int64_t) {
    const int64_t epoch = (std::max<int64_t>(position.step, 1) - 1) / batches;
    return single_cycle ? fmt::format("epoch {}/{}", epoch + 1, epochs_in_cycle)
                        : fmt::format("cycle {}/{} epoch {}/{}", position.cycle, config_.cycles_count - 1, epoch + 1,
                                      epochs_in_cycle);
  };
  // remaining time of the cycle and of the run at `seconds_per_step`
  const auto etas = [&](double seconds_per_step) {
    const auto cycle_left = static_cast<double>(cycle_iters - position.step);
    const auto run_left = cycle_left + static_cast<double>(steps_after_cycle(position.cycle));
    return fmt::format("ETA {} (cycle), {} (run)", format_duration(seconds_per_step * cycle_left),
                       format_duration(seconds_per_step * run_left));
  };
  while (position.step < cycle_iters) {
    run_pruners(&Pruner::acts_before_step, &Pruner::before_step, step_point(position), metrics);
    if (position.cycle == 0 && position.step == rewind_iteration) capture_rewind_point();
    const int64_t epoch = position.data_step / batches, batch_index = position.data_step % batches;
    const int64_t batch = train_loader_->fill_batch(epoch, batch_index, images, labels);
    const double lr = peak_scale * learning_rate_->lr(position.cycle, position.step);
    int64_t correct = 0;
    std::function<void()> after_backward;
    if (const StepPoint at = step_point(position); pruners_act(&Pruner::acts_after_backward, at))
      after_backward = [this, at, &metrics] {
        run_pruners(&Pruner::acts_after_backward, &Pruner::after_backward, at, metrics);
      };
    const auto step_start = std::chrono::steady_clock::now();
    const float loss = train_step(images, labels, batch, static_cast<float>(lr), &correct, after_backward);
    step_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
    if (!std::isfinite(loss))
      fail("training diverged: loss is {} at cycle {} step {} with lr {} (lower --lr)", loss, position.cycle,
           position.step + 1, lr);
    run_pruners(&Pruner::acts_after_step, &Pruner::after_step, step_point(position), metrics);
    ++position.step;
    ++position.data_step;
    ++position.global_step;
    window_images += batch;
    window_correct += correct;
    window_loss += loss;
    ++window_steps;
    epoch_images += batch;
    epoch_correct += correct;
    epoch_loss += loss;
    ++epoch_steps;
    const bool epoch_end = position.data_step % batches == 0;
    const bool cycle_end = position.step == cycle_iters;
    if (main_line && (position.global_step % log_every == 0 || cycle_end)) {
      const double window_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count();
      const double images_per_second = static_cast<double>(window_images) / std::max(window_seconds, 1e-9);
      const double eta = window_seconds / static_cast<double>(window_steps) *
                         static_cast<double>(cycle_iters - position.step);
      const double mean_loss = window_loss / static_cast<double>(window_steps);
      const double accuracy = static_cast<double>(window_correct) / static_cast<double>(window_images);
      if (mode == Progress::Steps) {
        fmt::print("{} step {}/{} loss {:.4f} acc {:.4f} lr {:.4g} {:.0f} img/s ETA {}\n", where(epoch), position.step,
                   cycle_iters, mean_loss, accuracy, lr, images_per_second, format_duration(eta));
        std::fflush(stdout);
      } else if (mode == Progress::Bar) {  // one line, redrawn in place; the cycle's end keeps it
        constexpr int kWidth = 24;
        const auto filled = static_cast<int>(kWidth * position.step / std::max<int64_t>(cycle_iters, 1));
        fmt::print("\r\x1b[2K{} [{}{}] loss {:.4f} acc {:.4f} {:.0f} img/s {}{}", where(epoch), std::string(filled, '#'),
                   std::string(kWidth - filled, '.'), mean_loss, accuracy, images_per_second,
                   etas(window_seconds / static_cast<double>(window_steps)), cycle_end ? "\n" : "");
        std::fflush(stdout);
      }
      metrics.write({{"event", "train"},
                     {"cycle", position.cycle},
                     {"epoch", epoch + 1},
                     {"step", position.global_step},
                     {"loss", mean_loss},
                     {"accuracy", accuracy},
                     {"lr", lr},
                     {"images_per_second", images_per_second}});
      window_start = std::chrono::steady_clock::now();
      window_images = window_correct = window_steps = 0;
      window_loss = 0.0;
    }
    // The line per epoch (the last epoch's too: its evaluation is the cycle's)
    std::string epoch_line;
    if (main_line && (epoch_end || cycle_end) && epoch_steps > 0) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
      epoch_line = fmt::format("{}: loss {:.4f} acc {:.4f}, {:.0f} img/s, {}", where(epoch),
                               epoch_loss / static_cast<double>(epoch_steps),
                               static_cast<double>(epoch_correct) / static_cast<double>(epoch_images),
                               static_cast<double>(epoch_images) / std::max(seconds, 1e-9),
                               etas(seconds / static_cast<double>(epoch_steps)));
      epoch_start = std::chrono::steady_clock::now();
      epoch_images = epoch_correct = epoch_steps = 0;
      epoch_loss = 0.0;
      if (mode == Progress::Epochs && !(single_cycle && epoch_end && !cycle_end)) {
        fmt::print("{}\n", epoch_line);
        std::fflush(stdout);
      }
    }
    if (main_line && epoch_end && score_history_) score_history_->on_epoch_end(*model_);
    if (!main_line || cycle_end) continue;
    if (single_cycle && epoch_end) {
      const EvalResult validation = evaluate(validation_), test = evaluate(test_);
      if (mode == Progress::Epochs) {
        fmt::print("{}; val acc {:.4f}, test acc {:.4f}\n", epoch_line, validation.accuracy, test.accuracy);
      } else if (mode == Progress::Bar || mode == Progress::Steps) {
        fmt::print("{}epoch {}/{} done: val acc {:.4f} (loss {:.4f}), test acc {:.4f} (loss {:.4f}), {} elapsed\n",
                   mode == Progress::Bar ? "\r\x1b[2K" : "", (position.step - 1) / batches + 1, epochs_in_cycle,
                   validation.accuracy, validation.loss, test.accuracy, test.loss, format_duration(elapsed()));
      }
      std::fflush(stdout);
      metrics.write({{"event", "eval"},
                     {"epoch", epoch + 1},
                     {"step", position.global_step},
                     {"val_accuracy", validation.accuracy},
                     {"val_loss", validation.loss},
                     {"test_accuracy", test.accuracy},
                     {"test_loss", test.loss}});
    }
    const bool periodic = config_.checkpoint_every > 0 && position.global_step % config_.checkpoint_every == 0;
    if (periodic || (config_.checkpoint_every == 0 && epoch_end)) {
      position.seconds = elapsed();
      save("last", position);
    }
  }
}

// The branches of one searched cycle: each restores the cycle's start, trains without checkpoints or
// progress lines and is evaluated; the chosen one's state (a snapshot) is restored at the end.
class Trainer::Branches final : public CycleBranches {
 public:
  Branches(Trainer& trainer, const Position& position, io::MetricsLog& metrics, bool quiet,
           std::filesystem::path run_dir)
      : trainer_(trainer),
        metrics_(metrics),
        quiet_(quiet),
        run_dir_(std::move(run_dir)),
        start_{position.cycle, 0, position.data_step, position.global_step, 0.0},
        at_start_(trainer.snapshot()) {}

  Score train(double max_lr) override {
    trainer_.restore(at_start_);
    branch_ = start_;
    trainer_.train_cycle(branch_, max_lr, false, metrics_);
    validation_ = trainer_.evaluate(trainer_.validation_);
    test_ = trainer_.evaluate(trainer_.test_);
    max_lr_ = max_lr;
    ++trained_;
    return {validation_.accuracy, test_.accuracy};
  }
  void choose_current() override {
    chosen_state_ = trainer_.snapshot();
    chosen_position_ = branch_;
    chosen_.validation = validation_;
    chosen_.test = test_;
    chosen_.max_lr = max_lr_;
    chosen_any_ = true;
  }
  void note(const std::string& line) override {
    if (!quiet_) fmt::print("{}\n", line);
    std::fflush(stdout);
  }
  void log(const nlohmann::json& event) override { metrics_.write(event); }
  void write_report(const std::string& file_name, const std::string& text) override {
    io::write_text_atomic(run_dir_ / file_name, text);
  }
  // Continues from the chosen branch: its state, position, accuracies and max_lr; returns the number of
  // branches trained.
  int64_t finish(Position& position, CycleResult& result) {
    ST_CHECK(chosen_any_, "cycle {}: the search chose no branch", start_.cycle);
    trainer_.restore(chosen_state_);
    position = chosen_position_;
    result.validation = chosen_.validation;
    result.test = chosen_.test;
    result.max_lr = chosen_.max_lr;
    return trained_;
  }

 private:
  Trainer& trainer_;
  io::MetricsLog& metrics_;
  bool quiet_;
  std::filesystem::path run_dir_;
  Position start_, branch_, chosen_position_;
  Snapshot at_start_, chosen_state_;
  EvalResult validation_, test_;
  double max_lr_ = 0.0;
  CycleResult chosen_;
  bool chosen_any_ = false;
  int64_t trained_ = 0;
};

TrainResult Trainer::run(bool resume) {
  namespace fs = std::filesystem;
  const fs::path run_dir(config_.run_dir);
  Position position;
  if (resume) {
    position = load(checkpoint_path("last"));
  } else {
    // (checked here, not in validate: a resumed run does not read the file again)
    if (!config_.init_from.empty() && !fs::is_regular_file(config_.init_from))
      fail("--init-from: {} is not a file (a sparsetrain checkpoint, e.g. RUN/checkpoints/final.safetensors)",
           config_.init_from);
    // Never lose an earlier run, nor a checkpoint written by `sparsetrain import` or `prune`: a directory
    // that holds checkpoints is refused unless --overwrite is given.
    if (fs::exists(checkpoint_path("last")) && !config_.overwrite)
      fail("--run-dir {}: already holds a run ({}); continue it with --resume {}, pass --overwrite, or choose "
           "another directory",
           run_dir.string(), checkpoint_path("last").string(), run_dir.string());
    if (fs::is_directory(run_dir / "checkpoints") && !fs::is_empty(run_dir / "checkpoints") && !config_.overwrite)
      fail("--run-dir {}: holds checkpoints ({}); pass --overwrite to start a run there anyway, or choose another "
           "directory",
           run_dir.string(), (run_dir / "checkpoints").string());
    // (read before the directory is cleared: the file may lie in it)
    if (!config_.init_from.empty()) init_from_checkpoint(config_.init_from);
    fs::create_directories(run_dir);
    fs::remove(run_dir / "metrics.jsonl");
    fs::remove(run_dir / "summary.csv");
    fs::remove(run_dir / "oracle.md");
    fs::remove(run_dir / "report.md");
    fs::remove_all(run_dir / "checkpoints");
  }
  seconds_before_ = position.seconds;
  clock_start_ = std::chrono::steady_clock::now();
  io::write_text_atomic(run_dir / "config.json", to_json(config_).dump(2) + "\n");
  io::MetricsLog metrics(run_dir / "metrics.jsonl", true);
  io::SummaryCsv summary(run_dir / "summary.csv",
                         {"cycle", "density", "max_lr", "val_accuracy", "test_accuracy", "seconds", "steps"}, true);
  const DeviceChoice& device = device_;
  const bool quiet = progress() == Progress::Quiet;
  if (!quiet)
    fmt::print("sparsetrain: {} on {} ({} train / {} validation / {} test images), device {}\n", config_.model,
               config_.dataset, train_.size(), validation_.size(), test_.size(), device.description);
  int64_t prunable = 0, total = 0;
  for (nn::Parameter* p : model_->parameters()) {
    total += p->numel();
    if (p->prunable()) prunable += p->numel();
  }
  if (!quiet)
    fmt::print("model: {} parameters, {} prunable, density {:.4f}; run directory {}\n", total, prunable,
               global_density(model_->parameters()), run_dir.string());
  if (config_.cycles_count > 1 && !quiet)
    fmt::print("{} cycles of {} iterations (dense): {}{}\n", config_.cycles_count, total_steps(),
               learning_rate_->describe(), cycle_search_ ? ", " + cycle_search_->describe() : "");
  if (resume) {
    if (!quiet)
      fmt::print("resuming at cycle {} step {} (step {} overall)\n", position.cycle, position.step,
                 position.global_step);
    metrics.write({{"event", "resume"}, {"cycle", position.cycle}, {"step", position.global_step}});
  } else {
    metrics.write({{"event", "start"}, {"config", to_json(config_)}, {"device", device.description}});
    save("last", position);
  }
  std::fflush(stdout);

  TrainResult result;
  for (int cycle = position.cycle; cycle < config_.cycles_count; ++cycle) {
    CycleResult cycle_result;
    cycle_result.cycle = cycle;
    cycle_result.density = global_density(model_->parameters());
    if (position.step == 0) {  // the network this cycle trains (a resumed mid-cycle run measured it already)
      const HostScope host(*this);
      metrics.write(measure_distributions(cycle));
      write_distribution_report(run_dir);
    }
    const int64_t steps_before = position.global_step;
    const double seconds_start = elapsed();
    step_seconds_ = 0.0;
    int64_t branch_count = 1;
    if (!cycle_search_) {
      cycle_result.max_lr = learning_rate_->max_lr(cycle);
      train_cycle(position, cycle_result.max_lr, true, metrics);
      cycle_result.validation = evaluate(validation_);
      cycle_result.test = evaluate(test_);
    } else {
      // A search (the oracle): branches of this cycle from the same state, one continues. A resumed
      // searched cycle restarts its branches from the cycle start.
      Branches branches(*this, position, metrics, quiet, run_dir);
      cycle_search_->search(branches, cycle, cycle_result.density);
      branch_count = branches.finish(position, cycle_result);
    }
    cycle_result.seconds = elapsed() - seconds_start;
    cycle_result.steps = position.global_step - steps_before;
    cycle_result.step_seconds = step_seconds_ / static_cast<double>(branch_count);
    result.cycles.push_back(cycle_result);
    const double ms_per_step =
        1e3 * cycle_result.step_seconds / static_cast<double>(std::max<int64_t>(cycle_result.steps, 1));
    if (config_.cycles_count > 1 && !quiet)
      fmt::print("cycle {} done: density {:.4f}, max_lr {:.4g}, val acc {:.4f}, test acc {:.4f}, {} parameters, "
                 "{:.1f} ms/step\n",
                 cycle, cycle_result.density, cycle_result.max_lr, cycle_result.validation.accuracy,
                 cycle_result.test.accuracy, model_->parameter_count(), ms_per_step);
    metrics.write({{"event", "cycle_end"},
                   {"cycle", cycle},
                   {"density", cycle_result.density},
                   {"max_lr", cycle_result.max_lr},
                   {"val_accuracy", cycle_result.validation.accuracy},
                   {"test_accuracy", cycle_result.test.accuracy},
                   {"parameters", model_->parameter_count()},
                   {"ms_per_step", ms_per_step},
                   {"step", position.global_step}});
    summary.write_row({std::to_string(cycle), fmt::format("{:.6f}", cycle_result.density),
                       fmt::format("{:.6g}", cycle_result.max_lr),
                       fmt::format("{:.4f}", cycle_result.validation.accuracy),
                       fmt::format("{:.4f}", cycle_result.test.accuracy), fmt::format("{:.1f}", cycle_result.seconds),
                       std::to_string(cycle_result.steps)});
    position.seconds = elapsed();
    if (cycle + 1 < config_.cycles_count) {
      prune_for_next_cycle(cycle + 1, metrics);
      position.cycle = cycle + 1;
      position.step = 0;
      save(fmt::format("cycle-{}", cycle + 1), position);  // the pruned (and rewound) network of each cycle
    }
    save("last", position);
    std::fflush(stdout);
  }
  if (result.cycles.empty()) {  // resumed a finished run: report its final state
    CycleResult last;
    last.cycle = position.cycle;
    last.density = global_density(model_->parameters());
    last.validation = evaluate(validation_);
    last.test = evaluate(test_);
    result.cycles.push_back(last);
  }
  result.validation = result.cycles.back().validation;
  result.test = result.cycles.back().test;
  result.steps = position.global_step;
  result.seconds = elapsed();
  save("final", position);
  metrics.write({{"event", "end"},
                 {"step", position.global_step},
                 {"val_accuracy", result.validation.accuracy},
                 {"test_accuracy", result.test.accuracy},
                 {"seconds", result.seconds}});
  if (config_.cycles_count > 1 && !quiet) {
    fmt::print("\n{:>5} {:>9} {:>9} {:>8} {:>8}\n", "cycle", "density", "max_lr", "val", "test");
    for (const CycleResult& c : result.cycles)
      fmt::print("{:>5} {:>9.4f} {:>9.4g} {:>8.4f} {:>8.4f}\n", c.cycle, c.density, c.max_lr, c.validation.accuracy,
                 c.test.accuracy);
  }
  fmt::print("final: test accuracy {:.4f}, validation accuracy {:.4f}, {} steps in {}\n", result.test.accuracy,
             result.validation.accuracy, result.steps, format_duration(result.seconds));
  return result;
}

double Trainer::elapsed() const {
  return seconds_before_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - clock_start_).count();
}

}  // namespace st
