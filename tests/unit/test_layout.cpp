// The borders of ../shared/design.md, checked on the sources: engine/ includes no header of pruning/,
// schedules/ or models/ (they plug into it: engine/plugins.h, engine/options.h), and names no method of
// theirs in a string comparison (the trainer asks the plug-ins instead of comparing names).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "engine/options.h"
#include "pruning/pruners.h"
#include "pruning/scores.h"

namespace fs = std::filesystem;

namespace {

// Every source file of engine/ (the CUDA kernels' .cu files included), with its lines.
template <class Visit>
int for_each_engine_line(const Visit& visit) {
  const fs::path root(ST_SOURCE_DIR);
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root / "engine")) {
    const std::string extension = entry.path().extension().string();
    if (extension != ".h" && extension != ".cpp" && extension != ".cu") continue;
    ++files;
    const std::string name = fs::relative(entry.path(), root).generic_string();
    std::ifstream in(entry.path());
    int line_number = 0;
    for (std::string line; std::getline(in, line);) visit(name, ++line_number, line);
  }
  return files;
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("engine/ includes nothing from pruning/, schedules/ or models/") {
    const int files = for_each_engine_line([](const std::string& name, int line_number, const std::string& line) {
      if (line.rfind("#include \"", 0) != 0) return;
      const bool outside = line.find("\"pruning/") != std::string::npos ||
                           line.find("\"schedules/") != std::string::npos ||
                           line.find("\"models/") != std::string::npos;
      if (outside) FAIL_CHECK(name << ":" << line_number << ": " << line);
    });
    CHECK(files > 30);
  }

  TEST_CASE("engine/ compares no name of a pruning method, score, schedule shape or cycle policy") {
    // the names the registries and the components' option tables know (the run's own options excepted)
    std::set<std::string> names;
    for (const auto& entry : st::pruning::pruner_registry()) names.insert(entry.name);
    for (const auto& score : st::pruning::score_methods()) names.insert(score.name);
    for (const st::Component& component : st::components())
      if (component.name != "run")
        for (const st::Option& option : component.options)
          for (const std::string& choice : option.choices)
            if (!choice.empty()) names.insert(choice);
    CHECK(names.count("rigl") == 1);
    CHECK(names.count("weight_rewind") == 1);
    CHECK(names.count("movement") == 1);
    for_each_engine_line([&](const std::string& name, int line_number, const std::string& line) {
      const std::string code = line.substr(0, line.find("//"));
      for (const std::string& method : names) {
        const std::string quoted = "\"" + method + "\"";
        for (const std::string& compared : {"== " + quoted, "!= " + quoted, quoted + " ==", quoted + " !="})
          if (code.find(compared) != std::string::npos)
            FAIL_CHECK(name << ":" << line_number << ": compares with \"" << method << "\": " << line);
      }
    });
  }
}
