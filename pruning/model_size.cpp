// See model_size.h.
#include "pruning/model_size.h"

#include <fmt/format.h>

#include <algorithm>

#include "engine/error.h"
#include "pruning/prune.h"
#include "pruning/structured.h"

namespace st::pruning {

ModelSize model_size(nn::Module& model) {
  ModelSize size;
  for (nn::Parameter* p : prunable_of(model.parameters()))
    size.layers.push_back({p->name, p->value().shape(), p->numel(), p->kept() * p->uses_per_sample});
  size.parameters = model.parameter_count();
  size.flops = flops_per_sample(model);
  return size;
}

std::string size_table(const ModelSize& before, const ModelSize& after) {
  ST_CHECK(before.layers.size() == after.layers.size(), "size table: {} layers before, {} after", before.layers.size(),
           after.layers.size());
  std::string table = fmt::format("{:<28} {:>16} {:>16} {:>21} {:>17}\n", "layer", "shape before", "shape after",
                                  "params before/after", "MFLOP before/after");
  for (std::size_t i = 0; i < before.layers.size(); ++i) {
    const ModelSize::Layer &b = before.layers[i], &a = after.layers[i];
    table += fmt::format("{:<28} {:>16} {:>16} {:>10}/{:<10} {:>8.3f}/{:<8.3f}\n", a.name, shape_string(b.shape),
                         shape_string(a.shape), b.params, a.params, 2e-6 * static_cast<double>(b.kept_uses),
                         2e-6 * static_cast<double>(a.kept_uses));
  }
  table += fmt::format("parameters {} -> {} ({:.3f}x), MFLOPs per sample {:.3f} -> {:.3f} ({:.3f}x)\n", before.parameters,
                       after.parameters, static_cast<double>(before.parameters) / static_cast<double>(after.parameters),
                       1e-6 * static_cast<double>(before.flops), 1e-6 * static_cast<double>(after.flops),
                       static_cast<double>(before.flops) / static_cast<double>(std::max<int64_t>(after.flops, 1)));
  return table;
}

}  // namespace st::pruning
