// Run-directory writers: metrics.jsonl (one JSON object per logged event), summary.csv (one row
// per cycle under a fixed header) and whole text files written atomically (config.toml,
// report.md). Each log line is flushed as soon as it is written, so a run killed at any moment
// leaves every completed event readable and a resumed run can append where it stopped.
#pragma once

#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace st::io {

namespace detail {
struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};
}  // namespace detail

// metrics.jsonl. With append = false an existing file is replaced; with append = true new events
// go after the old ones (a torn last line from a crash is terminated first, so it stays one bad
// line instead of corrupting the next event too).
class MetricsLog {
 public:
  MetricsLog(const std::filesystem::path& path, bool append);
  // Writes `event` (a JSON object) as one line and flushes it. Strings that are not valid UTF-8
  // are written with U+FFFD replacements rather than failing the run over a log line.
  void write(const nlohmann::json& event);
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::unique_ptr<std::FILE, detail::FileCloser> file_;
};

// summary.csv (RFC 4180 quoting). The header is written when the file is created (missing,
// empty, or append = false); appending to a file whose header differs from `columns` throws,
// because rows would land under the wrong names.
class SummaryCsv {
 public:
  SummaryCsv(const std::filesystem::path& path, std::vector<std::string> columns, bool append);
  // Throws st::Error if values.size() differs from the column count. Flushed after each row.
  void write_row(const std::vector<std::string>& values);
  const std::vector<std::string>& columns() const { return columns_; }

 private:
  std::filesystem::path path_;
  std::vector<std::string> columns_;
  std::unique_ptr<std::FILE, detail::FileCloser> file_;
};

// Replaces `path` with `text` atomically (temp file + fsync + rename; see write_file_atomic).
void write_text_atomic(const std::filesystem::path& path, const std::string& text);

}  // namespace st::io
