#include "engine/train_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <set>

#include "engine/error.h"
#include "engine/plugins.h"

namespace st {

// ---- the engine's own options ------------------------------------------------------------------

namespace {

void validate_run(const TrainConfig& c) {
  plugins().model_image_size(c.model);  // an unknown model is an error naming --model
  if (c.image_size < 1 || c.image_size > 4096) fail("--image-size: must be in [1, 4096] pixels, got {}", c.image_size);
  if (c.max_images < 1) fail("--max-images: must be at least 1, got {}", c.max_images);
  if (c.epochs <= 0) fail("--epochs: must be a positive number of epochs, got {}", c.epochs);
  if (c.batch_size <= 0) fail("--batch: must be a positive batch size, got {}", c.batch_size);
  if (c.label_smoothing < 0.0f || c.label_smoothing >= 1.0f)
    fail("--label-smoothing: must be in [0, 1), got {}", c.label_smoothing);
  if (c.val_size < 0) fail("--val-size: must be >= 0, got {}", c.val_size);
  if (c.train_limit < 0) fail("--train-limit: must be >= 0, got {}", c.train_limit);
  if (c.threads < 0) fail("--threads: must be >= 0, got {}", c.threads);
  if (c.checkpoint_every < 0) fail("--checkpoint-every: must be >= 0 steps, got {}", c.checkpoint_every);
  if (c.log_every < 0) fail("--log-every: must be >= 0 steps, got {}", c.log_every);
  if (c.iters_per_cycle < 0) fail("--iters: must be >= 0, got {}", c.iters_per_cycle);
  if (c.cycles_count < 1) fail("--cycles: must be at least 1 (cycle 0 is dense training), got {}", c.cycles_count);
  if (c.run_dir.empty()) fail("--run-dir: must not be empty");
  make_optimizer(c.optimizer, {});  // validates the optimizer flags
}

Component run_component() {
  using C = TrainConfig;
  Component c;
  c.name = "run";
  c.title = "Run";
  c.options = {
      option<C>("model", &C::model, "model name (see `sparsetrain models`)"),
      option<C>("data", &C::dataset, "dataset", {"fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder"}),
      option<C>("data-dir", &C::data_dir,
                "dataset directory (default: /usr/share/datasets/fashion-mnist, data/<name>); imagefolder: ROOT with "
                "train/<class>/ and val/ (ImageNet or Tiny-ImageNet)"),
      option<C>("image-size", &C::image_size, "imagefolder: shorter side resized to N, then center-cropped to N x N"),
      option<C>("max-images", &C::max_images,
                "imagefolder: refuse a split with more images (held in memory as N x size x size x 3 bytes)"),
      option<C>("epochs", &C::epochs, "training epochs (of a dense cycle)"),
      option<C>("batch", &C::batch_size, "batch size"),
      option<C>("iters", &C::iters_per_cycle, "iterations of a dense cycle; 0 = epochs x batches per epoch"),
      option<C>("cycles", &C::cycles_count, "training cycles: 1 = dense; K + 1 = dense + K pruning cycles (IMP)"),
      option<C>("optimizer", [](C& t) -> std::string& { return t.optimizer.name; }, "optimizer",
                {"sgd", "adam", "adamw", "rmsprop"}),
      option<C>(
          "momentum", [](C& t) -> float& { return t.optimizer.momentum; }, "momentum (sgd, rmsprop)"),
      option<C>(
          "dampening", [](C& t) -> float& { return t.optimizer.dampening; }, "momentum dampening (sgd)"),
      option<C>(
          "nesterov", [](C& t) -> bool& { return t.optimizer.nesterov; }, "Nesterov momentum (sgd)"),
      option<C>(
          "weight-decay", [](C& t) -> float& { return t.optimizer.weight_decay; },
          "L2 weight decay (decoupled for adamw)"),
      option<C>(
          "beta1", [](C& t) -> float& { return t.optimizer.beta1; }, "Adam beta1"),
      option<C>(
          "beta2", [](C& t) -> float& { return t.optimizer.beta2; }, "Adam beta2"),
      option<C>(
          "eps", [](C& t) -> float& { return t.optimizer.eps; }, "Adam / RMSProp epsilon"),
      option<C>(
          "alpha", [](C& t) -> float& { return t.optimizer.alpha; }, "RMSProp smoothing constant"),
      option<C>("label-smoothing", &C::label_smoothing, "label smoothing of the cross-entropy"),
      option<C>("val-size", &C::val_size, "training images held out for validation"),
      option<C>("train-limit", &C::train_limit, "use only the first N training images (0 = all)"),
      option<C>("augment", &C::augment, "random crop (pad 4) and horizontal flip"),
      option<C>("seed", &C::seed, "random seed (init, data order, masks)"),
      option<C>("device", &C::device, "auto: cuda when a GPU is usable", {"auto", "cpu", "cuda"}),
      option<C>("sparse-kernels", &C::sparse_kernels,
                "cpu: masked linear and conv layers run sparse kernels (auto: the faster, timed per layer at each "
                "mask change)",
                {"off", "on", "auto"}),
      option<C>("kernels", &C::kernels,
                "cuda: our kernels or the vendor's (cuDNN/cuBLAS for convolution, linear, BatchNorm)",
                {"ours", "vendor"}),
      option<C>("tf32", &C::tf32, "cuda: TF32 tensor cores in convolution and GEMM (on | off)"),
      option<C>("threads", &C::threads, "CPU threads (0 = all cores)"),
      option<C>("run-dir", &C::run_dir, "run directory (config, metrics, checkpoints)"),
      option<C>("overwrite", &C::overwrite, "start afresh in a run directory that holds an earlier run"),
      option<C>("init-from", &C::init_from,
                "start from the weights, masks and BatchNorm statistics of this checkpoint of the same model (e.g. "
                "one written by `sparsetrain prune`)"),
      option<C>("checkpoint-every", &C::checkpoint_every, "steps between checkpoints (0 = every epoch end)"),
      option<C>("log-every", &C::log_every,
                "steps between progress lines and metrics.jsonl train events (0 = 5 per epoch)"),
      option<C>("progress", &C::progress,
                "console output: auto = a bar on a terminal, else a line per epoch; steps = every --log-every steps",
                {"auto", "bar", "epochs", "steps", "cycles", "quiet"}),
  };
  for (Option& o : c.options) {
    o.transient = o.key == "overwrite";
    o.takes_value = o.key == "tf32";
  }
  c.validate = validate_run;
  return c;
}

std::vector<Component>& registry() {
  static std::vector<Component> entries = {run_component()};
  return entries;
}

}  // namespace

void register_component(Component component) {
  for (Component& c : registry())
    if (c.name == component.name) {
      c = std::move(component);
      return;
    }
  registry().push_back(std::move(component));
}

const std::vector<Component>& components() { return registry(); }

std::vector<const Option*> all_options() {
  std::vector<const Option*> out;
  for (const Component& c : components())
    for (const Option& o : c.options) out.push_back(&o);
  return out;
}

const Option* find_option(const std::string& key) {
  for (const Option* o : all_options())
    if (o->key == key) return o;
  return nullptr;
}

// ---- values ------------------------------------------------------------------------------------

namespace {

// ref() hands out a field's address, making a block absent from the config: readers use a copy of theirs.
nlohmann::json value_of(const Option& option, TrainConfig& copy) {
  return std::visit([](auto* value) { return nlohmann::json(*value); }, option.ref(copy));
}

std::string text_of(const Option& option, TrainConfig& copy) {
  return std::visit(
      [](auto* value) -> std::string {
        using T = std::remove_pointer_t<decltype(value)>;
        if constexpr (std::is_same_v<T, bool>) {
          return *value ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::string>) {
          return *value;
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<double>>) {
          return fmt::format("{}", fmt::join(*value, ","));
        } else {
          return fmt::format("{}", *value);
        }
      },
      option.ref(copy));
}

}  // namespace

nlohmann::json option_value(const Option& option, const TrainConfig& config) {
  TrainConfig copy = config;
  return value_of(option, copy);
}

void set_option(const Option& option, TrainConfig& config, const nlohmann::json& value) {
  const OptionRef ref = option.ref(config);
  std::visit(
      [&](auto* field) {
        using T = std::remove_pointer_t<decltype(field)>;
        try {
          bool ok = true;
          if constexpr (std::is_same_v<T, bool>) {
            ok = value.is_boolean();
          } else if constexpr (std::is_same_v<T, std::string>) {
            ok = value.is_string();
          } else if constexpr (std::is_integral_v<T>) {
            ok = value.is_number_integer() &&
                 (!std::is_unsigned_v<T> || value.get<int64_t>() >= 0 || value.is_number_unsigned());
          } else if constexpr (std::is_floating_point_v<T>) {
            ok = value.is_number();
          } else {
            ok = value.is_array();
          }
          if (!ok) fail("config: key '{}' has a value of the wrong type: {}", option.key, value.dump());
          *field = value.get<T>();
        } catch (const nlohmann::json::exception& e) {
          fail("config: key '{}': {}", option.key, e.what());
        }
      },
      ref);
}

std::string option_text(const Option& option, const TrainConfig& config) {
  TrainConfig copy = config;
  return text_of(option, copy);
}

// ---- config.json -------------------------------------------------------------------------------

nlohmann::json to_json(const TrainConfig& config) {
  TrainConfig copy = config;
  nlohmann::json j = nlohmann::json::object();
  for (const Option* o : all_options())
    if (!o->transient) j[o->key] = value_of(*o, copy);
  return j;
}

namespace {

// Runs made before the option tables saved nested, underscored names; their keys in today's spelling.
nlohmann::json flatten_legacy(const nlohmann::json& j) {
  static const std::map<std::string, std::string> renamed = {
      {"dataset", "data"},
      {"batch_size", "batch"},
      {"iters_per_cycle", "iters"},
      {"cycles_count", "cycles"},
      {"init_score", "prune-at-init"},
      {"schedule.shape", "schedule"},
      {"schedule.max_lr", "lr"},
      {"cycles.kind", "cycle-policy"},
      {"prune.score", "prune-score"},
      {"prune.allocation", "prune-allocation"},
      {"select.method", "select"},
      {"structured.fraction", "structured-prune"},
      {"structured.score", "structured-score"},
      {"dst.method", "dst"},
      {"dst.end_fraction", "dst-end"},
      {"gmp.start_iter", "gmp-start"},
      {"gmp.interval_iters", "gmp-interval"},
      {"optimizer.name", "optimizer"},
  };
  // groups whose fields keep their own name (cycles.silo_alpha -> silo-alpha) or take the group's
  // (select.tolerance -> select-tolerance)
  static const std::set<std::string> own_names = {"schedule", "cycles", "prune", "optimizer"};
  nlohmann::json flat = nlohmann::json::object();
  // runs made before --select-target existed measured the tolerance against the trained network
  if (j.contains("select") && j.at("select").is_object() && !j.at("select").contains("target"))
    flat["select-target"] = "original";
  const auto dashed = [](std::string name) {
    for (char& ch : name)
      if (ch == '_') ch = '-';
    return name;
  };
  for (const auto& [key, value] : j.items()) {
    if (value.is_object()) {
      for (const auto& [field, inner] : value.items()) {
        const std::string path = key + "." + field;
        const auto it = renamed.find(path);
        flat[it != renamed.end()        ? it->second
             : own_names.count(key) > 0 ? dashed(field)
                                        : dashed(key + "_" + field)] = inner;
      }
      continue;
    }
    const auto it = renamed.find(key);
    flat[it != renamed.end() ? it->second : dashed(key)] = value;
  }
  return flat;
}

}  // namespace

TrainConfig train_config_from_json(const nlohmann::json& json) {
  if (!json.is_object()) fail("config: expected a JSON object, got {}", json.type_name());
  bool legacy = false;
  for (const auto& item : json.items()) legacy = legacy || item.value().is_object();
  const nlohmann::json j = legacy ? flatten_legacy(json) : json;
  TrainConfig c;
  for (const auto& [key, value] : j.items()) {
    const Option* o = find_option(key);
    if (o == nullptr) fail("config: unknown key '{}' (a key of no option of this sparsetrain)", key);
    set_option(*o, c, value);
  }
  // an option absent from the file is one added after the run was made: the run ran with its default
  return c;
}

void validate(const TrainConfig& config) {
  TrainConfig copy = config;
  for (const Option* o : all_options()) {
    if (o->choices.empty()) continue;
    const std::string value = text_of(*o, copy);
    bool known = false;
    for (const std::string& choice : o->choices) known = known || choice == value;
    if (known) continue;
    std::vector<std::string> named;
    for (const std::string& choice : o->choices)
      if (!choice.empty()) named.push_back(choice);
    std::string listed = named.back();
    if (named.size() > 1)
      listed = fmt::format("{} or {}", fmt::join(named.begin(), named.end() - 1, ", "), named.back());
    fail("--{}: expected {}{}, got '{}'", o->key, listed, named.size() < o->choices.size() ? " (or nothing)" : "",
         value);
  }
  for (const Component& c : components())
    if (c.validate) c.validate(config);
}

std::string default_data_dir(const std::string& dataset) {
  if (dataset == "fashion-mnist") return "/usr/share/datasets/fashion-mnist";
  return "data/" + dataset;
}

}  // namespace st
