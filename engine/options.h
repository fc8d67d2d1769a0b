// Options described once (../shared/design.md, "Plug-in points"). Every component of a run (the engine's
// run options, the learning-rate schedules, each pruning method family) lists its options in one table:
// key, help, accepted values, and where the value lives in a TrainConfig (its type and default come from
// that field). The tables make the CLI flags of `train` (--KEY), the keys of TOML experiment files and of
// config.json (KEY), their reading and writing, the --help text and the choice checks; each component's
// validate() checks what needs more than one value, naming the flag.
//
// A component keeps its options in a struct of its own room (schedules::CyclePolicy, pruning::DstOptions,
// ...); a TrainConfig holds one block of each, by type: config.get<pruning::DstOptions>() (a block not yet
// set reads as the struct's defaults). engine/ thus knows no component's options.
#pragma once

#include <any>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <typeindex>
#include <variant>
#include <vector>

namespace st {

struct TrainConfig;

// Where one option's value lives (the field's type is the option's type).
using OptionRef = std::variant<bool*, int*, int64_t*, uint64_t*, float*, double*, std::string*, std::vector<int64_t>*,
                               std::vector<double>*>;

struct Option {
  std::string key;  // the flag without "--"; the TOML and config.json key
  std::string help;
  std::vector<std::string> choices;  // text options: the accepted values (empty: any text)
  std::function<OptionRef(TrainConfig&)> ref;
  bool transient = false;    // how a run starts, not what it computes: not in config.json
  bool takes_value = false;  // a bool flag given a value (--tf32 off), not a bare switch
};

// One component's table.
struct Component {
  std::string name;   // "run", "schedule", "imp", "dst", ...
  std::string title;  // the --help section
  std::vector<Option> options;
  std::function<void(const TrainConfig&)> validate;  // cross-option checks (may be empty)
};

// The components a binary knows: the engine's own ("run") first, then those registered (by
// st::install_components(), components/install.h), in registration order. Registering a name again
// replaces the earlier table.
void register_component(Component component);
const std::vector<Component>& components();
// Every option of every component, in that order; an option by key (nullptr when unknown).
std::vector<const Option*> all_options();
const Option* find_option(const std::string& key);

}  // namespace st
