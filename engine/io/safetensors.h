// Safetensors checkpoints: the standard format (huggingface/safetensors) so any reader can load
// our files and we can load theirs. Layout: an 8-byte little-endian u64 N, N bytes of JSON header
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "string value"}}
// then the data section; offsets are relative to its start and tensors tile it without gaps.
//
// Beyond the standard we add two guarantees a training run needs: writes are atomic (temp file +
// fsync + rename, so a crash mid-write never destroys the previous checkpoint), and the data
// section carries an FNV-1a-64 checksum in the metadata key "sparsetrain.checksum", so silent
// corruption is refused at load instead of resuming from garbage. Files without that key (written
// by other tools) load normally; the checksum is verified only when present.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace st::io {

enum class DType { F32, I32, I64, U8, U64 };

std::size_t dtype_size(DType dtype);  // bytes per element
std::string dtype_name(DType dtype);  // the safetensors spelling: "F32", "I32", "I64", "U8", "U64"

// Metadata key holding 16 lowercase hex digits of FNV-1a-64 over the data section. The writer
// sets it (overriding any value in SafetensorsFile::metadata); the reader verifies and removes it,
// so `metadata` always holds only what the caller put there.
inline constexpr const char* kChecksumKey = "sparsetrain.checksum";

struct TensorRecord {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // empty = scalar (one element)
  std::vector<uint8_t> bytes;  // little-endian, row-major; size = dtype_size * prod(shape)
};

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;
  std::vector<TensorRecord> tensors;  // written in this order; the reader returns data order
  std::string path;                   // filled by the reader, for error messages

  const TensorRecord* find(const std::string& name) const;  // nullptr when absent
  const TensorRecord& at(const std::string& name) const;    // throws st::Error naming it

  // Append a tensor, copying prod(shape) elements from `data` (which may be null when that is 0).
  void add_f32(const std::string& name, std::vector<int64_t> shape, const float* data);
  void add_i32(const std::string& name, std::vector<int64_t> shape, const int32_t* data);
  void add_i64(const std::string& name, std::vector<int64_t> shape, const int64_t* data);
  void add_u8(const std::string& name, std::vector<int64_t> shape, const uint8_t* data);
  void add_u64(const std::string& name, std::vector<int64_t> shape, const uint64_t* data);

  // The tensor's elements; throws st::Error naming file and tensor when absent or of another dtype.
  std::vector<float> f32(const std::string& name) const;
  std::vector<int32_t> i32(const std::string& name) const;
  std::vector<int64_t> i64(const std::string& name) const;
  std::vector<uint8_t> u8(const std::string& name) const;
  std::vector<uint64_t> u64(const std::string& name) const;
};

// Writes atomically: "<path>.tmp.<pid>" in the same directory, fflush + fsync, rename over path,
// fsync the directory. Throws st::Error naming the path (and tensor) for invalid records
// (byte count not matching dtype and shape, duplicate or empty names) or I/O failure; on any
// failure the previous file at `path` is untouched and the temp file is removed.
void write_safetensors(const std::filesystem::path& path, const SafetensorsFile& file);

// Validates the whole file before trusting any size in it; every problem is one st::Error line
// "checkpoint <path>: <problem>" (missing file, short file, header length beyond the file, bad
// JSON, malformed entries, unknown dtype, bad offsets, truncation or trailing bytes, checksum).
SafetensorsFile read_safetensors(const std::filesystem::path& path);

// The atomic-replace primitive shared by every io writer (checkpoints, config.toml, report.md).
// `produce` streams the contents through the sink it is given; the sink throws st::Error on a
// failed write. If `produce` throws, the temp file is removed and the exception propagates.
using ByteSink = std::function<void(const void* data, std::size_t size_bytes)>;
void write_file_atomic(const std::filesystem::path& path,
                       const std::function<void(const ByteSink& sink)>& produce);

}  // namespace st::io
