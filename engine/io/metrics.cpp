// Run-directory writers (see metrics.h). Plain stdio with an fflush after every line: the files
// are small, and being readable while the run is still going (tail -f, a plotting script) matters
// more than batching writes.
#include "engine/io/metrics.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "engine/error.h"
#include "engine/io/safetensors.h"

namespace st::io {

namespace {

namespace fs = std::filesystem;
using FilePtr = std::unique_ptr<std::FILE, detail::FileCloser>;

std::string errno_text() { return std::strerror(errno); }

FilePtr open_for_writing(const char* what, const fs::path& path, bool append) {
  FilePtr file(std::fopen(path.c_str(), append ? "ab" : "wb"));
  if (!file) fail("{} {}: cannot open for writing ({})", what, path.string(), errno_text());
  return file;
}

void write_and_flush(const char* what, const fs::path& path, std::FILE* file,
                     const std::string& text) {
  if (std::fwrite(text.data(), 1, text.size(), file) != text.size() || std::fflush(file) != 0) {
    fail("{} {}: write failed ({})", what, path.string(), errno_text());
  }
}

std::uintmax_t existing_size(const fs::path& path) {
  std::error_code error;
  const std::uintmax_t size = fs::file_size(path, error);
  return error ? 0 : size;
}

// True when the file is non-empty and does not end in '\n', i.e. a crash tore its last line.
bool ends_mid_line(const fs::path& path) {
  if (existing_size(path) == 0) return false;
  FilePtr file(std::fopen(path.c_str(), "rb"));
  if (!file || std::fseek(file.get(), -1, SEEK_END) != 0) return false;
  return std::fgetc(file.get()) != '\n';
}

// RFC 4180: a field holding a separator, quote or line break is quoted, quotes doubled.
std::string csv_field(const std::string& value) {
  if (value.find_first_of(",\"\r\n") == std::string::npos) return value;
  std::string quoted = "\"";
  for (char c : value) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

std::string csv_line(const std::vector<std::string>& values) {
  std::vector<std::string> fields;
  fields.reserve(values.size());
  for (const std::string& value : values) fields.push_back(csv_field(value));
  return fmt::format("{}\n", fmt::join(fields, ","));
}

constexpr const char* kMetricsWhat = "metrics log";
constexpr const char* kSummaryWhat = "summary";

}  // namespace

MetricsLog::MetricsLog(const fs::path& path, bool append) : path_(path) {
  const bool terminate_torn_line = append && ends_mid_line(path);
  file_ = open_for_writing(kMetricsWhat, path, append);
  if (terminate_torn_line) write_and_flush(kMetricsWhat, path_, file_.get(), "\n");
}

void MetricsLog::write(const nlohmann::json& event) {
  if (!event.is_object()) {
    fail("{} {}: an event must be a JSON object, got {}", kMetricsWhat, path_.string(),
         event.type_name());
  }
  const std::string line =
      event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  write_and_flush(kMetricsWhat, path_, file_.get(), line);
}

SummaryCsv::SummaryCsv(const fs::path& path, std::vector<std::string> columns, bool append)
    : path_(path), columns_(std::move(columns)) {
  if (columns_.empty()) fail("{} {}: needs at least one column", kSummaryWhat, path_.string());
  const std::string header = csv_line(columns_);
  const bool has_content = append && existing_size(path_) > 0;
  if (has_content) {
    // Compare the exact header bytes: rows appended under a different header would be misread.
    std::string found(header.size(), '\0');
    FilePtr existing(std::fopen(path_.c_str(), "rb"));
    if (!existing) {
      fail("{} {}: cannot open to check its header ({})", kSummaryWhat, path_.string(),
           errno_text());
    }
    found.resize(std::fread(found.data(), 1, found.size(), existing.get()));
    if (found != header) {
      // Show the whole first line found (bounded), not just as many bytes as we expected.
      constexpr std::size_t kMaxShownChars = 512;
      std::string found_line;
      std::rewind(existing.get());
      for (int c = std::fgetc(existing.get()); c != EOF && c != '\n';
           c = std::fgetc(existing.get())) {
        if (found_line.size() == kMaxShownChars) {
          found_line += "...";
          break;
        }
        found_line += static_cast<char>(c);
      }
      fail("{} {}: existing header '{}' differs from the expected '{}'", kSummaryWhat,
           path_.string(), found_line, header.substr(0, header.size() - 1));
    }
  }
  const bool terminate_torn_line = has_content && ends_mid_line(path_);
  file_ = open_for_writing(kSummaryWhat, path_, append);
  if (terminate_torn_line) write_and_flush(kSummaryWhat, path_, file_.get(), "\n");
  if (!has_content) write_and_flush(kSummaryWhat, path_, file_.get(), header);
}

void SummaryCsv::write_row(const std::vector<std::string>& values) {
  if (values.size() != columns_.size()) {
    fail("{} {}: row has {} values but the header has {} columns ({})", kSummaryWhat,
         path_.string(), values.size(), columns_.size(), fmt::join(columns_, ","));
  }
  write_and_flush(kSummaryWhat, path_, file_.get(), csv_line(values));
}

void write_text_atomic(const fs::path& path, const std::string& text) {
  write_file_atomic(path, [&](const ByteSink& sink) { sink(text.data(), text.size()); });
}

}  // namespace st::io
