#include "pruning/movement.h"

#include <cmath>

#include "engine/error.h"
#include "pruning/prune.h"

namespace st::pruning {
namespace {

class MovementHistory : public ScoreHistory {
 public:
  explicit MovementHistory(nn::Module& model) : epochs_(Tensor::zeros({1})) {
    for (nn::Parameter* p : prunable_of(model.parameters())) {
      previous_.push_back(Tensor::zeros(p->value().shape()));
      current_.push_back(Tensor::zeros(p->value().shape()));
    }
  }
  void on_epoch_end(nn::Module& model) override {
    const std::vector<nn::Parameter*> prunable = prunable_of(model.parameters());
    check_shapes(prunable);
    for (std::size_t i = 0; i < prunable.size(); ++i) {
      previous_[i].copy_from(current_[i]);
      current_[i].copy_from(prunable[i]->value());  // (from the GPU too: the history stays on the CPU)
    }
    epochs_.data()[0] += 1.0f;
  }
  std::vector<Tensor*> state() override {
    std::vector<Tensor*> tensors{&epochs_};
    for (Tensor& t : previous_) tensors.push_back(&t);
    for (Tensor& t : current_) tensors.push_back(&t);
    return tensors;
  }
  // |w_now - w_before|, times |w_now| with `times_magnitude`.
  std::vector<Tensor> scores(nn::Module& model, bool times_magnitude) {
    const std::vector<nn::Parameter*> prunable = prunable_of(model.parameters());
    check_shapes(prunable);
    if (epochs_.data()[0] < 1.0f)
      fail("--prune-score movement: no epoch of training has ended yet, so no weight has a movement to score");
    // At an epoch's end the weights are the last snapshot: compare with the one before (which needs two).
    bool at_epoch_end = true;
    for (std::size_t i = 0; i < prunable.size() && at_epoch_end; ++i)
      at_epoch_end = prunable[i]->value().to_vector() == current_[i].to_vector();
    if (at_epoch_end && epochs_.data()[0] < 2.0f)
      fail("--prune-score movement: scoring after the first epoch, with no epoch before it (train 2 epochs or more)");
    const std::vector<Tensor>& before = at_epoch_end ? previous_ : current_;
    std::vector<Tensor> result;
    for (std::size_t i = 0; i < prunable.size(); ++i) {
      const std::vector<float> now = prunable[i]->value().to_vector();
      Tensor s = Tensor::empty(before[i].shape());
      for (int64_t j = 0; j < s.numel(); ++j) {
        const float w = now[static_cast<std::size_t>(j)];
        s.data()[j] = times_magnitude ? std::fabs(w - before[i].data()[j]) * std::fabs(w)
                                      : std::fabs(w - before[i].data()[j]);
      }
      result.push_back(s);
    }
    return result;
  }

 private:
  void check_shapes(const std::vector<nn::Parameter*>& prunable) const {
    ST_CHECK(prunable.size() == current_.size(), "movement: {} prunable tensors, the history has {}",
             prunable.size(), current_.size());
    for (std::size_t i = 0; i < prunable.size(); ++i)
      if (prunable[i]->value().shape() != current_[i].shape())
        fail("--prune-score movement: {} is {} now but {} in the history (a structurally shrunk network has no "
             "movement score)",
             prunable[i]->name, shape_string(prunable[i]->value().shape()), shape_string(current_[i].shape()));
  }

  Tensor epochs_;  // epochs ended so far (a tensor so that checkpoints carry it)
  std::vector<Tensor> previous_, current_;
};

}  // namespace

namespace {
ScoreMethod movement_method(const std::string& name, const std::string& help, bool times_magnitude) {
  return {name, help, false,
          [times_magnitude](nn::Module& model, const ScoreOptions&, const ScoreData&, Rng&, ScoreHistory* history) {
            auto* movement = dynamic_cast<MovementHistory*>(history);
            ST_CHECK(movement != nullptr, "movement: the history given is not a movement history");
            return movement->scores(model, times_magnitude);
          },
          [](nn::Module& model) -> std::unique_ptr<ScoreHistory> { return std::make_unique<MovementHistory>(model); }};
}
}  // namespace

ScoreMethod movement_score() {
  return movement_method("movement", "|w_T - w_(T-1 epoch)|, the last epoch's movement (the SILO authors' ResNet-20 code)",
                         false);
}

ScoreMethod movement_magnitude_score() {
  return movement_method("movement_magnitude",
                         "|w_T - w_(T-1 epoch)| |w_T|, movement times magnitude (the SILO authors' VGG-19 code)", true);
}

}  // namespace st::pruning
