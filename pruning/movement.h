// Movement: |w_T - w_{T-1 epoch}|, the magnitude of each weight's change over the last epoch of training
// (the score in the SILO authors' released code; ../shared/spec/pruning.md). Weights that still move are
// kept. The score keeps the prunable weights at the ends of the last two epochs (its history, saved in
// checkpoints); scored at an epoch's end it compares the weights with the epoch before, scored inside an
// epoch (gradual pruning) with the last epoch's end.
// movement_magnitude: |w_T - w_{T-1 epoch}| |w_T|, the same movement times the weight's magnitude (the
// score of the SILO authors' VGG-19 script), with the same history.
#pragma once

#include "pruning/scores.h"

namespace st::pruning {

ScoreMethod movement_score();
ScoreMethod movement_magnitude_score();

}  // namespace st::pruning
