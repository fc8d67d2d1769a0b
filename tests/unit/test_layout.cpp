// The borders of ../shared/design.md, checked on the sources: engine/ includes no header of pruning/,
// schedules/ or models/. The trainer (engine/trainer*.{h,cpp}) is the one remaining exception, until the
// step-loop hooks of issue 18 move the method families out of it; the list below may only shrink.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

namespace fs = std::filesystem;

TEST_SUITE("unit") {
  TEST_CASE("engine/ includes nothing from pruning/, schedules/ or models/ (but the trainer, for now)") {
    const std::set<std::string> exceptions = {"engine/trainer.h", "engine/trainer.cpp", "engine/trainer_pruning.cpp",
                                              "engine/trainer_report.cpp"};
    const fs::path root(ST_SOURCE_DIR);
    int files = 0;
    for (const auto& entry : fs::recursive_directory_iterator(root / "engine")) {
      const std::string extension = entry.path().extension().string();
      if (extension != ".h" && extension != ".cpp" && extension != ".cu") continue;
      ++files;
      const std::string name = fs::relative(entry.path(), root).generic_string();
      std::ifstream in(entry.path());
      int line_number = 0;
      for (std::string line; std::getline(in, line);) {
        ++line_number;
        if (line.rfind("#include \"", 0) != 0) continue;
        const bool outside = line.find("\"pruning/") != std::string::npos ||
                             line.find("\"schedules/") != std::string::npos ||
                             line.find("\"models/") != std::string::npos;
        if (outside && exceptions.count(name) == 0) FAIL_CHECK(name << ":" << line_number << ": " << line);
      }
    }
    CHECK(files > 30);
    for (const std::string& name : exceptions) CHECK(fs::exists(root / name));  // the list stays true
  }
}
