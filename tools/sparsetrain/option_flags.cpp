#include "tools/sparsetrain/option_flags.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <type_traits>

namespace st::cli {

void add_option_flags(CLI::App& app, TrainConfig& config, const std::vector<std::string>& names,
                      const std::vector<std::string>& keys) {
  for (const Component& component : components()) {
    if (!names.empty() && std::find(names.begin(), names.end(), component.name) == names.end()) continue;
    for (const Option& o : component.options) {
      if (!keys.empty() && std::find(keys.begin(), keys.end(), o.key) == keys.end()) continue;
      const std::string flag = "--" + o.key;
      std::string help = o.help;
      if (!o.choices.empty()) {
        std::vector<std::string> named;
        for (const std::string& choice : o.choices)
          if (!choice.empty()) named.push_back(choice);
        help += fmt::format(" ({})", fmt::join(named, " | "));
      }
      CLI::Option* added = std::visit(
          [&](auto* field) -> CLI::Option* {
            using T = std::remove_pointer_t<decltype(field)>;
            if constexpr (std::is_same_v<T, bool>) {
              if (o.takes_value) return app.add_option(flag, *field, help)->capture_default_str();
              return app.add_flag(flag, *field, help);
            } else if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<double>>) {
              return app.add_option(flag, *field, help)->delimiter(',');
            } else {
              return app.add_option(flag, *field, help)->capture_default_str();
            }
          },
          o.ref(config));
      added->group(component.title);
    }
  }
}

void add_silo_flag(CLI::App& app, ScheduleFlags& flags) {
  app.add_option("--silo", flags.silo_notation,
                 "SILO(offset, alpha, W, D1, D2, T) as in the paper: step shape, warmup W, x0.1 at D1, x0.01 at D2, "
                 "cycle length T (K = 1e3)")
      ->group("Learning rate (schedules/)");
}

}  // namespace st::cli
