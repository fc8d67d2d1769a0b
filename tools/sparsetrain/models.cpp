#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "models/registry.h"
#include "tools/sparsetrain/commands.h"

namespace st::cli {

int run_models(bool json) {
  nlohmann::json list = nlohmann::json::array();
  for (const models::ModelEntry& entry : models::registry()) {
    Rng rng(0);
    auto model = entry.build(entry.reference_input, rng);
    nlohmann::json prunable = nlohmann::json::array();
    int64_t prunable_count = 0;
    for (nn::Parameter* p : model->parameters()) {
      if (!p->prunable()) continue;
      prunable.push_back({{"name", p->name}, {"shape", p->value().shape()}, {"kind", nn::kind_name(p->kind)},
                          {"numel", p->numel()}});
      prunable_count += p->numel();
    }
    const models::InputSpec& in = entry.reference_input;
    list.push_back({{"name", entry.name},
                    {"description", entry.description},
                    {"input", {in.channels, in.height, in.width}},
                    {"classes", in.num_classes},
                    {"parameters", model->parameter_count()},
                    {"reference_parameters", entry.reference_parameters},
                    {"prunable_parameters", prunable_count},
                    {"prunable_tensors", prunable}});
  }
  if (json) {
    fmt::print("{}\n", list.dump(2));
    return 0;
  }
  fmt::print("{:<20} {:>11} {:>11} {:>9}  {:<9}  {}\n", "model", "parameters", "prunable", "tensors", "input",
             "description");
  for (const auto& m : list) {
    const auto& in = m["input"];
    fmt::print("{:<20} {:>11} {:>11} {:>9}  {:<9}  {}\n", m["name"].get<std::string>(), m["parameters"].get<int64_t>(),
               m["prunable_parameters"].get<int64_t>(), m["prunable_tensors"].size(),
               fmt::format("{}x{}x{}", in[0].get<int64_t>(), in[1].get<int64_t>(), in[2].get<int64_t>()),
               m["description"].get<std::string>());
  }
  return 0;
}

}  // namespace st::cli
