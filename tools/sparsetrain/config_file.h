// TOML experiment files for `sparsetrain train` (toml++). The flags of `train` are the one table of
// options: every key of a file is the long name of a flag without its dashes (`model = "resnet20"`,
// `prune-rate = 0.2`, `augment = true`, `oracle-grid = [0.01, 0.1]`), and every flag is a key.
//   sparsetrain train --config exp.toml [flags]   the file's keys, then the flags (a flag given on the
//                                                 command line overrides the file's key)
//   sparsetrain train [flags] --print-config      the fully resolved file of those flags, nothing trained
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <string>
#include <vector>

namespace st::cli {

// Where a flag's value came from in a TOML file.
struct ConfigOrigin {
  std::string file;
  int64_t line = 0;
};

// The keys of `train` files: every option of the subcommand but --help, --config and --print-config.
std::vector<const CLI::Option*> config_options(const CLI::App& train);

// The arguments after `train` with `--config FILE` expanded: each key of the file as flag tokens before
// the command line's own, except the keys the command line gives. A file that cannot be read or parsed,
// an unknown key, a table, or a value of the wrong type is an st::Error "FILE:LINE: key 'KEY': ...".
// origins: flag name (without dashes) -> its place in the file.
std::vector<std::string> expand_config(const CLI::App& train, const std::vector<std::string>& args,
                                       std::map<std::string, ConfigOrigin>& origins);

// After parsing: every key with its resolved value (the command line's tokens, else the default), as TOML.
std::string resolved_config(CLI::App& train);

// An error message about a flag that came from a file, prefixed with its place ("FILE:LINE: key 'K': ...").
std::string locate(const std::string& message, const std::map<std::string, ConfigOrigin>& origins);

}  // namespace st::cli
