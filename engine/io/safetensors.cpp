// Safetensors reader and writer (format and guarantees: see safetensors.h).
//
// The reader trusts nothing in the file until it has checked it against the file's real size:
// the header length is bounded by the file, every tensor's byte range by the data section, and
// only then are buffers allocated, so a corrupt header can never request an absurd allocation.
// Tensors must tile the data section exactly (no gaps, overlaps or trailing bytes), which is what
// the reference implementation also requires.
#include "engine/io/safetensors.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "engine/error.h"

namespace st::io {

// Tensor bytes are copied straight between memory and file; safetensors data is little-endian.
static_assert(std::endian::native == std::endian::little,
              "safetensors io assumes a little-endian host");

namespace {

namespace fs = std::filesystem;
// ordered_json keeps the header's key order, so tensors that share an offset (zero-size ones)
// come back in the order they were written.
using Json = nlohmann::ordered_json;

constexpr const char* kMetadataKey = "__metadata__";
constexpr std::size_t kHeaderLengthBytes = 8;
constexpr std::size_t kHeaderAlignmentBytes = 8;

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

// FNV-1a, 64-bit (Fowler–Noll–Vo): cheap, streaming, and enough to catch flipped or torn bytes;
// it is an integrity check, not a defence against deliberate tampering.
class Fnv1a64 {
 public:
  void update(const uint8_t* data, std::size_t size_bytes) {
    for (std::size_t i = 0; i < size_bytes; ++i) {
      hash_ ^= data[i];
      hash_ *= 0x100000001b3ULL;
    }
  }
  std::string hex() const { return fmt::format("{:016x}", hash_); }

 private:
  uint64_t hash_ = 0xcbf29ce484222325ULL;
};

// Errors are printed on one line by the CLI, and names/JSON excerpts from a corrupt file may hold
// anything, so control and non-ASCII bytes are shown escaped.
std::string printable_one_line(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      out += fmt::format("\\x{:02x}", byte);
    } else {
      out += c;
    }
  }
  return out;
}

// A JSON value as it appeared, shortened: enough to recognise, never a megabyte of shape.
std::string excerpt(const Json& value) {
  constexpr std::size_t kMaxChars = 60;
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > kMaxChars) text = text.substr(0, kMaxChars) + "...";
  return text;
}

template <typename... Args>
[[noreturn]] void fail_one_line(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(printable_one_line(fmt::format(format, std::forward<Args>(args)...)));
}

template <typename... Args>
[[noreturn]] void fail_checkpoint(const fs::path& path, fmt::format_string<Args...> format,
                                  Args&&... args) {
  fail_one_line("checkpoint {}: {}", path.string(),
                fmt::format(format, std::forward<Args>(args)...));
}

std::string errno_text() { return std::strerror(errno); }

std::optional<DType> parse_dtype(std::string_view name) {
  for (DType dtype : {DType::F32, DType::I32, DType::I64, DType::U8, DType::U64}) {
    if (dtype_name(dtype) == name) return dtype;
  }
  return std::nullopt;
}

// dtype_size * prod(dims), or nullopt if it overflows 64 bits (only a corrupt file gets there).
std::optional<uint64_t> checked_byte_count(const std::vector<uint64_t>& dims, DType dtype) {
  uint64_t bytes = dtype_size(dtype);
  for (uint64_t dim : dims) {
    if (dim != 0 && bytes > std::numeric_limits<uint64_t>::max() / dim) return std::nullopt;
    bytes *= dim;
  }
  return bytes;
}

// Same for a caller-supplied shape, which must also have no negative extent.
std::optional<uint64_t> checked_byte_count(const std::vector<int64_t>& shape, DType dtype) {
  std::vector<uint64_t> dims;
  dims.reserve(shape.size());
  for (int64_t extent : shape) {
    if (extent < 0) return std::nullopt;
    dims.push_back(static_cast<uint64_t>(extent));
  }
  return checked_byte_count(dims, dtype);
}

// --- SafetensorsFile helpers -----------------------------------------------------------------

std::string describe_source(const SafetensorsFile& file) {
  return file.path.empty() ? std::string("checkpoint") : "checkpoint " + file.path;
}

template <typename Element>
void add_tensor(SafetensorsFile& file, const std::string& name, DType dtype,
                std::vector<int64_t> shape, const Element* data) {
  static_assert(std::is_trivially_copyable_v<Element>);
  const std::optional<uint64_t> byte_count = checked_byte_count(shape, dtype);
  if (!byte_count) {
    fail_one_line("{}: tensor '{}' has invalid shape [{}]", describe_source(file), name,
                  fmt::join(shape, ", "));
  }
  TensorRecord record{name, dtype, std::move(shape), {}};
  record.bytes.resize(*byte_count);
  if (*byte_count > 0) std::memcpy(record.bytes.data(), data, *byte_count);
  file.tensors.push_back(std::move(record));
}

template <typename Element>
std::vector<Element> tensor_elements(const SafetensorsFile& file, const std::string& name,
                                     DType expected) {
  const TensorRecord& record = file.at(name);
  if (record.dtype != expected) {
    fail_one_line("{}: tensor '{}' is {}, expected {}", describe_source(file), name,
                  dtype_name(record.dtype), dtype_name(expected));
  }
  if (record.bytes.size() % sizeof(Element) != 0) {
    fail_one_line("{}: tensor '{}' holds {} bytes, not a whole number of {} elements",
                  describe_source(file), name, record.bytes.size(), dtype_name(expected));
  }
  std::vector<Element> elements(record.bytes.size() / sizeof(Element));
  if (!elements.empty()) std::memcpy(elements.data(), record.bytes.data(), record.bytes.size());
  return elements;
}

// --- reader ----------------------------------------------------------------------------------

// A header entry after validation, before its bytes are read.
struct TensorEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
};

TensorEntry parse_tensor_entry(const fs::path& path, const std::string& name, const Json& entry,
                               uint64_t data_size) {
  if (!entry.is_object()) {
    fail_checkpoint(path, "tensor '{}' entry is not a JSON object (found {})", name,
                    excerpt(entry));
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) fail_checkpoint(path, "tensor '{}' has no \"{}\"", name, key);
  }

  const Json& dtype_json = entry["dtype"];
  if (!dtype_json.is_string()) {
    fail_checkpoint(path, "tensor '{}' dtype must be a string, found {}", name,
                    excerpt(dtype_json));
  }
  const std::optional<DType> dtype = parse_dtype(dtype_json.get<std::string>());
  if (!dtype) {
    fail_checkpoint(path,
                    "tensor '{}' has unsupported dtype {} (supported: F32, I32, I64, U8, U64)",
                    name, excerpt(dtype_json));
  }

  const Json& shape_json = entry["shape"];
  std::vector<uint64_t> dims;
  bool shape_ok = shape_json.is_array();
  if (shape_ok) {
    for (const Json& extent : shape_json) {
      if (!extent.is_number_unsigned() ||
          extent.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        shape_ok = false;
        break;
      }
      dims.push_back(extent.get<uint64_t>());
    }
  }
  if (!shape_ok) {
    fail_checkpoint(path, "tensor '{}' shape must be an array of non-negative integers, found {}",
                    name, excerpt(shape_json));
  }

  const Json& offsets_json = entry["data_offsets"];
  if (!offsets_json.is_array() || offsets_json.size() != 2 ||
      !offsets_json[0].is_number_unsigned() || !offsets_json[1].is_number_unsigned()) {
    fail_checkpoint(path,
                    "tensor '{}' data_offsets must be [begin, end] non-negative integers, "
                    "found {}",
                    name, excerpt(offsets_json));
  }
  const auto begin = offsets_json[0].get<uint64_t>();
  const auto end = offsets_json[1].get<uint64_t>();
  if (begin > end) {
    fail_checkpoint(path, "tensor '{}' data_offsets [{}, {}] end before they begin", name, begin,
                    end);
  }
  if (end > data_size) {
    fail_checkpoint(path,
                    "tensor '{}' data_offsets [{}, {}] extend beyond the data section "
                    "({} bytes): file truncated?",
                    name, begin, end, data_size);
  }
  const std::optional<uint64_t> expected_bytes = checked_byte_count(dims, *dtype);
  if (!expected_bytes || end - begin != *expected_bytes) {
    fail_checkpoint(path,
                    "tensor '{}' data_offsets [{}, {}] span {} bytes but {} of shape [{}] "
                    "needs {}",
                    name, begin, end, end - begin, dtype_name(*dtype), fmt::join(dims, ", "),
                    expected_bytes ? fmt::to_string(*expected_bytes) : "more than 2^64");
  }

  std::vector<int64_t> shape(dims.begin(), dims.end());
  return TensorEntry{name, *dtype, std::move(shape), begin, end};
}

std::map<std::string, std::string> parse_metadata(const fs::path& path, const Json& metadata) {
  if (!metadata.is_object()) {
    fail_checkpoint(path, "\"{}\" must be an object of strings, found {}", kMetadataKey,
                    excerpt(metadata));
  }
  std::map<std::string, std::string> result;
  for (const auto& [key, value] : metadata.items()) {
    if (!value.is_string()) {
      fail_checkpoint(path, "metadata \"{}\" must be a string, found {}", key, excerpt(value));
    }
    result[key] = value.get<std::string>();
  }
  return result;
}

bool is_checksum_text(const std::string& text) {
  return text.size() == 16 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
         });
}

// --- writer ----------------------------------------------------------------------------------

void validate_records(const fs::path& path, const SafetensorsFile& file) {
  std::set<std::string_view> names;
  for (const TensorRecord& record : file.tensors) {
    if (record.name.empty() || record.name == kMetadataKey) {
      fail_checkpoint(path, "cannot write a tensor named '{}' (reserved or empty)", record.name);
    }
    if (!names.insert(record.name).second) {
      fail_checkpoint(path, "cannot write tensor '{}' twice", record.name);
    }
    const std::optional<uint64_t> expected_bytes = checked_byte_count(record.shape, record.dtype);
    if (!expected_bytes) {
      fail_checkpoint(path, "tensor '{}' has invalid shape [{}]", record.name,
                      fmt::join(record.shape, ", "));
    }
    if (record.bytes.size() != *expected_bytes) {
      fail_checkpoint(path, "tensor '{}' holds {} bytes but {} of shape [{}] needs {}", record.name,
                      record.bytes.size(), dtype_name(record.dtype), fmt::join(record.shape, ", "),
                      *expected_bytes);
    }
  }
}

// The JSON header, space-padded so the data section starts 8-byte aligned in the file (readers
// that map the file can then view tensors in place).
std::string build_header(const fs::path& path, const SafetensorsFile& file) {
  Fnv1a64 checksum;
  for (const TensorRecord& record : file.tensors) {
    checksum.update(record.bytes.data(), record.bytes.size());
  }
  Json metadata = Json::object();
  for (const auto& [key, value] : file.metadata) {
    if (key != kChecksumKey) metadata[key] = value;
  }
  metadata[kChecksumKey] = checksum.hex();

  Json header = Json::object();
  header[kMetadataKey] = std::move(metadata);
  uint64_t offset = 0;
  for (const TensorRecord& record : file.tensors) {
    const uint64_t end = offset + record.bytes.size();
    header[record.name] = {{"dtype", dtype_name(record.dtype)},
                           {"shape", record.shape},
                           {"data_offsets", {offset, end}}};
    offset = end;
  }

  std::string text;
  try {
    text = header.dump();
  } catch (const Json::exception& error) {
    fail_checkpoint(path, "a tensor name or metadata string is not valid UTF-8 ({})", error.what());
  }
  const std::size_t padded_size =
      (text.size() + kHeaderAlignmentBytes - 1) / kHeaderAlignmentBytes * kHeaderAlignmentBytes;
  text.resize(padded_size, ' ');
  return text;
}

}  // namespace

// --- public API ------------------------------------------------------------------------------

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return 4;
    case DType::I32:
      return 4;
    case DType::I64:
      return 8;
    case DType::U8:
      return 1;
    case DType::U64:
      return 8;
  }
  fail("dtype_size: invalid DType value {}", static_cast<int>(dtype));
}

std::string dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "F32";
    case DType::I32:
      return "I32";
    case DType::I64:
      return "I64";
    case DType::U8:
      return "U8";
    case DType::U64:
      return "U64";
  }
  fail("dtype_name: invalid DType value {}", static_cast<int>(dtype));
}

const TensorRecord* SafetensorsFile::find(const std::string& name) const {
  for (const TensorRecord& record : tensors) {
    if (record.name == name) return &record;
  }
  return nullptr;
}

const TensorRecord& SafetensorsFile::at(const std::string& name) const {
  if (const TensorRecord* record = find(name)) return *record;
  // Listing what is there turns a typo or a layout mismatch into a one-glance fix.
  constexpr std::size_t kMaxListed = 8;
  std::vector<std::string> listed;
  for (std::size_t i = 0; i < tensors.size() && i < kMaxListed; ++i) {
    listed.push_back(tensors[i].name);
  }
  const std::string more = tensors.size() > kMaxListed ? ", ..." : "";
  fail_one_line("{}: no tensor '{}' (it holds {} tensors: {}{})", describe_source(*this), name,
                tensors.size(), fmt::join(listed, ", "), more);
}

void SafetensorsFile::add_f32(const std::string& name, std::vector<int64_t> shape,
                              const float* data) {
  add_tensor(*this, name, DType::F32, std::move(shape), data);
}
void SafetensorsFile::add_i32(const std::string& name, std::vector<int64_t> shape,
                              const int32_t* data) {
  add_tensor(*this, name, DType::I32, std::move(shape), data);
}
void SafetensorsFile::add_i64(const std::string& name, std::vector<int64_t> shape,
                              const int64_t* data) {
  add_tensor(*this, name, DType::I64, std::move(shape), data);
}
void SafetensorsFile::add_u8(const std::string& name, std::vector<int64_t> shape,
                             const uint8_t* data) {
  add_tensor(*this, name, DType::U8, std::move(shape), data);
}
void SafetensorsFile::add_u64(const std::string& name, std::vector<int64_t> shape,
                              const uint64_t* data) {
  add_tensor(*this, name, DType::U64, std::move(shape), data);
}

std::vector<float> SafetensorsFile::f32(const std::string& name) const {
  return tensor_elements<float>(*this, name, DType::F32);
}
std::vector<int32_t> SafetensorsFile::i32(const std::string& name) const {
  return tensor_elements<int32_t>(*this, name, DType::I32);
}
std::vector<int64_t> SafetensorsFile::i64(const std::string& name) const {
  return tensor_elements<int64_t>(*this, name, DType::I64);
}
std::vector<uint8_t> SafetensorsFile::u8(const std::string& name) const {
  return tensor_elements<uint8_t>(*this, name, DType::U8);
}
std::vector<uint64_t> SafetensorsFile::u64(const std::string& name) const {
  return tensor_elements<uint64_t>(*this, name, DType::U64);
}

void write_file_atomic(const fs::path& path,
                       const std::function<void(const ByteSink& sink)>& produce) {
  // The pid keeps concurrent processes (sweep workers sharing a directory) off each other's temp
  // file; a stale temp from a killed process is harmless and overwritten by the next write.
  const fs::path temp_path = fs::path(path.string() + ".tmp." + std::to_string(::getpid()));
  FilePtr file(std::fopen(temp_path.c_str(), "wb"));
  if (!file)
    fail("{}: cannot create temp file {} ({})", path.string(), temp_path.string(), errno_text());
  try {
    const ByteSink sink = [&](const void* data, std::size_t size_bytes) {
      if (size_bytes == 0) return;
      if (std::fwrite(data, 1, size_bytes, file.get()) != size_bytes) {
        fail("{}: writing temp file {} failed ({})", path.string(), temp_path.string(),
             errno_text());
      }
    };
    produce(sink);
    // Data must be on disk before the rename makes it visible, or a crash could leave a
    // complete-looking name over incomplete contents.
    if (std::fflush(file.get()) != 0 || ::fsync(::fileno(file.get())) != 0) {
      fail("{}: flushing temp file {} failed ({})", path.string(), temp_path.string(),
           errno_text());
    }
    if (std::fclose(file.release()) != 0) {
      fail("{}: closing temp file {} failed ({})", path.string(), temp_path.string(), errno_text());
    }
    if (std::rename(temp_path.c_str(), path.c_str()) != 0) {
      fail("{}: renaming temp file {} over it failed ({})", path.string(), temp_path.string(),
           errno_text());
    }
  } catch (...) {
    file.reset();
    std::error_code ignored;
    fs::remove(temp_path, ignored);
    throw;
  }
  // The rename itself is durable only once the directory entry is synced.
  const fs::path directory = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const int directory_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY);
  if (directory_fd < 0) {
    fail("{}: written, but opening its directory to sync it failed ({})", path.string(),
         errno_text());
  }
  // Some filesystems cannot fsync a directory (EINVAL); there is nothing more to do on those.
  const bool synced = ::fsync(directory_fd) == 0 || errno == EINVAL;
  const std::string sync_error = synced ? "" : errno_text();
  ::close(directory_fd);
  if (!synced) {
    fail("{}: written, but syncing its directory failed ({})", path.string(), sync_error);
  }
}

void write_safetensors(const fs::path& path, const SafetensorsFile& file) {
  validate_records(path, file);
  const std::string header = build_header(path, file);
  uint8_t header_length[kHeaderLengthBytes];
  uint64_t length = header.size();
  for (uint8_t& byte : header_length) {  // little-endian u64
    byte = static_cast<uint8_t>(length & 0xff);
    length >>= 8;
  }
  write_file_atomic(path, [&](const ByteSink& sink) {
    sink(header_length, sizeof(header_length));
    sink(header.data(), header.size());
    for (const TensorRecord& record : file.tensors) sink(record.bytes.data(), record.bytes.size());
  });
}

SafetensorsFile read_safetensors(const fs::path& path) {
  FilePtr file(std::fopen(path.c_str(), "rb"));
  if (!file) fail_checkpoint(path, "cannot open ({})", errno_text());
  struct stat info {};
  if (::fstat(::fileno(file.get()), &info) != 0) {
    fail_checkpoint(path, "cannot stat ({})", errno_text());
  }
  if (!S_ISREG(info.st_mode)) fail_checkpoint(path, "not a regular file");
  const auto file_size = static_cast<uint64_t>(info.st_size);

  if (file_size < kHeaderLengthBytes) {
    fail_checkpoint(path, "file is {} bytes, shorter than the 8-byte header length (truncated?)",
                    file_size);
  }
  uint8_t length_bytes[kHeaderLengthBytes];
  if (std::fread(length_bytes, 1, kHeaderLengthBytes, file.get()) != kHeaderLengthBytes) {
    fail_checkpoint(path, "reading the header length failed ({})", errno_text());
  }
  uint64_t header_size = 0;
  for (std::size_t i = kHeaderLengthBytes; i-- > 0;)
    header_size = (header_size << 8) | length_bytes[i];
  if (header_size > file_size - kHeaderLengthBytes) {
    fail_checkpoint(path,
                    "header length {} exceeds the file ({} bytes; truncated or not a "
                    "safetensors file?)",
                    header_size, file_size);
  }

  std::string header_text(header_size, '\0');
  if (std::fread(header_text.data(), 1, header_size, file.get()) != header_size) {
    fail_checkpoint(path, "reading the {}-byte header failed (file truncated while reading?)",
                    header_size);
  }
  Json header;
  try {
    header = Json::parse(header_text);
  } catch (const Json::parse_error& error) {
    fail_checkpoint(path, "header is not valid JSON ({})", error.what());
  }
  if (!header.is_object()) {
    fail_checkpoint(path, "header is not a JSON object (found {})", excerpt(header));
  }

  const uint64_t data_size = file_size - kHeaderLengthBytes - header_size;
  SafetensorsFile result;
  result.path = path.string();
  std::vector<TensorEntry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      result.metadata = parse_metadata(path, value);
    } else {
      entries.push_back(parse_tensor_entry(path, key, value, data_size));
    }
  }

  std::optional<std::string> recorded_checksum;
  if (auto it = result.metadata.find(kChecksumKey); it != result.metadata.end()) {
    if (!is_checksum_text(it->second)) {
      fail_checkpoint(path, "metadata \"{}\" is '{}', expected 16 hex digits", kChecksumKey,
                      it->second);
    }
    recorded_checksum = it->second;
    result.metadata.erase(it);
  }

  // Tensors must tile the data section: then reading them in offset order reads it exactly once,
  // front to back, and the checksum over that stream is the checksum over the section.
  std::stable_sort(entries.begin(), entries.end(),
                   [](const TensorEntry& a, const TensorEntry& b) { return a.begin < b.begin; });
  uint64_t covered = 0;
  for (const TensorEntry& entry : entries) {
    if (entry.begin != covered) {
      fail_checkpoint(path,
                      "tensor '{}' data_offsets begin at {} but the previous tensor ends at "
                      "{} ({})",
                      entry.name, entry.begin, covered, entry.begin < covered ? "overlap" : "gap");
    }
    covered = entry.end;
  }
  if (covered != data_size) {
    fail_checkpoint(path,
                    "data section is {} bytes but its tensors cover {} (trailing bytes "
                    "after the last tensor)",
                    data_size, covered);
  }

  Fnv1a64 checksum;
  result.tensors.reserve(entries.size());
  for (TensorEntry& entry : entries) {
    TensorRecord record{std::move(entry.name), entry.dtype, std::move(entry.shape), {}};
    record.bytes.resize(entry.end - entry.begin);
    if (std::fread(record.bytes.data(), 1, record.bytes.size(), file.get()) !=
        record.bytes.size()) {
      fail_checkpoint(path, "reading tensor '{}' failed (file truncated while reading?)",
                      record.name);
    }
    checksum.update(record.bytes.data(), record.bytes.size());
    result.tensors.push_back(std::move(record));
  }
  if (recorded_checksum) {
    std::string recorded = *recorded_checksum;
    std::transform(recorded.begin(), recorded.end(), recorded.begin(),
                   [](char c) { return static_cast<char>(std::tolower(c)); });
    if (recorded != checksum.hex()) {
      fail_checkpoint(path,
                      "checksum mismatch: data section hashes to {} but the header records "
                      "{} (file corrupted)",
                      checksum.hex(), recorded);
    }
  }
  return result;
}

}  // namespace st::io
