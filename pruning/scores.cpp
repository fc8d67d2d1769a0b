#include "pruning/scores.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/error.h"
#include "engine/ops.h"
#include "pruning/prune.h"

namespace st::pruning {
namespace {

// Restores weights, BatchNorm statistics and the training mode when scoring is done.
class ModelGuard {
 public:
  explicit ModelGuard(nn::Module& model) : model_(model), training_(model.training()) {
    for (nn::Parameter* p : model.parameters()) weights_.push_back(p->value().clone());
    for (const nn::NamedBuffer& b : model.buffers()) buffers_.push_back(b.tensor->clone());
  }
  ~ModelGuard() {
    std::size_t i = 0;
    for (nn::Parameter* p : model_.parameters()) {
      p->value().copy_from(weights_[i++]);
      p->variable.zero_grad();
    }
    i = 0;
    for (const nn::NamedBuffer& b : model_.buffers()) b.tensor->copy_from(buffers_[i++]);
    model_.train(training_);
  }
  ModelGuard(const ModelGuard&) = delete;
  ModelGuard& operator=(const ModelGuard&) = delete;

 private:
  nn::Module& model_;
  bool training_;
  std::vector<Tensor> weights_, buffers_;
};

std::vector<Tensor> prunable_slice(nn::Module& model, const std::vector<Tensor>& all) {
  std::vector<Tensor> result;
  std::size_t i = 0;
  for (nn::Parameter* p : model.parameters()) {
    if (p->prunable()) result.push_back(all[i]);
    ++i;
  }
  return result;
}

// Per-element score from weight w and a companion tensor c (gradient or Hg).
template <typename F>
std::vector<Tensor> elementwise(nn::Module& model, const std::vector<Tensor>& companion, F f) {
  std::vector<Tensor> scores;
  const std::vector<Tensor> slice = prunable_slice(model, companion);
  std::size_t t = 0;
  for (nn::Parameter* p : prunable_of(model.parameters())) {
    Tensor s = Tensor::empty(p->value().shape());
    const float* w = p->value().data();
    const float* c = slice[t++].data();
    for (int64_t i = 0; i < s.numel(); ++i) s.data()[i] = f(w[i], c[i]);
    scores.push_back(s);
  }
  return scores;
}

double norm(const std::vector<Tensor>& tensors) {
  double sum = 0.0;
  for (const Tensor& t : tensors)
    for (int64_t i = 0; i < t.numel(); ++i) sum += static_cast<double>(t.data()[i]) * static_cast<double>(t.data()[i]);
  return std::sqrt(sum);
}

// Input / output unit counts of a prunable tensor: linear (out, in), conv (K, R, S, C).
int64_t in_units(const Shape& s) { return s.size() == 2 ? s[1] : s[3]; }
int64_t out_units(const Shape& s) { return s[0]; }

std::vector<Tensor> lap_scores(nn::Module& model) {
  const std::vector<nn::Parameter*> prunable = prunable_of(model.parameters());
  // row_norm[t][u]: norm of the weights producing output unit u of tensor t;
  // col_norm[t][u]: norm of the weights reading input unit u of tensor t.
  std::vector<std::vector<double>> row_norm(prunable.size()), col_norm(prunable.size());
  for (std::size_t t = 0; t < prunable.size(); ++t) {
    const Shape& s = prunable[t]->value().shape();
    const int64_t outs = out_units(s), ins = in_units(s), per_out = prunable[t]->numel() / outs;
    row_norm[t].assign(static_cast<std::size_t>(outs), 0.0);
    col_norm[t].assign(static_cast<std::size_t>(ins), 0.0);
    const float* w = prunable[t]->value().data();
    for (int64_t i = 0; i < prunable[t]->numel(); ++i) {
      const double sq = static_cast<double>(w[i]) * static_cast<double>(w[i]);
      row_norm[t][static_cast<std::size_t>(i / per_out)] += sq;
      col_norm[t][static_cast<std::size_t>(i % ins)] += sq;  // the input unit is the innermost index
    }
    for (auto& v : row_norm[t]) v = std::sqrt(v);
    for (auto& v : col_norm[t]) v = std::sqrt(v);
  }
  std::vector<Tensor> scores;
  for (std::size_t t = 0; t < prunable.size(); ++t) {
    const Shape& s = prunable[t]->value().shape();
    const int64_t outs = out_units(s), ins = in_units(s), per_out = prunable[t]->numel() / outs;
    const bool has_previous = t > 0 && out_units(prunable[t - 1]->value().shape()) == ins;
    const bool has_next = t + 1 < prunable.size() && in_units(prunable[t + 1]->value().shape()) == outs;
    Tensor score = Tensor::empty(s);
    const float* w = prunable[t]->value().data();
    for (int64_t i = 0; i < prunable[t]->numel(); ++i) {
      const auto in = static_cast<std::size_t>(i % ins), out = static_cast<std::size_t>(i / per_out);
      const double previous = has_previous ? row_norm[t - 1][in] : 1.0;
      const double next = has_next ? col_norm[t + 1][out] : 1.0;
      score.data()[i] = static_cast<float>(std::fabs(static_cast<double>(w[i])) * previous * next);
    }
    scores.push_back(score);
  }
  return scores;
}

std::vector<Tensor> synflow_scores(nn::Module& model, const ScoreData& data) {
  model.train(false);
  for (nn::Parameter* p : model.parameters()) {
    float* w = p->value().data();
    for (int64_t i = 0; i < p->numel(); ++i) w[i] = std::fabs(w[i]);
  }
  const LossFunction sum_of_outputs = [&] {
    Shape shape = data.sample_shape;
    const Variable out = model.forward(Variable(Tensor::full(shape, 1.0f)));
    // R = sum of outputs, as a linear map with unit weights: logits [1, classes] -> [1, 1]
    const int64_t classes = out.shape()[1];
    const Variable ones(Tensor::full({1, classes}, 1.0f), false);
    return ops::linear(out, ones, Variable());
  };
  const std::vector<Tensor> g = gradient(model, sum_of_outputs);
  return elementwise(model, g, [](float w, float c) { return std::fabs(w * c); });
}

}  // namespace

std::vector<Tensor> gradient(nn::Module& model, const LossFunction& loss) {
  const std::vector<nn::Parameter*> parameters = model.parameters();
  for (nn::Parameter* p : parameters) p->variable.zero_grad();
  Tape tape;
  Variable value;
  {
    TapeScope scope(tape);
    value = loss();
  }
  tape.backward(value);
  std::vector<Tensor> grads;
  for (nn::Parameter* p : parameters) grads.push_back(p->grad().clone());
  return grads;
}

std::vector<Tensor> hessian_vector_product(nn::Module& model, const LossFunction& loss, const std::vector<Tensor>& v,
                                           double hvp_step) {
  const std::vector<nn::Parameter*> parameters = model.parameters();
  ST_CHECK(v.size() == parameters.size(), "hvp: {} direction tensors for {} parameters", v.size(), parameters.size());
  const double v_norm = norm(v);
  std::vector<Tensor> result;
  for (const Tensor& t : v) result.push_back(Tensor::zeros(t.shape()));
  if (v_norm == 0.0) return result;
  const double h = hvp_step / v_norm;
  std::vector<Tensor> original;
  for (nn::Parameter* p : parameters) original.push_back(p->value().clone());
  auto shifted_gradient = [&](double sign) {
    for (std::size_t i = 0; i < parameters.size(); ++i) {
      float* w = parameters[i]->value().data();
      const float* base = original[i].data();
      const float* d = v[i].data();
      for (int64_t j = 0; j < v[i].numel(); ++j) w[j] = static_cast<float>(base[j] + sign * h * d[j]);
    }
    return gradient(model, loss);
  };
  const std::vector<Tensor> plus = shifted_gradient(1.0), minus = shifted_gradient(-1.0);
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    parameters[i]->value().copy_from(original[i]);
    for (int64_t j = 0; j < result[i].numel(); ++j)
      result[i].data()[j] = static_cast<float>((static_cast<double>(plus[i].data()[j]) - minus[i].data()[j]) / (2 * h));
  }
  return result;
}

std::vector<Tensor> compute_scores(nn::Module& model, const ScoreOptions& o, const ScoreData& data, Rng& rng,
                                   ScoreHistory* history) {
  const ScoreMethod* method = find_score(o.name);
  if (method == nullptr) fail("--prune-score: unknown score '{}' (known: {})", o.name, score_names());
  if (o.batches < 1) fail("--score-batches: must be at least 1, got {}", o.batches);
  if (method->make_history && history == nullptr)
    fail("--prune-score {}: this score needs the history of training (it cannot score pruning at initialisation "
         "or a checkpoint alone)",
         o.name);
  return method->compute(model, o, data, rng, history);
}

std::vector<Tensor> builtin_scores(nn::Module& model, const ScoreOptions& o, const ScoreData& data, Rng& rng) {
  if (o.name == "magnitude" || o.name == "random") {
    std::vector<Tensor> scores;
    for (nn::Parameter* p : prunable_of(model.parameters())) {
      Tensor s = Tensor::empty(p->value().shape());
      for (int64_t i = 0; i < s.numel(); ++i)
        s.data()[i] = o.name == "random" ? rng.uniform() : std::fabs(p->value().data()[i]);
      scores.push_back(s);
    }
    return scores;
  }
  if (o.name == "lap") return lap_scores(model);
  ModelGuard guard(model);
  if (o.name == "synflow") return synflow_scores(model, data);

  // Gradient scores: g averaged over the minibatches; GraSP on a class-balanced batch at temperature T.
  model.train(true);
  std::vector<std::pair<Tensor, std::vector<int32_t>>> batches;
  if (o.name == "grasp") {
    batches.emplace_back();
    data.balanced_batch(o.grasp_per_class, batches.back().first, batches.back().second);
  } else {
    for (int64_t b = 0; b < o.batches; ++b) {
      batches.emplace_back();
      data.batch(b, batches.back().first, batches.back().second);
    }
  }
  const float inverse_temperature = o.name == "grasp" ? 1.0f / o.grasp_temperature : 1.0f;
  // BatchNorm statistics are restored before every evaluation, so all gradients see the same state.
  std::vector<Tensor> buffers;
  for (const nn::NamedBuffer& b : model.buffers()) buffers.push_back(b.tensor->clone());
  const LossFunction loss = [&] {
    std::size_t i = 0;
    for (const nn::NamedBuffer& b : model.buffers()) b.tensor->copy_from(buffers[i++]);
    Variable total;
    for (const auto& [images, labels] : batches) {
      Variable logits = model.forward(Variable(images));
      if (inverse_temperature != 1.0f) logits = ops::scale(logits, inverse_temperature);
      Variable l = ops::scale(ops::softmax_cross_entropy(logits, labels), 1.0f / static_cast<float>(batches.size()));
      total = total.defined() ? ops::add(total, l) : l;
    }
    return total;
  };
  const std::vector<Tensor> g = gradient(model, loss);
  if (o.name == "snip") return elementwise(model, g, [](float w, float c) { return std::fabs(w * c); });
  if (o.name == "lp_biased") return elementwise(model, g, [](float w, float c) { return std::fabs(w * w * c); });
  if (o.name == "wg") return elementwise(model, g, [](float w, float c) { return w * c; });
  const std::vector<Tensor> hg = hessian_vector_product(model, loss, g, o.hvp_step);
  if (o.name == "abs_hg") return elementwise(model, hg, [](float w, float c) { return std::fabs(w * c); });
  return elementwise(model, hg, [](float w, float c) { return w * c; });  // grasp (keep -S) and hg
}

}  // namespace st::pruning
