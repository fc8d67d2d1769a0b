// The size of a model before and after a structured change (channel pruning, unit selection): per
// prunable layer its shape, parameters and FLOPs, and the model's totals, as a printed table.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/nn.h"

namespace st::pruning {

struct ModelSize {
  struct Layer {
    std::string name;
    Shape shape;
    int64_t params, kept_uses;  // parameters; kept weights x uses per sample (half its FLOPs)
  };
  std::vector<Layer> layers;
  int64_t parameters = 0, flops = 0;
};

ModelSize model_size(nn::Module& model);
// Per layer: shape, parameters and MFLOPs per sample before/after; then the totals and their ratios.
std::string size_table(const ModelSize& before, const ModelSize& after);

}  // namespace st::pruning
