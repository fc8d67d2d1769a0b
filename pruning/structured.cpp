#include "pruning/structured.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace st::pruning {
namespace {

// Copies `source` keeping the channels `keep` along `axis` (flattened: axis 1 of an NHWC-flattened
// input, where element i belongs to channel i % channels).
Tensor gather_channels(const Tensor& source, int axis, bool flattened, int64_t channels,
                       const std::vector<int64_t>& keep) {
  const Shape& shape = source.shape();
  const auto kept = static_cast<int64_t>(keep.size());
  if (flattened) {
    ST_CHECK(shape.size() == 2 && shape[1] % channels == 0, "flattened consumer {} for {} channels",
             shape_string(shape), channels);
    const int64_t rows = shape[0], positions = shape[1] / channels;
    Tensor out = Tensor::empty({rows, positions * kept});
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t p = 0; p < positions; ++p)
        for (int64_t j = 0; j < kept; ++j)
          out.data()[(r * positions + p) * kept + j] = source.data()[r * shape[1] + p * channels + keep[static_cast<std::size_t>(j)]];
    return out;
  }
  ST_CHECK(shape[static_cast<std::size_t>(axis)] == channels, "slice {} axis {} has {} channels, the group {}",
           shape_string(shape), axis, shape[static_cast<std::size_t>(axis)], channels);
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= shape[static_cast<std::size_t>(i)];
  for (std::size_t i = static_cast<std::size_t>(axis) + 1; i < shape.size(); ++i) inner *= shape[i];
  Shape new_shape = shape;
  new_shape[static_cast<std::size_t>(axis)] = kept;
  Tensor out = Tensor::empty(new_shape);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < kept; ++j)
      std::copy(source.data() + (o * channels + keep[static_cast<std::size_t>(j)]) * inner,
                source.data() + (o * channels + keep[static_cast<std::size_t>(j)] + 1) * inner,
                out.data() + (o * kept + j) * inner);
  return out;
}

// One tensor cut along one axis by the slices of one or more groups (several for a concatenation).
struct AxisCut {
  const nn::ChannelSlice* first = nullptr;  // the tensor, axis and layout
  struct Part {
    int64_t offset, channels;
    const std::vector<int64_t>* keep;
    const std::string* group;
  };
  std::vector<Part> parts;
};

std::string tensor_label(const nn::ChannelSlice& slice) {
  return slice.parameter != nullptr ? slice.parameter->name : std::string("a BatchNorm statistic");
}

// Keeps, along the axis of `cut`, the kept channels of each part; the parts must tile the axis.
void apply_cut(AxisCut& cut) {
  const nn::ChannelSlice& slice = *cut.first;
  std::stable_sort(cut.parts.begin(), cut.parts.end(),
                   [](const AxisCut::Part& a, const AxisCut::Part& b) { return a.offset < b.offset; });
  int64_t channels = 0;
  std::vector<int64_t> keep;
  for (const AxisCut::Part& part : cut.parts) {
    ST_CHECK(part.offset == channels,
             "structured pruning: the channel groups of {} along axis {} do not tile it (group {} starts at {}, "
             "expected {})",
             tensor_label(slice), slice.axis, *part.group, part.offset, channels);
    for (int64_t c : *part.keep) keep.push_back(part.offset + c);
    channels += part.channels;
  }
  if (static_cast<int64_t>(keep.size()) == channels) return;  // nothing removed along this axis
  ST_CHECK(!slice.flattened || cut.parts.size() == 1, "structured pruning: {} reads a flattened concatenation",
           tensor_label(slice));
  if (slice.parameter != nullptr) {
    nn::Parameter* p = slice.parameter;
    Tensor value = gather_channels(p->value(), slice.axis, slice.flattened, channels, keep);
    if (p->mask.defined()) {
      p->mask = gather_channels(p->mask, slice.axis, slice.flattened, channels, keep);
      p->mask_changed();
    }
    p->variable = Variable(value, true);
  } else {
    *slice.buffer = gather_channels(*slice.buffer, slice.axis, slice.flattened, channels, keep);
  }
}

}  // namespace

void validate(const StructuredSpec& s) {
  if (!(s.fraction > 0.0 && s.fraction < 1.0)) fail("--structured-prune: must be in (0, 1), got {}", s.fraction);
  static const char* const kScores[] = {"l1", "l2", "snip", "lp_biased", "hg", "abs_hg", "taylor"};
  if (std::find(std::begin(kScores), std::end(kScores), s.score) == std::end(kScores))
    fail("--structured-score: unknown filter score '{}' (known: l1, l2, snip, lp_biased, hg, abs_hg, taylor)", s.score);
}

std::vector<std::vector<double>> channel_scores(nn::Module& model, const std::vector<nn::ChannelGroup>& groups,
                                                const StructuredSpec& spec, const ScoreData& data) {
  // Elementwise weight scores by parameter name, then summed per channel over the producer filters.
  std::map<std::string, Tensor> weight_score;
  const bool norm = spec.score == "l1" || spec.score == "l2";
  if (!norm) {
    ScoreOptions options;
    options.name = spec.score == "taylor" ? "wg" : spec.score;
    Rng rng(0);
    const std::vector<Tensor> scores = compute_scores(model, options, data, rng);
    std::size_t i = 0;
    for (nn::Parameter* p : model.parameters())
      if (p->prunable()) weight_score[p->name] = scores[i++];
  }
  std::vector<std::vector<double>> result;
  for (const nn::ChannelGroup& group : groups) {
    std::vector<double> channel(static_cast<std::size_t>(group.channels), 0.0);
    for (const nn::ChannelSlice& slice : group.producers) {
      if (slice.parameter == nullptr || !slice.parameter->prunable()) continue;
      nn::Parameter* p = slice.parameter;
      ST_CHECK(slice.axis == 0 && slice.offset == 0 && p->value().dim(0) == group.channels,
               "structured pruning: producer {} of {} is not a whole axis-0 slice", p->name, group.name);
      const int64_t per_channel = p->numel() / group.channels;
      const float* w = p->value().data();
      const float* s = norm ? nullptr : weight_score.at(p->name).data();
      for (int64_t i = 0; i < p->numel(); ++i) {
        const auto c = static_cast<std::size_t>(i / per_channel);
        if (spec.score == "l1") channel[c] += std::fabs(static_cast<double>(w[i]));
        else if (spec.score == "l2") channel[c] += static_cast<double>(w[i]) * static_cast<double>(w[i]);
        else channel[c] += static_cast<double>(s[i]);
      }
    }
    if (spec.score == "l2")
      for (double& v : channel) v = std::sqrt(v);
    if (spec.score == "taylor")
      for (double& v : channel) v = std::fabs(v);
    result.push_back(channel);
  }
  return result;
}

void shrink(const std::vector<nn::ChannelGroup>& groups, const std::vector<std::vector<int64_t>>& keep) {
  ST_CHECK(keep.size() == groups.size(), "shrink: {} keep lists for {} groups", keep.size(), groups.size());
  // Collect every (tensor, axis) first: a concatenation's consumer is cut by several groups at once,
  // whose offsets refer to the tensor before any of them is cut.
  std::vector<AxisCut> cuts;
  std::map<std::pair<const void*, int>, std::size_t> index;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const auto add = [&](const nn::ChannelSlice& slice) {
      const void* tensor = slice.parameter != nullptr ? static_cast<const void*>(slice.parameter) : slice.buffer;
      const auto [it, inserted] = index.try_emplace({tensor, slice.axis}, cuts.size());
      if (inserted) cuts.push_back({&slice, {}});
      AxisCut& cut = cuts[it->second];
      ST_CHECK(cut.first->flattened == slice.flattened, "structured pruning: {} is read both flattened and not",
               tensor_label(slice));
      cut.parts.push_back({slice.offset, groups[g].channels, &keep[g], &groups[g].name});
    };
    for (const nn::ChannelSlice& slice : groups[g].producers) add(slice);
    for (const nn::ChannelSlice& slice : groups[g].consumers) add(slice);
  }
  for (AxisCut& cut : cuts) apply_cut(cut);
}

std::vector<GroupChange> prune_filters(nn::Module& model, const StructuredSpec& spec, const ScoreData& data) {
  validate(spec);
  const std::vector<nn::ChannelGroup> groups = model.channel_groups();
  if (groups.empty()) fail("--structured-prune: this model describes no prunable channel groups");
  const auto scores = channel_scores(model, groups, spec, data);
  std::vector<std::vector<int64_t>> keep;
  std::vector<GroupChange> changes;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const int64_t channels = groups[g].channels;
    const int64_t count = std::max<int64_t>(1, std::llround((1.0 - spec.fraction) * static_cast<double>(channels)));
    std::vector<int64_t> order(static_cast<std::size_t>(channels));
    for (int64_t c = 0; c < channels; ++c) order[static_cast<std::size_t>(c)] = c;
    const auto& s = scores[g];
    std::nth_element(order.begin(), order.begin() + count, order.end(), [&](int64_t a, int64_t b) {
      return s[static_cast<std::size_t>(a)] > s[static_cast<std::size_t>(b)] ||
             (s[static_cast<std::size_t>(a)] == s[static_cast<std::size_t>(b)] && a < b);
    });
    order.resize(static_cast<std::size_t>(count));
    std::sort(order.begin(), order.end());
    keep.push_back(order);
    changes.push_back({groups[g].name, channels, count});
  }
  shrink(groups, keep);
  return changes;
}

void resize_to_shapes(nn::Module& model, const std::map<std::string, Shape>& saved) {
  const std::vector<nn::ChannelGroup> groups = model.channel_groups();
  std::vector<std::vector<int64_t>> keep;
  for (const nn::ChannelGroup& group : groups) {
    int64_t channels = group.channels;
    for (const nn::ChannelSlice& slice : group.producers) {
      if (slice.parameter == nullptr) continue;
      const auto it = saved.find(slice.parameter->name);
      if (it != saved.end() && !it->second.empty()) channels = it->second[0];
      break;
    }
    if (channels > group.channels || channels < 1)
      fail("checkpoint: {} has {} channels saved, the model {}", group.name, channels, group.channels);
    std::vector<int64_t> first(static_cast<std::size_t>(channels));
    for (int64_t c = 0; c < channels; ++c) first[static_cast<std::size_t>(c)] = c;
    keep.push_back(first);
  }
  shrink(groups, keep);
}

int64_t flops_per_sample(nn::Module& model) {
  int64_t flops = 0;
  for (nn::Parameter* p : model.parameters())
    if (p->prunable()) flops += 2 * p->kept() * p->uses_per_sample;
  return flops;
}

}  // namespace st::pruning
