#include "tools/sparsetrain/config_file.h"

#define TOML_HEADER_ONLY 1
#define TOML_EXCEPTIONS 1
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "engine/error.h"

namespace st::cli {
namespace {

bool is_flag(const CLI::Option* o) { return o->get_expected_max() == 0; }  // a switch: no value
bool is_list(const CLI::Option* o) { return o->get_items_expected_max() > 1; }
// "INT", "UINT", "FLOAT", "TEXT" (before any validator's description)
std::string base_type(const CLI::Option* o) {
  const std::string full = o->get_type_name();
  return full.substr(0, full.find(':'));
}

// One TOML scalar as the token the flag takes; throws a message (without the place) on a wrong type.
std::string token_of(const toml::node& node, const std::string& type) {
  if (type == "INT" || type == "UINT") {
    if (const auto v = node.value_exact<int64_t>()) return std::to_string(*v);
    throw std::runtime_error("expects an integer");
  }
  if (type == "FLOAT") {
    if (const auto v = node.value_exact<int64_t>()) return std::to_string(*v);
    if (const auto v = node.value_exact<double>()) return fmt::format("{}", *v);  // shortest exact form
    throw std::runtime_error("expects a number");
  }
  if (const auto v = node.value_exact<std::string>()) return *v;
  throw std::runtime_error("expects a string");
}

}  // namespace

std::vector<const CLI::Option*> config_options(const CLI::App& train) {
  return train.get_options([](const CLI::Option* o) {
    return !o->get_lnames().empty() && o->get_lnames()[0] != "help" && o->get_lnames()[0] != "config" &&
           o->get_lnames()[0] != "print-config";
  });
}

std::vector<std::string> expand_config(const CLI::App& train, const std::vector<std::string>& args,
                                       std::map<std::string, ConfigOrigin>& origins) {
  std::string path;
  std::set<std::string> given;  // flags on the command line (without dashes)
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) continue;
    const std::string name = a.substr(2, a.find('=') == std::string::npos ? std::string::npos : a.find('=') - 2);
    if (name == "config") {
      if (a.find('=') != std::string::npos) {
        path = a.substr(a.find('=') + 1);
      } else if (i + 1 < args.size()) {
        path = args[i + 1];
      }
    }
    given.insert(name);
  }
  if (path.empty()) return args;
  if (!std::filesystem::is_regular_file(path)) fail("--config: {} is not a file", path);
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& begin = e.source().begin;
    fail("{}:{}: {}", path, begin.line, std::string(e.description()));
  } catch (const std::exception& e) {
    fail("--config: cannot read {}: {}", path, e.what());
  }
  std::map<std::string, const CLI::Option*> by_name;
  for (const CLI::Option* o : config_options(train)) by_name[o->get_lnames()[0]] = o;
  std::vector<std::string> expanded;
  for (auto&& [key, node] : table) {
    const std::string name(key.str());
    const auto line = static_cast<int64_t>(key.source().begin.line);
    const auto at = by_name.find(name);
    if (at == by_name.end())
      fail("{}:{}: unknown key '{}' (the keys are train's flags without '--'; `sparsetrain train --print-config` "
           "lists them)",
           path, line, name);
    if (given.count(name) > 0) continue;  // the command line overrides the file
    // --quiet and --progress are one setting: either on the command line overrides the file's other
    if ((name == "quiet" && given.count("progress") > 0) || (name == "progress" && given.count("quiet") > 0)) continue;
    origins[name] = {path, line};
    const CLI::Option* o = at->second;
    try {
      if (node.is_table()) throw std::runtime_error("is a table; the keys are flat, as the flags");
      if (is_flag(o)) {
        const auto v = node.value_exact<bool>();
        if (!v) throw std::runtime_error("is a switch: expects true or false");
        if (*v) expanded.push_back("--" + name);
        continue;
      }
      if (node.is_array()) {
        if (!is_list(o)) throw std::runtime_error("takes one value, not a list");
        const toml::array& items = *node.as_array();
        if (items.empty()) continue;
        expanded.push_back("--" + name);
        for (const toml::node& item : items) expanded.push_back(token_of(item, base_type(o)));
        continue;
      }
      expanded.push_back("--" + name);
      expanded.push_back(token_of(node, base_type(o)));
    } catch (const std::runtime_error& e) {
      fail("{}:{}: key '{}' {} (got a value of type {})", path, line, name, e.what(), [&] {
        std::ostringstream text;
        text << node.type();
        return text.str();
      }());
    }
  }
  expanded.insert(expanded.end(), args.begin(), args.end());
  return expanded;
}

namespace {

// A TOML basic string.
std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (const char ch : text) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(ch)));
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

// One value of a flag's type as TOML (numbers in their shortest exact form).
std::string toml_value(const std::string& type, const std::string& v) {
  if ((type == "INT" || type == "UINT") && !v.empty()) return v;  // decimal already (CLI11 or the variable)
  if (type == "FLOAT" && !v.empty()) {
    std::string number = fmt::format("{}", std::stod(v));
    if (number.find_first_of(".eEni") == std::string::npos) number += ".0";
    return number;
  }
  return quoted(v);
}

}  // namespace

std::string resolved_config(CLI::App& train) {
  std::map<std::string, std::string> lines;  // key -> TOML value, sorted by key
  for (CLI::Option* o : train.get_options()) {
    if (o->get_lnames().empty()) continue;
    const std::string name = o->get_lnames()[0];
    if (name == "help" || name == "config" || name == "print-config") continue;
    if (name == "quiet") {  // written as progress = "quiet" (its callback sets progress)
      lines[name] = "false";
      continue;
    }
    if (is_flag(o)) {
      bool on = false;
      if (o->count() > 0) {
        on = o->as<bool>();  // --augment=false is false
      } else {
        o->capture_default_str();
        on = o->get_default_str() == "true" || o->get_default_str() == "1";
      }
      lines[name] = on ? "true" : "false";
      continue;
    }
    const std::string type = base_type(o);
    std::vector<std::string> values;
    if (o->count() > 0) {  // the values as the flag read them (CLI11's conversions: 010 is 8, 0x80 is 128)
      if (type == "INT") {
        for (const int64_t v : o->as<std::vector<int64_t>>()) values.push_back(std::to_string(v));
      } else if (type == "UINT") {
        for (const uint64_t v : o->as<std::vector<uint64_t>>()) values.push_back(std::to_string(v));
      } else if (type == "FLOAT") {
        for (const double v : o->as<std::vector<double>>()) values.push_back(fmt::format("{}", v));
      } else {
        values = o->results();
      }
    } else {
      o->capture_default_str();
      std::string text = o->get_default_str();
      values.clear();
      if (is_list(o)) {  // "[a,b]" or "a,b"
        if (!text.empty() && text.front() == '[') text = text.substr(1, text.size() - 2);
        std::stringstream items(text);
        for (std::string item; std::getline(items, item, ',');)
          if (!item.empty()) values.push_back(item);
      } else {
        values.push_back(text);
      }
    }
    if (is_list(o)) {
      std::vector<std::string> items;
      for (const std::string& v : values) items.push_back(toml_value(type, v));
      lines[name] = "[" + fmt::format("{}", fmt::join(items, ", ")) + "]";
    } else if (values.size() == 1 && !(values[0].empty() && type != "TEXT")) {
      lines[name] = toml_value(type, values[0]);
    }
  }
  std::string out = "# sparsetrain train: every flag resolved (sparsetrain train --config FILE reads it back)\n";
  for (const auto& [key, value] : lines) out += key + " = " + value + "\n";
  return out;
}

std::string locate(const std::string& message, const std::map<std::string, ConfigOrigin>& origins) {
  // messages about a flag start with it: "--epochs: must be ..."
  if (message.rfind("--", 0) != 0) return message;
  const std::string name = message.substr(2, message.find_first_of(": ") - 2);
  const auto origin = origins.find(name);
  if (origin == origins.end()) return message;
  return fmt::format("{}:{}: key '{}': {}", origin->second.file, origin->second.line, name, message);
}

}  // namespace st::cli
