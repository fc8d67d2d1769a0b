#include "engine/io/export.h"

#include <map>

#include "engine/error.h"

namespace st::io {

namespace {

// KRSC <-> OIHW (to_oihw picks the direction).
Tensor convert_conv_weight(const Tensor& w, bool to_oihw) {
  const int64_t k = w.dim(0), r = w.dim(to_oihw ? 1 : 2), s = w.dim(to_oihw ? 2 : 3), c = w.dim(to_oihw ? 3 : 1);
  Tensor out = Tensor::empty(to_oihw ? Shape{k, c, r, s} : Shape{k, r, s, c});
  for (int64_t a = 0; a < k; ++a)
    for (int64_t i = 0; i < r; ++i)
      for (int64_t j = 0; j < s; ++j)
        for (int64_t b = 0; b < c; ++b) {
          const int64_t krsc = ((a * r + i) * s + j) * c + b, oihw = ((a * c + b) * r + i) * s + j;
          out.data()[to_oihw ? oihw : krsc] = w.data()[to_oihw ? krsc : oihw];
        }
  return out;
}

// Linear columns over an NHWC-flattened input (positions x channels) <-> NCHW (channels x positions).
Tensor convert_linear_columns(const Tensor& w, int64_t channels, bool to_nchw) {
  const int64_t rows = w.dim(0), columns = w.dim(1), positions = columns / channels;
  ST_CHECK(columns % channels == 0, "linear weight {} does not read {} channels", shape_string(w.shape()), channels);
  Tensor out = Tensor::empty(w.shape());
  for (int64_t row = 0; row < rows; ++row)
    for (int64_t p = 0; p < positions; ++p)
      for (int64_t c = 0; c < channels; ++c) {
        const int64_t nhwc = row * columns + p * channels + c, nchw = row * columns + c * positions + p;
        out.data()[to_nchw ? nchw : nhwc] = w.data()[to_nchw ? nhwc : nchw];
      }
  return out;
}

}  // namespace

Tensor conv_weight_to_oihw(const Tensor& w) { return convert_conv_weight(w, true); }
Tensor conv_weight_from_oihw(const Tensor& w) { return convert_conv_weight(w, false); }
Tensor linear_columns_to_nchw(const Tensor& w, int64_t channels) { return convert_linear_columns(w, channels, true); }
Tensor linear_columns_from_nchw(const Tensor& w, int64_t channels) { return convert_linear_columns(w, channels, false); }

namespace {

// Linear weights that read NHWC-flattened activations, and how many channels they interleave.
std::map<const nn::Parameter*, int64_t> flattened_linears(nn::Module& model, const InputSpec& input) {
  std::map<const nn::Parameter*, int64_t> flattened;
  std::vector<nn::ChannelGroup> groups;
  try {
    groups = model.channel_groups();
  } catch (const Error&) {
    // models without channel groups (option-A ResNets) flatten nothing
  }
  for (const nn::ChannelGroup& group : groups)
    for (const nn::ChannelSlice& slice : group.consumers)
      if (slice.flattened) flattened[slice.parameter] = group.channels;
  const std::vector<nn::Parameter*> parameters = model.parameters();
  // A first linear layer reading the flattened input image interleaves the input channels.
  if (!parameters.empty() && parameters.front()->kind == nn::ParameterKind::LinearWeight && input.channels > 1 &&
      parameters.front()->value().dim(1) == input.channels * input.height * input.width)
    flattened[parameters.front()] = input.channels;
  return flattened;
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

SafetensorsFile pytorch_state_dict(nn::Module& model, const InputSpec& input) {
  const std::map<const nn::Parameter*, int64_t> flattened = flattened_linears(model, input);
  const std::vector<nn::Parameter*> parameters = model.parameters();
  SafetensorsFile file;
  file.metadata["format"] = "pt";
  file.metadata["sparsetrain.layout"] = "pytorch (OIHW convolutions, NCHW-flattened linear inputs)";
  for (nn::Parameter* p : parameters) {
    auto convert = [&](const Tensor& t) {
      if (p->kind == nn::ParameterKind::ConvWeight) return conv_weight_to_oihw(t);
      const auto it = flattened.find(p);
      if (it != flattened.end()) return linear_columns_to_nchw(t, it->second);
      return t;
    };
    const Tensor value = convert(p->value());
    file.add_f32(p->name, value.shape(), value.data());
    if (p->mask.defined() && p->kept() < p->numel()) {
      const Tensor mask = convert(p->mask);
      file.add_f32(p->name + "_mask", mask.shape(), mask.data());
    }
  }
  for (const nn::NamedBuffer& buffer : model.buffers()) {
    file.add_f32(buffer.name, buffer.tensor->shape(), buffer.tensor->data());
    const std::string suffix = "running_var";
    if (buffer.name.size() > suffix.size() && ends_with(buffer.name, suffix)) {
      const int64_t zero = 0;
      file.add_i64(buffer.name.substr(0, buffer.name.size() - suffix.size()) + "num_batches_tracked", {}, &zero);
    }
  }
  return file;
}

void load_pytorch_state_dict(nn::Module& model, const InputSpec& input, const SafetensorsFile& file) {
  const std::map<const nn::Parameter*, int64_t> flattened = flattened_linears(model, input);
  std::map<std::string, bool> used;
  for (const TensorRecord& record : file.tensors) used[record.name] = false;
  // The named tensor in PyTorch's layout, converted to ours, checked against `shape` (ours).
  const auto take = [&](const std::string& name, const Shape& shape, bool conv, int64_t flattened_channels) {
    const TensorRecord* record = file.find(name);
    if (record == nullptr) fail("import {}: no tensor {} (the model has it)", file.path, name);
    if (record->dtype != DType::F32)
      fail("import {}: {} is {}, expected F32 (save the state dict in float32)", file.path, name,
           dtype_name(record->dtype));
    used[name] = true;
    // the model's shape in PyTorch's layout (OIHW for a convolution), checked before any conversion
    const Shape expected = conv ? Shape{shape[0], shape[3], shape[1], shape[2]} : shape;
    if (record->shape != expected)
      fail("import {}: {} has shape {}, the model's is {} (in PyTorch's layout)", file.path, name,
           shape_string(record->shape), shape_string(expected));
    const std::vector<float> values = file.f32(name);
    Tensor t = Tensor::empty(record->shape);
    std::copy(values.begin(), values.end(), t.data());
    if (conv) return conv_weight_from_oihw(t);
    if (flattened_channels > 0) return linear_columns_from_nchw(t, flattened_channels);
    return t;
  };
  for (nn::Parameter* p : model.parameters()) {
    const bool conv = p->kind == nn::ParameterKind::ConvWeight;
    const auto it = flattened.find(p);
    const int64_t channels = it != flattened.end() ? it->second : 0;
    p->value().copy_from(take(p->name, p->value().shape(), conv, channels));
    if (!p->mask.defined()) continue;
    if (file.find(p->name + "_mask") != nullptr) {
      p->mask.copy_from(take(p->name + "_mask", p->mask.shape(), conv, channels));
      const float* m = p->mask.data();
      const float* w = p->value().data();
      for (int64_t i = 0; i < p->numel(); ++i) {
        if (m[i] != 0.0f && m[i] != 1.0f)
          fail("import {}: {}_mask holds {}, expected 0 or 1", file.path, p->name, m[i]);
        if (m[i] == 0.0f && w[i] != 0.0f)
          fail("import {}: {} is {} at a pruned entry of {}_mask (index {}, our layout)", file.path, p->name, w[i],
               p->name, i);
      }
    } else {
      std::fill(p->mask.data(), p->mask.data() + p->mask.numel(), 1.0f);
    }
    p->mask_changed();
  }
  for (const nn::NamedBuffer& buffer : model.buffers())
    buffer.tensor->copy_from(take(buffer.name, buffer.tensor->shape(), false, 0));
  for (const auto& [name, taken] : used)
    if (!taken && !ends_with(name, "num_batches_tracked"))
      fail("import {}: {} has no place in the model (strict, as PyTorch's load_state_dict)", file.path, name);
}

}  // namespace st::io
