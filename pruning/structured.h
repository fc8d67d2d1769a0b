// Structured pruning that PHYSICALLY removes filters/channels: every coupled channel group of the
// model (nn::Module::channel_groups(): a conv's filters with its BatchNorm and the next layers' input
// channels; residual streams shared by all blocks of a stage, shortcuts and pre-activation BatchNorms
// included; a depthwise conv's filters with the channels they filter; a concatenation's segments at
// their offsets in every reader) keeps the (1 - fraction) highest-scored channels, and every producer
// and consumer tensor is cut to them, so parameters, FLOPs, memory and time fall. Filter scores (higher = keep) sum a weight score over the
// conv/linear filters of the group's producers:
//   l1 (Li et al. 2017, sum |w|), l2 (||w||), the gradient-flow measures of Lubana & Dick 2021 summed
//   per filter (snip: sum |w g|, lp_biased: sum |w^2 g|, hg: sum w Hg, abs_hg: sum |w Hg|) and taylor
//   (Molchanov et al. 2017, |sum w g|). Ties go by channel index.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/nn.h"
#include "pruning/scores.h"

namespace st::pruning {

struct StructuredSpec {
  double fraction = 0.5;  // of the channels of every group
  std::string score = "l1";
};

struct GroupChange {
  std::string name;
  int64_t channels_before = 0, channels_after = 0;
};

void validate(const StructuredSpec& spec);
// Channel scores of every group (same order as groups).
std::vector<std::vector<double>> channel_scores(nn::Module& model, const std::vector<nn::ChannelGroup>& groups,
                                                const StructuredSpec& spec, const ScoreData& data);
// Cuts every tensor of each group to the channels in keep[g] (ascending).
void shrink(const std::vector<nn::ChannelGroup>& groups, const std::vector<std::vector<int64_t>>& keep);
std::vector<GroupChange> prune_filters(nn::Module& model, const StructuredSpec& spec, const ScoreData& data);
// Shrinks the model's groups to the channel counts of saved parameter shapes (loading a checkpoint of
// a shrunk model); the values are loaded afterwards.
void resize_to_shapes(nn::Module& model, const std::map<std::string, Shape>& saved_parameter_shapes);

// FLOPs per sample of the prunable layers (2 * kept weights * uses per sample).
int64_t flops_per_sample(nn::Module& model);

}  // namespace st::pruning
