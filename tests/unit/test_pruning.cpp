// Pruning scores and allocations on small hand-computed cases (../shared/spec/pruning.md).
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <set>

#include "engine/error.h"
#include "engine/nn.h"
#include "pruning/allocation.h"
#include "pruning/dynamic.h"
#include "pruning/prune.h"
#include "pruning/scores.h"
#include "schedules/sparsity.h"

using namespace st;
using namespace st::pruning;

namespace {

// An MLP of bias-free linear layers with given sizes and ReLU between them.
std::unique_ptr<nn::Sequential> mlp(const std::vector<int64_t>& sizes, Rng& rng) {
  auto net = std::make_unique<nn::Sequential>();
  for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
    if (i > 0) net->add(std::make_unique<nn::ReLU>());
    net->add(std::make_unique<nn::Linear>(sizes[i], sizes[i + 1], false, rng));
  }
  return net;
}

void set_values(nn::Parameter* p, const std::vector<float>& values) {
  REQUIRE(static_cast<int64_t>(values.size()) == p->numel());
  std::copy(values.begin(), values.end(), p->value().data());
}

// Softmax of logits in double.
std::vector<double> softmax(const std::vector<double>& z) {
  double m = *std::max_element(z.begin(), z.end()), sum = 0.0;
  std::vector<double> p(z.size());
  for (std::size_t i = 0; i < z.size(); ++i) sum += (p[i] = std::exp(z[i] - m));
  for (double& v : p) v /= sum;
  return p;
}

struct OneSample {
  std::vector<float> x;
  int32_t label;
  ScoreData data() const {
    ScoreData d;
    const auto fill = [this](Tensor& images, std::vector<int32_t>& labels) {
      images = Tensor::from_vector({1, static_cast<int64_t>(x.size())}, x);
      labels = {label};
    };
    d.batch = [fill](int64_t, Tensor& images, std::vector<int32_t>& labels) { fill(images, labels); };
    d.balanced_batch = [fill](int64_t, Tensor& images, std::vector<int32_t>& labels) { fill(images, labels); };
    d.sample_shape = {1, static_cast<int64_t>(x.size())};
    return d;
  }
};

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("the score registry: unique names, every score one tensor per prunable tensor, unknown names refused") {
    std::set<std::string> names;
    for (const ScoreMethod& method : score_methods()) {
      CHECK(names.insert(method.name).second);
      CHECK(!method.help.empty());
      CHECK(is_known_score(method.name));
      CHECK(score_needs_data(method.name) == method.needs_data);
    }
    CHECK(names.count("magnitude") == 1);
    CHECK(score_names().rfind("magnitude, random, ", 0) == 0);
    Rng rng(2);
    auto net = mlp({3, 4, 2}, rng);
    const OneSample sample{{0.5f, -1.0f, 2.0f}, 1};
    for (const ScoreMethod& method : score_methods()) {
      if (method.make_history) continue;  // scores of training history have their own tests
      INFO(method.name);
      ScoreOptions options;
      options.name = method.name;
      const auto scores = compute_scores(*net, options, sample.data(), rng);
      REQUIRE(scores.size() == 2);
      CHECK(scores[0].shape() == Shape{4, 3});
      CHECK(scores[1].shape() == Shape{2, 4});
    }
    ScoreOptions unknown;
    unknown.name = "loudness";
    CHECK_THROWS_WITH_AS(compute_scores(*net, unknown, sample.data(), rng),
                         doctest::Contains("unknown score 'loudness' (known: magnitude, random, "), Error);
  }

  TEST_CASE("movement |w_T - w_(T-1 epoch)|: the last epoch's change at an epoch's end, the change since it inside one") {
    Rng rng(3);
    auto net = mlp({2, 2}, rng);
    nn::Parameter* w = net->parameters()[0];
    const OneSample sample{{1.0f, 2.0f}, 0};
    ScoreOptions options;
    options.name = "movement";
    CHECK_THROWS_WITH_AS(compute_scores(*net, options, sample.data(), rng), doctest::Contains("history of training"),
                         Error);
    std::unique_ptr<ScoreHistory> history = make_score_history("movement", *net);
    REQUIRE(history != nullptr);
    CHECK(make_score_history("magnitude", *net) == nullptr);
    set_values(w, {1.0f, 2.0f, 3.0f, 4.0f});
    history->on_epoch_end(*net);  // epoch 1
    CHECK_THROWS_WITH_AS(compute_scores(*net, options, sample.data(), rng, history.get()),
                         doctest::Contains("no epoch before it"), Error);
    set_values(w, {1.5f, 2.0f, 1.0f, 4.25f});
    history->on_epoch_end(*net);  // epoch 2: scored now, the change over epoch 2
    CHECK(compute_scores(*net, options, sample.data(), rng, history.get())[0].to_vector() ==
          std::vector<float>{0.5f, 0.0f, 2.0f, 0.25f});
    set_values(w, {1.5f, 3.0f, 1.0f, 4.0f});  // inside epoch 3 (gradual pruning): the change since epoch 2's end
    CHECK(compute_scores(*net, options, sample.data(), rng, history.get())[0].to_vector() ==
          std::vector<float>{0.0f, 1.0f, 0.0f, 0.25f});
    // the history is its state: restored into a fresh one, it scores the same
    std::unique_ptr<ScoreHistory> restored = make_score_history("movement", *net);
    const auto from = history->state(), to = restored->state();
    REQUIRE(from.size() == to.size());
    for (std::size_t i = 0; i < from.size(); ++i) to[i]->copy_from(*from[i]);
    CHECK(compute_scores(*net, options, sample.data(), rng, restored.get())[0].to_vector() ==
          std::vector<float>{0.0f, 1.0f, 0.0f, 0.25f});
  }

  TEST_CASE("movement_magnitude |w_T - w_(T-1 epoch)| |w_T| (the SILO authors' VGG-19 score)") {
    Rng rng(3);
    auto net = mlp({2, 2}, rng);
    nn::Parameter* w = net->parameters()[0];
    const OneSample sample{{1.0f, 2.0f}, 0};
    ScoreOptions options;
    options.name = "movement_magnitude";
    std::unique_ptr<ScoreHistory> history = make_score_history("movement_magnitude", *net);
    REQUIRE(history != nullptr);
    set_values(w, {1.0f, 2.0f, 3.0f, 4.0f});
    history->on_epoch_end(*net);
    set_values(w, {1.5f, 2.0f, -1.0f, 4.25f});
    history->on_epoch_end(*net);
    // |dw| |w|: 0.5 * 1.5, 0, 4 * 1, 0.25 * 4.25: a weight that moved little but is large can outrank one that
    // moved more (here the last against the first)
    CHECK(compute_scores(*net, options, sample.data(), rng, history.get())[0].to_vector() ==
          std::vector<float>{0.75f, 0.0f, 4.0f, 1.0625f});
  }

  TEST_CASE("magnitude and random scores") {
    Rng rng(1);
    auto net = mlp({3, 2}, rng);
    nn::Parameter* w = net->parameters()[0];
    set_values(w, {0.5f, -2.0f, 0.0f, 1.5f, -0.25f, 3.0f});
    ScoreOptions options;
    const auto magnitude = compute_scores(*net, options, {}, rng);
    CHECK(magnitude[0].to_vector() == std::vector<float>{0.5f, 2.0f, 0.0f, 1.5f, 0.25f, 3.0f});
    options.name = "random";
    Rng a(7), b(7);
    const auto random_a = compute_scores(*net, options, {}, a), random_b = compute_scores(*net, options, {}, b);
    CHECK(random_a[0].to_vector() == random_b[0].to_vector());
    for (float v : random_a[0].to_vector()) CHECK((v >= 0.0f && v < 1.0f));
  }

  TEST_CASE("SNIP |w g| and biased loss preservation |w^2 g| against the analytic gradient") {
    Rng rng(2);
    auto net = mlp({3, 2}, rng);
    nn::Parameter* w = net->parameters()[0];
    const std::vector<float> weights = {0.3f, -0.2f, 0.5f, -0.4f, 0.1f, 0.6f};
    set_values(w, weights);
    const OneSample sample{{1.0f, -2.0f, 0.5f}, 1};
    // logits z = W x, p = softmax(z), dL/dW[c, j] = (p_c - y_c) x_j
    std::vector<double> z(2, 0.0);
    for (int c = 0; c < 2; ++c)
      for (int j = 0; j < 3; ++j) z[c] += weights[c * 3 + j] * sample.x[j];
    const auto p = softmax(z);
    ScoreOptions options;
    options.name = "snip";
    const auto snip = compute_scores(*net, options, sample.data(), rng);
    options.name = "lp_biased";
    const auto biased = compute_scores(*net, options, sample.data(), rng);
    for (int c = 0; c < 2; ++c)
      for (int j = 0; j < 3; ++j) {
        const double g = (p[c] - (c == 1 ? 1.0 : 0.0)) * sample.x[j], wv = weights[c * 3 + j];
        CHECK(snip[0].data()[c * 3 + j] == doctest::Approx(std::fabs(wv * g)).epsilon(1e-5));
        CHECK(biased[0].data()[c * 3 + j] == doctest::Approx(std::fabs(wv * wv * g)).epsilon(1e-5));
      }
    CHECK(w->value().to_vector() == weights);  // scoring leaves the model unchanged
  }

  TEST_CASE("GraSP, Hg and |Hg| against the analytic Hessian-vector product") {
    Rng rng(3);
    auto net = mlp({3, 3}, rng);
    nn::Parameter* w = net->parameters()[0];
    const std::vector<float> weights = {0.5f, -0.3f, 0.8f, -0.6f, 0.2f, 0.4f, 0.1f, 0.7f, -0.5f};
    set_values(w, weights);
    const OneSample sample{{1.5f, -1.0f, 2.0f}, 2};
    // For L = CE(W x / T): g = (p - y) x^T / T and H v = ((diag p - p p^T) (V x)) x^T / T^2.
    auto expected_hg = [&](double temperature) {
      std::vector<double> z(3, 0.0);
      for (int c = 0; c < 3; ++c)
        for (int j = 0; j < 3; ++j) z[c] += weights[c * 3 + j] * sample.x[j] / temperature;
      const auto p = softmax(z);
      std::vector<double> g(9), gx(3, 0.0), hg(9);
      for (int c = 0; c < 3; ++c)
        for (int j = 0; j < 3; ++j) g[c * 3 + j] = (p[c] - (c == 2 ? 1.0 : 0.0)) * sample.x[j] / temperature;
      for (int c = 0; c < 3; ++c)
        for (int j = 0; j < 3; ++j) gx[c] += g[c * 3 + j] * sample.x[j];
      double p_dot = 0.0;
      for (int c = 0; c < 3; ++c) p_dot += p[c] * gx[c];
      for (int c = 0; c < 3; ++c)
        for (int j = 0; j < 3; ++j)
          hg[c * 3 + j] = (p[c] * gx[c] - p[c] * p_dot) * sample.x[j] / (temperature * temperature);
      return hg;
    };
    ScoreOptions options;
    for (const std::string name : {"grasp", "hg", "abs_hg"}) {
      options.name = name;
      options.grasp_temperature = 4.0f;  // a small T keeps the float finite difference well conditioned here
      const auto scores = compute_scores(*net, options, sample.data(), rng);
      const auto hg = expected_hg(name == "grasp" ? 4.0 : 1.0);
      double scale = 0.0;
      for (int i = 0; i < 9; ++i) scale = std::max(scale, std::fabs(weights[i] * hg[i]));
      for (int i = 0; i < 9; ++i) {
        const double expected = name == "abs_hg" ? std::fabs(weights[i] * hg[i]) : weights[i] * hg[i];
        INFO(name << " element " << i);
        CHECK(std::fabs(scores[0].data()[i] - expected) < 2e-2 * scale);
      }
    }
  }

  TEST_CASE("SynFlow on a two-layer network") {
    Rng rng(4);
    auto net = mlp({3, 2, 2}, rng);
    const auto parameters = net->parameters();
    const std::vector<float> w1 = {0.5f, -1.0f, 2.0f, -0.5f, 0.25f, 1.0f}, w2 = {1.0f, -2.0f, 0.5f, 0.5f};
    set_values(parameters[0], w1);
    set_values(parameters[1], w2);
    ScoreOptions options;
    options.name = "synflow";
    ScoreData data;
    data.sample_shape = {1, 3};
    const auto scores = compute_scores(*net, options, data, rng);
    // h_i = sum_j |W1[i, j]|; dR/dW1[i, j] = sum_k |W2[k, i]|; dR/dW2[k, i] = h_i
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) {
        const double column = std::fabs(w2[0 * 2 + i]) + std::fabs(w2[1 * 2 + i]);
        CHECK(scores[0].data()[i * 3 + j] == doctest::Approx(std::fabs(w1[i * 3 + j]) * column));
      }
    for (int k = 0; k < 2; ++k)
      for (int i = 0; i < 2; ++i) {
        const double h = std::fabs(w1[i * 3]) + std::fabs(w1[i * 3 + 1]) + std::fabs(w1[i * 3 + 2]);
        CHECK(scores[1].data()[k * 2 + i] == doctest::Approx(std::fabs(w2[k * 2 + i]) * h));
      }
    CHECK(parameters[0]->value().to_vector() == w1);  // signs restored
  }

  TEST_CASE("lookahead pruning (LAP) on three linear layers") {
    Rng rng(5);
    auto net = mlp({2, 2, 2, 1}, rng);
    const auto p = net->parameters();
    set_values(p[0], {1.0f, 2.0f, 3.0f, 4.0f});   // [2 out, 2 in]
    set_values(p[1], {0.5f, -1.0f, 2.0f, 1.0f});  // [2, 2]
    set_values(p[2], {3.0f, -4.0f});              // [1, 2]
    ScoreOptions options;
    options.name = "lap";
    const auto s = compute_scores(*net, options, {}, rng);
    // middle layer, weight (out o, in i): |w| * ||W1[i, :]|| * ||W3[:, o]||
    const double row0 = std::sqrt(1 + 4), row1 = std::sqrt(9 + 16);
    CHECK(s[1].data()[0] == doctest::Approx(0.5 * row0 * 3.0));
    CHECK(s[1].data()[1] == doctest::Approx(1.0 * row1 * 3.0));
    CHECK(s[1].data()[2] == doctest::Approx(2.0 * row0 * 4.0));
    CHECK(s[1].data()[3] == doctest::Approx(1.0 * row1 * 4.0));
    // first layer: no previous layer (1); next = column o of W2
    CHECK(s[0].data()[0] == doctest::Approx(1.0 * std::sqrt(0.25 + 4.0)));
    CHECK(s[0].data()[3] == doctest::Approx(4.0 * std::sqrt(1.0 + 1.0)));
    // last layer: previous = row i of W2, no next layer
    CHECK(s[2].data()[1] == doctest::Approx(4.0 * std::sqrt(4.0 + 1.0)));
  }

  TEST_CASE("global and layerwise allocation keep exact counts, lowest scores first, ties by index") {
    Rng rng(6);
    auto net = mlp({4, 2, 2}, rng);
    const auto p = net->parameters();
    set_values(p[0], {1, 2, 3, 4, 5, 6, 7, 8});
    set_values(p[1], {0.5f, 10, 2.5f, 2.5f});
    PruneSpec spec;
    spec.rate = 0.25;  // of 12 kept: remove 3
    auto changes = prune_fraction(p, compute_scores(*net, ScoreOptions{}, {}, rng), spec);
    CHECK(p[0]->mask.to_vector() == std::vector<float>{0, 0, 1, 1, 1, 1, 1, 1});
    CHECK(p[1]->mask.to_vector() == std::vector<float>{0, 1, 1, 1});
    CHECK(p[0]->value().data()[0] == 0.0f);
    CHECK(changes[0].kept_after == 6);
    CHECK(changes[1].kept_after == 3);
    // ties go by index: of two equal scores at the cut, the earlier weight is removed
    auto tied = mlp({4, 1}, rng);
    set_values(tied->parameters()[0], {1.0f, 2.0f, 2.0f, 3.0f});
    spec.rate = 0.5;
    prune_fraction(tied->parameters(), compute_scores(*tied, ScoreOptions{}, {}, rng), spec);
    CHECK(tied->parameters()[0]->mask.to_vector() == std::vector<float>{0, 0, 1, 1});

    auto layered = mlp({10, 10, 7}, rng);
    spec.allocation = "layerwise";
    spec.rate = 0.2;
    const auto lp = layered->parameters();
    for (int cycle = 1; cycle <= 5; ++cycle) {
      prune_fraction(lp, compute_scores(*layered, ScoreOptions{}, {}, rng), spec);
      for (nn::Parameter* q : lp)
        CHECK(std::fabs(static_cast<double>(q->kept()) - std::pow(0.8, cycle) * static_cast<double>(q->numel())) <= 1.0);
    }
  }

  TEST_CASE("score histogram with Sturges' bins over the kept weights") {
    Rng rng(9);
    auto net = mlp({4, 2, 1}, rng);
    const auto p = net->parameters();
    set_values(p[0], {1, 2, 3, 4, 5, 6, 7, 8});
    set_values(p[1], {100, 200});
    p[1]->mask.fill(0.0f);  // pruned weights do not count
    const Histogram h = score_histogram(p, compute_scores(*net, ScoreOptions{}, {}, rng));
    CHECK(h.low == 1.0);
    CHECK(h.high == 8.0);
    CHECK(h.counts == std::vector<int64_t>{2, 2, 2, 2});  // n = 8: ceil(log2 8) + 1 = 4 bins
  }

  TEST_CASE("ER and ERK densities follow the formula, with the dense-layer re-solve") {
    const std::vector<TensorBudget> conv_and_linear = {{{16, 3, 3, 3}, 432, 432}, {{10, 512}, 5120, 5120}};
    // ERK ratio (C + K + kh + kw) / (C K kh kw); ER drops the kernel dims; linear (in + out) / (in out)
    CHECK(er_ratio(conv_and_linear[0].shape, true) == doctest::Approx((3.0 + 16 + 3 + 3) / 432));
    CHECK(er_ratio(conv_and_linear[0].shape, false) == doctest::Approx((3.0 + 16) / 48));
    CHECK(er_ratio(conv_and_linear[1].shape, true) == doctest::Approx((512.0 + 10) / 5120));
    const auto plain = er_densities(conv_and_linear, 1000, true);
    const double eps_plain = 1000.0 / (25.0 + 522.0);  // sum of ratio * numel
    CHECK(plain[0] == doctest::Approx(eps_plain * 25.0 / 432));
    CHECK(plain[1] == doctest::Approx(eps_plain * 522.0 / 5120));
    // linear [10, 20] (ratio 0.15) and [100, 1000] (ratio 0.011), 30% of 100200 kept: eps * 0.15 > 1, so
    // the small layer becomes dense and eps is re-solved over the large one.
    const std::vector<TensorBudget> tensors = {{{10, 20}, 200, 200}, {{100, 1000}, 100000, 100000}};
    const int64_t target = 30060;
    const auto density = er_densities(tensors, target, true);
    CHECK(density[0] == doctest::Approx(1.0));
    const double epsilon = (target - 200.0) / (0.011 * 100000);
    CHECK(density[1] == doctest::Approx(epsilon * 0.011));
    const auto kept = er_keep_counts(tensors, target, true);
    CHECK(kept[0] == 200);
    CHECK(kept[1] == std::llround(epsilon * 0.011 * 100000));
    CHECK(kept[0] + kept[1] == target);
  }

  TEST_CASE("bad pruning input is refused") {
    Rng rng(8);
    auto net = mlp({2, 2, 50}, rng);
    const auto p = net->parameters();
    set_values(p[0], {0.01f, 0.02f, 0.03f, 0.04f});
    PruneSpec spec;
    spec.rate = 0.1;  // the 4 smallest weights are all of the first tensor: it would be emptied
    CHECK_THROWS_WITH_AS(prune_fraction(p, compute_scores(*net, ScoreOptions{}, {}, rng), spec),
                         doctest::Contains("would remove every weight of 0.weight"), Error);
    spec.rate = 1.0;
    CHECK_THROWS_WITH_AS(validate(spec), doctest::Contains("--prune-rate"), Error);
    ScoreOptions unknown;
    unknown.name = "saliency";
    CHECK_THROWS_WITH_AS(compute_scores(*net, unknown, {}, rng), doctest::Contains("--prune-score"), Error);
    CHECK_THROWS_WITH_AS(schedules::early_round_rate(3, 1.2), doctest::Contains("--early-sparsity"), Error);
  }

  TEST_CASE("sparsity schedules: IMP geometric, GMP cubic, early rounds") {
    CHECK(schedules::imp_density(0.2, 10) == doctest::Approx(0.107374).epsilon(1e-5));
    schedules::GmpSchedule g{0.0, 0.9, 100, 10, 5};
    CHECK(schedules::gmp_sparsity(g, 100) == doctest::Approx(0.0));
    CHECK(schedules::gmp_sparsity(g, 150) == doctest::Approx(0.9));
    CHECK(schedules::gmp_sparsity(g, 125) == doctest::Approx(0.9 - 0.9 * std::pow(0.5, 3)));
    CHECK(schedules::is_gmp_step(g, 110));
    CHECK_FALSE(schedules::is_gmp_step(g, 115));
    CHECK_FALSE(schedules::is_gmp_step(g, 160));
    const double r = schedules::early_round_rate(3, 0.7);
    CHECK(1.0 - std::pow(1.0 - r, 3) == doctest::Approx(0.7));
  }
}

TEST_SUITE("unit") {
  TEST_CASE("RigL drops the smallest active weights, grows the largest-gradient inactive ones at exactly 0") {
    Rng rng(10);
    auto net = mlp({4, 2}, rng);
    nn::Parameter* w = net->parameters()[0];
    set_values(w, {0.9f, -0.1f, 0.5f, 0.0f, 0.0f, 0.3f, 0.0f, -0.7f});
    w->mask = Tensor::from_vector({2, 4}, {1, 1, 1, 0, 0, 1, 0, 1});  // 5 active
    const Tensor gradient = Tensor::from_vector({2, 4}, {0.0f, 0.0f, 0.0f, 2.0f, -5.0f, 0.0f, 1.0f, 0.0f});
    const auto updates = drop_and_grow({w}, {gradient}, 0.4, "rigl", rng);  // k = round(0.4 * 5) = 2
    CHECK(updates[0].dropped == 2);
    CHECK(updates[0].grown == 2);
    // dropped: -0.1 (index 1) and 0.3 (index 5); grown: |g| = 5 (index 4) and 2 (index 3)
    CHECK(w->mask.to_vector() == std::vector<float>{1, 0, 1, 1, 1, 0, 0, 1});
    CHECK(w->value().data()[3] == 0.0f);
    CHECK(w->value().data()[4] == 0.0f);
    CHECK(w->value().data()[1] == 0.0f);
    CHECK(w->kept() == 5);
  }

  TEST_CASE("RigL and SET keep every layer's non-zero count exactly constant") {
    for (const std::string method : {"rigl", "set"}) {
      Rng rng(11);
      auto net = mlp({30, 20, 10}, rng);
      const auto prunable = prunable_of(net->parameters());
      PruneSpec spec;
      spec.allocation = "erk";
      prune_to_density(net->parameters(), compute_scores(*net, ScoreOptions{"random"}, {}, rng), 0.2, spec);
      std::vector<int64_t> counts;
      for (nn::Parameter* p : prunable) counts.push_back(p->kept());
      for (int update = 0; update < 20; ++update) {
        std::vector<Tensor> gradients;
        for (nn::Parameter* p : prunable) {
          Tensor g = Tensor::empty(p->value().shape());
          for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] = rng.normal();
          gradients.push_back(g);
          for (int64_t i = 0; i < p->numel(); ++i)  // training moves the active weights
            if (p->mask.data()[i] != 0.0f) p->value().data()[i] += 0.1f * rng.normal();
        }
        const auto updates = drop_and_grow(prunable, gradients, 0.3, method, rng);
        for (std::size_t t = 0; t < prunable.size(); ++t) {
          INFO(method << " update " << update << " tensor " << t);
          CHECK(prunable[t]->kept() == counts[t]);
          CHECK(updates[t].grown == updates[t].dropped);
          CHECK(updates[t].grown > 0);
          for (int64_t i = 0; i < prunable[t]->numel(); ++i)
            if (prunable[t]->mask.data()[i] == 0.0f) REQUIRE(prunable[t]->value().data()[i] == 0.0f);
        }
      }
    }
    CHECK(schedules::rigl_drop_fraction(0.3, 0, 750) == doctest::Approx(0.3));
    CHECK(schedules::rigl_drop_fraction(0.3, 375, 750) == doctest::Approx(0.15));
    CHECK(schedules::rigl_drop_fraction(0.3, 750, 750) == 0.0);
  }
}
