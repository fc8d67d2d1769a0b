// The layer shapes kernelbench times: every distinct convolution and linear layer of the CIFAR models
// resnet20, vgg19, mobilenetv2 and vit-tiny (as models/ builds them), with how many layers share it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/geometry.h"

namespace st::kernelbench {

struct ConvLayer {
  std::string model, name;
  Conv2dGeometry geometry;  // batch left 0: set by the caller
  bool bias = false;
  int count = 1;  // layers of the model with this shape
};

// y[rows, out] = x[rows, in] W^T (+ b), rows = rows_per_image * batch (tokens for vit-tiny).
struct LinearLayer {
  std::string model, name;
  int64_t rows_per_image = 1, in = 0, out = 0;
  bool bias = true;
  int count = 1;
};

// Fused multi-head self-attention over [batch, tokens, 3 * dim] (vit-tiny's blocks).
struct AttentionLayer {
  std::string model, name;
  int64_t tokens = 0, dim = 0, heads = 1;
  int count = 1;
};

// "resnet20", "vgg19", "mobilenetv2", "vit-tiny"; "all" for every model. Throws on an unknown name.
std::vector<ConvLayer> conv_layers(const std::string& model);
std::vector<LinearLayer> linear_layers(const std::string& model);
std::vector<AttentionLayer> attention_layers(const std::string& model);
const std::vector<std::string>& model_names();

}  // namespace st::kernelbench
