// Vision Transformer (Dosovitskiy et al. 2021) for 32x32 images, "ViT-Tiny" widths (Touvron et al.
// 2021: dim 192, 3 heads, MLP 768) with 4x4 patches:
//   tokens  = patch_embed (4x4 conv, stride 4, bias: C x 32 x 32 -> 8 x 8 x 192 -> 64 tokens in row-major
//             patch order, PyTorch's conv(x).flatten(2).transpose(1, 2)), the class token prepended
//             (65 tokens), plus the learned position embedding [1, 65, 192]
//   block   = pre-LN: x = x + proj(attention(qkv(norm1(x))));  x = x + fc2(GELU(fc1(norm2(x))))
//             (qkv: one linear 192 -> 576 in q | k | v order; attention: 3 heads of 64, one fused op)
//   head    = linear 192 -> classes on the final LayerNorm of the class token.
// No dropout. LayerNorm eps 1e-5, exact GELU (PyTorch's defaults).
// State-dict names follow timm's VisionTransformer: cls_token, pos_embed, patch_embed.proj,
// blocks.{i}.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}, norm, head.
//
// Parameters (3 x 32 x 32, 10 classes, D = 192, T = 65):
//   patch_embed 192 * 48 + 192 = 9,408;  cls_token 192;  pos_embed 65 * 192 = 12,480
//   per block: norm1 384 + qkv (192 * 576 + 576 = 111,168) + proj (192 * 192 + 192 = 37,056) + norm2 384
//              + fc1 (192 * 768 + 768 = 148,224) + fc2 (768 * 192 + 192 = 147,648) = 444,864
//   norm 384;  head 192 * 10 + 10 = 1,930
//   vit-tiny  (depth 12): 24,394 + 12 * 444,864 = 5,362,762
//   vit-tiny6 (depth 6):  24,394 +  6 * 444,864 = 2,693,578
// (1 input channel: the patch embedding has 192 * 32 = 6,144 weights fewer.)
// Prunable: the patch-embedding weight and every linear weight (qkv, proj, fc1, fc2, head); never
// LayerNorm parameters, biases, the class token or the position embedding (registered with the
// Bias kind: additive, never masked).
//
// Initialisation (timm's ViT): linear and patch-embedding weights, cls_token and pos_embed from a
// normal of std 0.02 truncated at two standard deviations; biases 0; LayerNorm weight 1, bias 0.
// (timm's trunc_normal_(std=.02) truncates at +-2 absolute, i.e. not at all; we truncate at +-2 std.)
//
// Structured pruning: each block's MLP hidden units are one channel group (fc1 rows and bias, fc2
// columns). The residual stream (192) is not a group: LayerNorm's statistics run over all its
// features, so removing even an all-zero feature would change the outputs.
#include "engine/error.h"
#include "engine/ops.h"
#include "models/registry.h"

namespace st::models {
namespace {

constexpr int64_t kPatch = 4;
constexpr float kInitStd = 0.02f;

void fill_truncated_normal(Tensor& t, Rng& rng) {
  for (int64_t i = 0; i < t.numel(); ++i) {
    float v = rng.normal();
    while (v < -2.0f || v > 2.0f) v = rng.normal();
    t.data()[i] = kInitStd * v;
  }
}

// A linear layer (with bias) with the truncated-normal weights.
std::unique_ptr<nn::Linear> make_linear(int64_t in, int64_t out, Rng& rng) {
  auto linear = std::make_unique<nn::Linear>(in, out, true, rng);
  fill_truncated_normal(linear->weight().value(), rng);
  return linear;
}

// A linear layer applied to every token: [B, T, in] -> [B * T, in] -> [B * T, out] -> [B, T, out].
Variable token_linear(nn::Linear& linear, const Variable& x) {
  const int64_t batch = x.shape()[0], tokens = x.shape()[1];
  linear.weight().uses_per_sample = tokens;
  const Variable y = linear.forward(ops::reshape(x, {batch * tokens, x.shape()[2]}));
  return ops::reshape(y, {batch, tokens, y.shape()[1]});
}

class LayerNorm : public nn::Module {
 public:
  explicit LayerNorm(int64_t dim) {
    weight_ = &register_parameter("weight", Tensor::full({dim}, 1.0f), nn::ParameterKind::NormWeight);
    bias_ = &register_parameter("bias", Tensor::zeros({dim}), nn::ParameterKind::NormBias);
  }
  Variable forward(const Variable& x) override { return ops::layernorm(x, weight_->variable, bias_->variable, 1e-5f); }

 private:
  nn::Parameter* weight_;
  nn::Parameter* bias_;
};

class Attention : public nn::Module {
 public:
  Attention(int64_t dim, int64_t heads, Rng& rng) : heads_(heads) {
    qkv_ = &register_module("qkv", make_linear(dim, 3 * dim, rng));
    proj_ = &register_module("proj", make_linear(dim, dim, rng));
  }
  Variable forward(const Variable& x) override {
    return token_linear(*proj_, ops::attention(token_linear(*qkv_, x), heads_));
  }

 private:
  int64_t heads_;
  nn::Linear* qkv_;
  nn::Linear* proj_;
};

class Mlp : public nn::Module {
 public:
  Mlp(int64_t dim, int64_t hidden, Rng& rng) {
    fc1_ = &register_module("fc1", make_linear(dim, hidden, rng));
    fc2_ = &register_module("fc2", make_linear(hidden, dim, rng));
  }
  Variable forward(const Variable& x) override { return token_linear(*fc2_, ops::gelu(token_linear(*fc1_, x))); }
  // The hidden units: fc1's rows and bias produce them, fc2's columns read them.
  nn::ChannelGroup hidden_group() {
    nn::ChannelGroup group{fc1_->weight().name, fc1_->weight().value().dim(0), {}, {}};
    group.producers.push_back({&fc1_->weight(), nullptr, 0, false});
    group.producers.push_back({fc1_->bias(), nullptr, 0, false});
    group.consumers.push_back({&fc2_->weight(), nullptr, 1, false});
    return group;
  }

 private:
  nn::Linear* fc1_;
  nn::Linear* fc2_;
};

class Block : public nn::Module {
 public:
  Block(int64_t dim, int64_t heads, int64_t hidden, Rng& rng) {
    norm1_ = &register_module("norm1", std::make_unique<LayerNorm>(dim));
    attn_ = &register_module("attn", std::make_unique<Attention>(dim, heads, rng));
    norm2_ = &register_module("norm2", std::make_unique<LayerNorm>(dim));
    mlp_ = &register_module("mlp", std::make_unique<Mlp>(dim, hidden, rng));
  }
  Variable forward(const Variable& x) override {
    const Variable h = ops::add(x, attn_->forward(norm1_->forward(x)));
    return ops::add(h, mlp_->forward(norm2_->forward(h)));
  }
  Mlp& mlp() { return *mlp_; }

 private:
  LayerNorm* norm1_;
  Attention* attn_;
  LayerNorm* norm2_;
  Mlp* mlp_;
};

class PatchEmbed : public nn::Module {
 public:
  PatchEmbed(int64_t channels, int64_t dim, Rng& rng) {
    proj_ = &register_module("proj", std::make_unique<nn::Conv2d>(channels, dim, kPatch, kPatch, 0, true, rng));
    fill_truncated_normal(proj_->weight().value(), rng);
  }
  // [B, H, W, C] -> [B, (H / 4) * (W / 4), D], patches in row-major order.
  Variable forward(const Variable& x) override {
    const Variable y = proj_->forward(x);
    return ops::reshape(y, {y.shape()[0], y.shape()[1] * y.shape()[2], y.shape()[3]});
  }

 private:
  nn::Conv2d* proj_;
};

class VisionTransformer : public nn::Module {
 public:
  VisionTransformer(int depth, const InputSpec& input, Rng& rng) : height_(input.height), width_(input.width) {
    constexpr int64_t dim = 192, heads = 3, hidden = 768;
    ST_CHECK(input.height % kPatch == 0 && input.width % kPatch == 0,
             "vit: the image ({}x{}) must be a multiple of the {}x{} patch size", input.height, input.width, kPatch,
             kPatch);
    const int64_t tokens = (input.height / kPatch) * (input.width / kPatch) + 1;
    cls_token_ = &register_parameter("cls_token", Tensor::empty({1, 1, dim}), nn::ParameterKind::Bias);
    pos_embed_ = &register_parameter("pos_embed", Tensor::empty({1, tokens, dim}), nn::ParameterKind::Bias);
    patch_embed_ = &register_module("patch_embed", std::make_unique<PatchEmbed>(input.channels, dim, rng));
    fill_truncated_normal(pos_embed_->value(), rng);
    fill_truncated_normal(cls_token_->value(), rng);
    auto blocks = std::make_unique<nn::Sequential>();
    for (int i = 0; i < depth; ++i) blocks_.push_back(&blocks->add(std::make_unique<Block>(dim, heads, hidden, rng)));
    register_module("blocks", std::move(blocks));
    norm_ = &register_module("norm", std::make_unique<LayerNorm>(dim));
    head_ = &register_module("head", make_linear(dim, input.num_classes, rng));
  }

  std::vector<nn::ChannelGroup> channel_groups() override {
    parameters();  // assigns the full names
    std::vector<nn::ChannelGroup> groups;
    for (Block* block : blocks_) groups.push_back(block->mlp().hidden_group());
    return groups;
  }

  Variable forward(const Variable& x) override {
    ST_CHECK(x.value().ndim() == 4 && x.shape()[1] == height_ && x.shape()[2] == width_,
             "vit: input {} does not match the {}x{} images the position embedding was built for",
             shape_string(x.shape()), height_, width_);
    Variable h = ops::prepend_token(patch_embed_->forward(x), cls_token_->variable);
    h = ops::add_batch_broadcast(h, pos_embed_->variable);
    for (Block* block : blocks_) h = block->forward(h);
    // The final LayerNorm acts per token, so normalising only the class token gives the same logits.
    return head_->forward(norm_->forward(ops::select_token(h, 0)));
  }

 private:
  int64_t height_, width_;
  nn::Parameter* cls_token_;
  nn::Parameter* pos_embed_;
  PatchEmbed* patch_embed_;
  std::vector<Block*> blocks_;
  LayerNorm* norm_;
  nn::Linear* head_;
};

}  // namespace

std::unique_ptr<nn::Module> make_vit_tiny(int depth, const InputSpec& input, Rng& rng) {
  ST_CHECK(depth >= 1, "vit: depth {} must be at least 1", depth);
  return std::make_unique<VisionTransformer>(depth, input, rng);
}

}  // namespace st::models
