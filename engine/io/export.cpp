#include "engine/io/export.h"

#include <map>

#include "engine/error.h"

namespace st::io {

Tensor conv_weight_to_oihw(const Tensor& w) {
  const int64_t k = w.dim(0), r = w.dim(1), s = w.dim(2), c = w.dim(3);
  Tensor out = Tensor::empty({k, c, r, s});
  for (int64_t a = 0; a < k; ++a)
    for (int64_t i = 0; i < r; ++i)
      for (int64_t j = 0; j < s; ++j)
        for (int64_t b = 0; b < c; ++b)
          out.data()[((a * c + b) * r + i) * s + j] = w.data()[((a * r + i) * s + j) * c + b];
  return out;
}

Tensor linear_columns_to_nchw(const Tensor& w, int64_t channels) {
  const int64_t rows = w.dim(0), columns = w.dim(1), positions = columns / channels;
  ST_CHECK(columns % channels == 0, "linear weight {} does not read {} channels", shape_string(w.shape()), channels);
  Tensor out = Tensor::empty(w.shape());
  for (int64_t row = 0; row < rows; ++row)
    for (int64_t p = 0; p < positions; ++p)
      for (int64_t c = 0; c < channels; ++c)
        out.data()[row * columns + c * positions + p] = w.data()[row * columns + p * channels + c];
  return out;
}

SafetensorsFile pytorch_state_dict(nn::Module& model, const models::InputSpec& input) {
  // Linear weights that read NHWC-flattened activations, and how many channels they interleave.
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
    if (buffer.name.size() > suffix.size() && buffer.name.compare(buffer.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const int64_t zero = 0;
      file.add_i64(buffer.name.substr(0, buffer.name.size() - suffix.size()) + "num_batches_tracked", {}, &zero);
    }
  }
  return file;
}

}  // namespace st::io
