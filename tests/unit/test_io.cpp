// Unit tests of the io room: safetensors checkpoints (exact round trips of every dtype, the
// standard on-disk layout checked by an independent parser, files from other writers, refusal of
// every kind of corruption with a one-line error naming the file, atomic replacement) and the
// run-directory writers (metrics.jsonl, summary.csv, atomic text files).
#include <doctest/doctest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/io/metrics.h"
#include "engine/io/safetensors.h"
#include "engine/io/export.h"
#include "engine/rng.h"
#include "models/registry.h"
#include "pruning/random_mask.h"

namespace fs = std::filesystem;
using st::io::DType;
using st::io::SafetensorsFile;
using st::io::TensorRecord;

namespace {

// A scratch directory per test case, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("sparsetrain_test_io_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  fs::path operator/(const std::string& name) const { return path_ / name; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::string read_text(const fs::path& path) {
  const std::vector<uint8_t> bytes = read_bytes(path);
  return {bytes.begin(), bytes.end()};
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

uint64_t read_u64_le(const std::vector<uint8_t>& bytes, std::size_t at) {
  uint64_t value = 0;
  for (std::size_t i = 0; i < 8; ++i) value |= uint64_t{bytes[at + i]} << (8 * i);
  return value;
}

void put_u64_le(std::vector<uint8_t>& bytes, std::size_t at, uint64_t value) {
  for (std::size_t i = 0; i < 8; ++i) bytes[at + i] = static_cast<uint8_t>(value >> (8 * i));
}

// What another tool would write: length, header exactly as given (no padding), data.
std::vector<uint8_t> standard_file_bytes(const std::string& header,
                                         const std::vector<uint8_t>& data) {
  std::vector<uint8_t> bytes(8 + header.size() + data.size());
  put_u64_le(bytes, 0, header.size());
  std::copy(header.begin(), header.end(), bytes.begin() + 8);
  std::copy(data.begin(), data.end(), bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header.size()));
  return bytes;
}

template <typename T>
std::vector<uint8_t> as_bytes(const std::vector<T>& values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(T));
  if (!bytes.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

// Independent FNV-1a-64, so the test does not just trust the writer's own hash.
std::string fnv1a64_hex(const uint8_t* data, std::size_t size) {
  uint64_t hash = 14695981039346656037ULL;
  for (std::size_t i = 0; i < size; ++i) {
    hash ^= data[i];
    hash *= 1099511628211ULL;
  }
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

const std::vector<float> kFloats = {0.1f,
                                    -0.0f,
                                    std::numeric_limits<float>::denorm_min(),
                                    std::numeric_limits<float>::infinity(),
                                    -std::numeric_limits<float>::max(),
                                    std::bit_cast<float>(0x7fc00123u)};  // NaN with payload
const std::vector<int32_t> kInt32s = {std::numeric_limits<int32_t>::min(), -7, 0,
                                      std::numeric_limits<int32_t>::max()};
const std::vector<int64_t> kInt64s = {std::numeric_limits<int64_t>::min(), -1,
                                      std::numeric_limits<int64_t>::max()};
const std::vector<uint8_t> kBytes = {0, 1, 255, 128, 7};
const std::vector<uint64_t> kUint64s = {0, 1, std::numeric_limits<uint64_t>::max(),
                                        0x9E3779B97F4A7C15ULL};
const int64_t kStep = 123456789012345LL;

SafetensorsFile sample_file() {
  SafetensorsFile file;
  file.metadata = {
      {"format", "sparsetrain-checkpoint"}, {"epoch", "12"}, {"note", "λ ✓, \"q\""}};
  file.add_f32("conv1.weight", {2, 3}, kFloats.data());
  file.add_i32("counts", {2, 2}, kInt32s.data());
  file.add_i64("history", {3}, kInt64s.data());
  file.add_i64("step", {}, &kStep);   // scalar
  file.add_u8("conv1.weight_mask", {5}, kBytes.data());
  file.add_u64("rng.state", {4}, kUint64s.data());
  file.add_f32("empty", {0, 3}, nullptr);
  return file;
}

// Reads `path`, which must be refused, and returns the message.
std::string refusal(const fs::path& path) {
  try {
    st::io::read_safetensors(path);
  } catch (const st::Error& error) {
    return error.what();
  }
  FAIL("read_safetensors accepted a bad file: " << path);
  return {};
}

void check_refused(const fs::path& path, const std::string& keyword) {
  const std::string message = refusal(path);
  INFO("message: " << message);
  CHECK(message.rfind("checkpoint " + path.string() + ": ", 0) == 0);
  CHECK(message.find(keyword) != std::string::npos);
  CHECK(message.find('\n') == std::string::npos);
}

// A sample file written to disk, with its bytes and the header length, for corruption tests.
struct WrittenSample {
  std::vector<uint8_t> bytes;
  std::size_t header_size;
  std::size_t data_start;
};

WrittenSample write_sample(const fs::path& path) {
  st::io::write_safetensors(path, sample_file());
  WrittenSample sample;
  sample.bytes = read_bytes(path);
  sample.header_size = read_u64_le(sample.bytes, 0);
  sample.data_start = 8 + sample.header_size;
  return sample;
}

template <typename Function>
std::string error_of(Function&& function) {
  try {
    function();
  } catch (const st::Error& error) {
    return error.what();
  }
  FAIL("expected st::Error");
  return {};
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_SUITE("unit") {

TEST_CASE("io: dtype sizes and names follow the safetensors spelling") {
  CHECK(st::io::dtype_size(DType::F32) == 4);
  CHECK(st::io::dtype_size(DType::I32) == 4);
  CHECK(st::io::dtype_size(DType::I64) == 8);
  CHECK(st::io::dtype_size(DType::U8) == 1);
  CHECK(st::io::dtype_size(DType::U64) == 8);
  CHECK(st::io::dtype_name(DType::F32) == "F32");
  CHECK(st::io::dtype_name(DType::I32) == "I32");
  CHECK(st::io::dtype_name(DType::I64) == "I64");
  CHECK(st::io::dtype_name(DType::U8) == "U8");
  CHECK(st::io::dtype_name(DType::U64) == "U64");
}

TEST_CASE("io: safetensors round trip keeps every dtype, value, shape, order and metadata") {
  TempDir dir;
  const fs::path path = dir / "ckpt.safetensors";
  const SafetensorsFile original = sample_file();
  st::io::write_safetensors(path, original);
  const SafetensorsFile loaded = st::io::read_safetensors(path);

  CHECK(loaded.path == path.string());
  CHECK(loaded.metadata == original.metadata);   // the checksum key is verified and removed
  REQUIRE(loaded.tensors.size() == original.tensors.size());
  for (std::size_t i = 0; i < original.tensors.size(); ++i) {
    const TensorRecord& want = original.tensors[i];
    const TensorRecord& got = loaded.tensors[i];
    INFO("tensor " << want.name);
    CHECK(got.name == want.name);
    CHECK(got.dtype == want.dtype);
    CHECK(got.shape == want.shape);
    CHECK(got.bytes == want.bytes);   // bit-exact, NaN payload and -0.0 included
  }

  const std::vector<float> floats = loaded.f32("conv1.weight");
  REQUIRE(floats.size() == 6);
  CHECK(floats[0] == 0.1f);
  CHECK(std::signbit(floats[1]));
  CHECK(floats[1] == 0.0f);
  CHECK(floats[2] == std::numeric_limits<float>::denorm_min());
  CHECK(floats[3] == std::numeric_limits<float>::infinity());
  CHECK(floats[4] == -std::numeric_limits<float>::max());
  CHECK(std::bit_cast<uint32_t>(floats[5]) == 0x7fc00123u);
  CHECK(loaded.i32("counts") == kInt32s);
  CHECK(loaded.i64("history") == kInt64s);
  CHECK(loaded.i64("step") == std::vector<int64_t>{kStep});
  CHECK(loaded.at("step").shape.empty());
  CHECK(loaded.u8("conv1.weight_mask") == kBytes);
  CHECK(loaded.u64("rng.state") == kUint64s);
  CHECK(loaded.f32("empty").empty());
  CHECK(loaded.at("empty").shape == std::vector<int64_t>{0, 3});
}

TEST_CASE("io: safetensors layout is standard and the data section is 8-byte aligned") {
  TempDir dir;
  // Names of every length mod 8 make the unpadded header hit every remainder.
  for (int name_length = 1; name_length <= 9; ++name_length) {
    const fs::path path = dir / ("aligned_" + std::to_string(name_length) + ".safetensors");
    SafetensorsFile file;
    const std::vector<float> weights = {1.5f, -2.25f, 3.0f};
    const std::vector<uint64_t> state = {42, 7};
    file.add_f32(std::string(static_cast<std::size_t>(name_length), 'w'), {3}, weights.data());
    file.add_u64("state", {2}, state.data());
    st::io::write_safetensors(path, file);

    // Parse it by hand, as a minimal reader in any language would.
    const std::vector<uint8_t> bytes = read_bytes(path);
    const uint64_t header_size = read_u64_le(bytes, 0);
    INFO("name length " << name_length << ", header " << header_size << " bytes");
    CHECK((8 + header_size) % 8 == 0);
    REQUIRE(8 + header_size + 12 + 16 == bytes.size());
    CHECK(bytes[8] == '{');   // the reference reader requires the header to start with '{'
    const std::string header_text(bytes.begin() + 8, bytes.begin() + 8 + header_size);
    const auto header = nlohmann::json::parse(header_text);
    const std::string weight_name(static_cast<std::size_t>(name_length), 'w');
    CHECK(header[weight_name]["dtype"] == "F32");
    CHECK(header[weight_name]["shape"] == nlohmann::json::array({3}));
    CHECK(header[weight_name]["data_offsets"] == nlohmann::json::array({0, 12}));
    CHECK(header["state"]["dtype"] == "U64");
    CHECK(header["state"]["data_offsets"] == nlohmann::json::array({12, 28}));
    const std::size_t data_start = 8 + header_size;
    float first_weight = 0;
    std::memcpy(&first_weight, bytes.data() + data_start, 4);
    CHECK(first_weight == 1.5f);
    CHECK(read_u64_le(bytes, data_start + 12) == 42);
    CHECK(header["__metadata__"][st::io::kChecksumKey] ==
          fnv1a64_hex(bytes.data() + data_start, 28));
  }
}

TEST_CASE("io: safetensors from another writer (no checksum, no padding, any key order) load") {
  TempDir dir;
  const std::vector<float> weights = {0.5f, -1.0f, 2.0f};
  const std::vector<int64_t> indices = {-3, 9000000000LL};
  std::vector<uint8_t> data = as_bytes(weights);
  const std::vector<uint8_t> index_bytes = as_bytes(indices);
  data.insert(data.end(), index_bytes.begin(), index_bytes.end());

  SUBCASE("compact header with metadata listed last") {
    const fs::path path = dir / "other.safetensors";
    const std::string header =
        R"({"b":{"dtype":"I64","shape":[2],"data_offsets":[12,28]},)"
        R"("a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"__metadata__":{"format":"pt"}})";
    REQUIRE(header.size() % 8 != 0);   // unaligned on purpose: padding is optional
    write_bytes(path, standard_file_bytes(header, data));
    const SafetensorsFile loaded = st::io::read_safetensors(path);
    CHECK(loaded.metadata == std::map<std::string, std::string>{{"format", "pt"}});
    REQUIRE(loaded.tensors.size() == 2);
    CHECK(loaded.tensors[0].name == "a");   // data order, not header order
    CHECK(loaded.tensors[1].name == "b");
    CHECK(loaded.f32("a") == weights);
    CHECK(loaded.i64("b") == indices);
    CHECK(loaded.at("b").shape == std::vector<int64_t>{2});
  }
  SUBCASE("pretty-printed header without metadata") {
    const fs::path path = dir / "pretty.safetensors";
    const std::string header =
        "{\n  \"a\": {\"dtype\": \"F32\", \"shape\": [3, 1], \"data_offsets\": [0, 12]},\n"
        "  \"b\": {\"data_offsets\": [12, 28], \"shape\": [1, 2], \"dtype\": \"I64\"}\n}   ";
    write_bytes(path, standard_file_bytes(header, data));
    const SafetensorsFile loaded = st::io::read_safetensors(path);
    CHECK(loaded.metadata.empty());
    CHECK(loaded.f32("a") == weights);
    CHECK(loaded.at("a").shape == std::vector<int64_t>{3, 1});
    CHECK(loaded.i64("b") == indices);
  }
  SUBCASE("an empty file of tensors") {
    const fs::path path = dir / "empty.safetensors";
    write_bytes(path, standard_file_bytes("{}", {}));
    const SafetensorsFile loaded = st::io::read_safetensors(path);
    CHECK(loaded.tensors.empty());
    CHECK(loaded.metadata.empty());
  }
}

TEST_CASE("io: safetensors readable by the Python safetensors library (when installed)") {
  if (std::system("/usr/bin/python3 -c 'import safetensors.numpy' >/dev/null 2>&1") != 0) {
    MESSAGE("skipped: /usr/bin/python3 cannot import safetensors");
    return;
  }
  TempDir dir;
  const fs::path path = dir / "for_python.safetensors";
  st::io::write_safetensors(path, sample_file());
  const std::string script =
      "import sys\n"
      "import numpy as np\n"
      "from safetensors.numpy import load_file\n"
      "from safetensors import safe_open\n"
      "t = load_file(sys.argv[1])\n"
      "assert t['conv1.weight'].shape == (2, 3) and t['conv1.weight'][0, 0] == np.float32(0.1)\n"
      "assert t['counts'].tolist() == [[-2147483648, -7], [0, 2147483647]]\n"
      "assert t['step'].shape == () and int(t['step']) == 123456789012345\n"
      "assert t['conv1.weight_mask'].tolist() == [0, 1, 255, 128, 7]\n"
      "assert t['rng.state'].tolist()[2] == 2**64 - 1\n"
      "assert t['empty'].shape == (0, 3)\n"
      "with safe_open(sys.argv[1], 'np') as f: assert f.metadata()['epoch'] == '12'\n";
  const fs::path script_path = dir / "check.py";
  std::ofstream(script_path) << script;
  const std::string command = "/usr/bin/python3 " + script_path.string() + " " + path.string();
  CHECK(std::system(command.c_str()) == 0);
}

TEST_CASE("io: safetensors refuses a missing, short or truncated file, naming it") {
  TempDir dir;
  SUBCASE("missing") { check_refused(dir / "absent.safetensors", "cannot open"); }
  SUBCASE("a directory") { check_refused(dir.path(), "not a regular file"); }

  const fs::path good = dir / "good.safetensors";
  const WrittenSample sample = write_sample(good);
  const fs::path cut = dir / "cut.safetensors";
  SUBCASE("shorter than the length field") {
    for (std::size_t length : {0, 3, 7}) {
      write_bytes(cut, {sample.bytes.begin(), sample.bytes.begin() + static_cast<long>(length)});
      check_refused(cut, "shorter than the 8-byte header length");
    }
  }
  SUBCASE("cut inside the header") {
    for (std::size_t length : {std::size_t{8}, 8 + sample.header_size / 2, sample.data_start - 1}) {
      write_bytes(cut, {sample.bytes.begin(), sample.bytes.begin() + static_cast<long>(length)});
      check_refused(cut, "header length");
    }
  }
  SUBCASE("cut inside the data") {
    const std::size_t data_size = sample.bytes.size() - sample.data_start;
    for (std::size_t length : {sample.data_start, sample.data_start + 1,
                               sample.data_start + data_size / 2, sample.bytes.size() - 1}) {
      write_bytes(cut, {sample.bytes.begin(), sample.bytes.begin() + static_cast<long>(length)});
      check_refused(cut, "truncated");
    }
  }
  SUBCASE("every possible cut is refused") {
    for (std::size_t length = 0; length < sample.bytes.size(); ++length) {
      write_bytes(cut, {sample.bytes.begin(), sample.bytes.begin() + static_cast<long>(length)});
      INFO("cut at " << length);
      CHECK(contains(refusal(cut), cut.string()));
    }
  }
  SUBCASE("trailing bytes") {
    std::vector<uint8_t> longer = sample.bytes;
    longer.push_back(0);
    write_bytes(cut, longer);
    check_refused(cut, "trailing bytes");
  }
}

TEST_CASE("io: safetensors detects flipped data bytes through the checksum") {
  TempDir dir;
  const fs::path path = dir / "flip.safetensors";
  const WrittenSample sample = write_sample(path);
  for (std::size_t at : {sample.data_start, sample.data_start + 17, sample.bytes.size() - 1}) {
    std::vector<uint8_t> corrupted = sample.bytes;
    corrupted[at] ^= 0x01;
    write_bytes(path, corrupted);
    INFO("flipped byte " << at);
    check_refused(path, "checksum mismatch");
  }
  std::vector<uint8_t> restored = sample.bytes;
  write_bytes(path, restored);
  CHECK(st::io::read_safetensors(path).u64("rng.state") == kUint64s);
}

TEST_CASE("io: safetensors refuses a bad header length or a broken header") {
  TempDir dir;
  const fs::path path = dir / "bad.safetensors";
  const WrittenSample sample = write_sample(path);

  SUBCASE("header length one past the file") {
    std::vector<uint8_t> bytes = sample.bytes;
    put_u64_le(bytes, 0, bytes.size() - 8 + 1);
    write_bytes(path, bytes);
    check_refused(path, "header length");
  }
  SUBCASE("absurd header length is refused without allocating it") {
    std::vector<uint8_t> bytes = sample.bytes;
    put_u64_le(bytes, 0, std::numeric_limits<uint64_t>::max());
    write_bytes(path, bytes);
    check_refused(path, "exceeds the file");
  }
  SUBCASE("broken JSON in a written file") {
    std::vector<uint8_t> bytes = sample.bytes;
    bytes[8 + sample.header_size / 2] = '\n';   // also checks the message stays one line
    bytes[8 + sample.header_size / 2 + 1] = '{';
    write_bytes(path, bytes);
    check_refused(path, "not valid JSON");
  }
  SUBCASE("JSON cut short") {
    write_bytes(path, standard_file_bytes(R"({"a": {"dtype": "F32",)", {}));
    check_refused(path, "not valid JSON");
  }
  SUBCASE("not an object") {
    write_bytes(path, standard_file_bytes("[1, 2, 3]", {}));
    check_refused(path, "not a JSON object");
  }
  SUBCASE("tensor entry not an object") {
    write_bytes(path, standard_file_bytes(R"({"a": 5})", {}));
    check_refused(path, "tensor 'a' entry is not a JSON object");
  }
}

TEST_CASE("io: safetensors refuses malformed tensor entries, naming the tensor") {
  TempDir dir;
  const fs::path path = dir / "entries.safetensors";
  const std::vector<uint8_t> data(12, 0);
  struct Case {
    const char* header;
    const char* keyword;
  };
  const Case cases[] = {
      {R"({"w": {"shape": [3], "data_offsets": [0, 12]}})", "tensor 'w' has no \"dtype\""},
      {R"({"w": {"dtype": "F32", "data_offsets": [0, 12]}})", "tensor 'w' has no \"shape\""},
      {R"({"w": {"dtype": "F32", "shape": [3]}})", "tensor 'w' has no \"data_offsets\""},
      {R"({"w": {"dtype": "F16", "shape": [6], "data_offsets": [0, 12]}})",
       "unsupported dtype \"F16\""},
      {R"({"w": {"dtype": 4, "shape": [3], "data_offsets": [0, 12]}})", "dtype must be a string"},
      {R"({"w": {"dtype": "F32", "shape": [-3], "data_offsets": [0, 12]}})",
       "shape must be an array of non-negative integers"},
      {R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 12]}})",
       "shape must be an array"},
      {R"({"w": {"dtype": "F32", "shape": 3, "data_offsets": [0, 12]}})",
       "shape must be an array"},
      {R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0]}})",
       "data_offsets must be [begin, end]"},
      {R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [-4, 12]}})",
       "data_offsets must be [begin, end]"},
      {R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 1000]}})",
       "extend beyond the data section"},
      {R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [12, 0]}})",
       "end before they begin"},
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 12]}})",
       "data_offsets [0, 12] span 12 bytes but F32 of shape [2] needs 8"},
      {R"({"w": {"dtype": "U8", "shape": [4611686018427387904, 4611686018427387904],)"
       R"( "data_offsets": [0, 12]}})",
       "needs more than 2^64"},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},)"
       R"( "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
       "tensor 'b' data_offsets begin at 8 but the previous tensor ends at 4 (gap)"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
       R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
       "(overlap)"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", "trailing bytes"},
      {R"({"__metadata__": {"epoch": 3}})", "metadata \"epoch\" must be a string"},
      {R"({"__metadata__": [1]})", "\"__metadata__\" must be an object of strings"},
      {R"({"__metadata__": {"sparsetrain.checksum": "xyz"},)"
       R"( "w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}})",
       "expected 16 hex digits"},
      {R"({"__metadata__": {"sparsetrain.checksum": "0123456789abcdef"},)"
       R"( "w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}})",
       "checksum mismatch"},
  };
  for (const Case& bad : cases) {
    INFO("header: " << bad.header);
    write_bytes(path, standard_file_bytes(bad.header, data));
    check_refused(path, bad.keyword);
  }
}

TEST_CASE("io: safetensors lookups name the file and the tensor") {
  TempDir dir;
  const fs::path path = dir / "lookup.safetensors";
  st::io::write_safetensors(path, sample_file());
  const SafetensorsFile loaded = st::io::read_safetensors(path);
  CHECK(loaded.find("counts") == &loaded.tensors[1]);
  CHECK(loaded.find("nope") == nullptr);

  const std::string missing = error_of([&] { loaded.at("fc.bias"); });
  CHECK(contains(missing, "checkpoint " + path.string()));
  CHECK(contains(missing, "no tensor 'fc.bias'"));
  CHECK(contains(missing, "conv1.weight"));   // lists what is there
  const std::string wrong_dtype = error_of([&] { loaded.f32("counts"); });
  CHECK(contains(wrong_dtype, path.string()));
  CHECK(contains(wrong_dtype, "tensor 'counts' is I32, expected F32"));
  CHECK(contains(error_of([&] { loaded.u64("history"); }), "is I64, expected U64"));

  const SafetensorsFile in_memory = sample_file();
  CHECK(error_of([&] { in_memory.at("x"); }).rfind("checkpoint: no tensor 'x'", 0) == 0);
  SafetensorsFile builder;
  CHECK(contains(error_of([&] { builder.add_f32("bad", {2, -1}, nullptr); }),
                 "tensor 'bad' has invalid shape [2, -1]"));
}

TEST_CASE("io: write_safetensors refuses inconsistent records and leaves no file") {
  TempDir dir;
  const fs::path path = dir / "refused.safetensors";
  SafetensorsFile file;
  file.tensors.push_back(TensorRecord{"w", DType::F32, {2, 2}, std::vector<uint8_t>(12)});
  const std::string short_bytes = error_of([&] { st::io::write_safetensors(path, file); });
  CHECK(contains(short_bytes, path.string()));
  CHECK(contains(short_bytes, "tensor 'w' holds 12 bytes but F32 of shape [2, 2] needs 16"));

  file.tensors[0].bytes.resize(16);
  file.tensors.push_back(file.tensors[0]);
  CHECK(contains(error_of([&] { st::io::write_safetensors(path, file); }),
                 "cannot write tensor 'w' twice"));
  file.tensors[1].name = "__metadata__";
  CHECK(contains(error_of([&] { st::io::write_safetensors(path, file); }), "reserved"));
  CHECK(fs::is_empty(dir.path()));   // nothing written, no temp file left
}

TEST_CASE("io: an interrupted write leaves the previous checkpoint intact") {
  TempDir dir;
  const fs::path path = dir / "resume.safetensors";
  const std::vector<float> old_weights = {1.0f, 2.0f};
  const std::vector<float> new_weights = {3.0f, 4.0f, 5.0f};
  SafetensorsFile old_file;
  old_file.add_f32("w", {2}, old_weights.data());
  st::io::write_safetensors(path, old_file);

  // A crashed writer's leftovers: temp files from another process and from this pid.
  const fs::path stale_other = dir / "resume.safetensors.tmp.999999";
  const fs::path stale_ours = dir / ("resume.safetensors.tmp." + std::to_string(::getpid()));
  write_bytes(stale_other, {1, 2, 3});
  write_bytes(stale_ours, std::vector<uint8_t>(100, 0xab));
  CHECK(st::io::read_safetensors(path).f32("w") == old_weights);

  // A write that dies midway (the producer throws after some bytes) changes nothing either.
  CHECK_THROWS_AS(st::io::write_file_atomic(path,
                                            [](const st::io::ByteSink& sink) {
                                              sink("partial", 7);
                                              throw std::runtime_error("disk pulled");
                                            }),
                  std::runtime_error);
  CHECK(st::io::read_safetensors(path).f32("w") == old_weights);
  CHECK_FALSE(fs::exists(stale_ours));   // the failed write removed its temp file

  SafetensorsFile new_file;
  new_file.add_f32("w", {3}, new_weights.data());
  st::io::write_safetensors(path, new_file);
  CHECK(st::io::read_safetensors(path).f32("w") == new_weights);
  CHECK_FALSE(fs::exists(stale_ours));   // renamed into place
  CHECK(fs::exists(stale_other));        // another process's temp is not ours to delete

  const std::string no_directory = error_of(
      [&] { st::io::write_safetensors(dir / "missing_dir" / "x.safetensors", new_file); });
  CHECK(contains(no_directory, (dir / "missing_dir" / "x.safetensors").string()));
}

TEST_CASE("io: metrics.jsonl holds one parseable JSON object per line") {
  TempDir dir;
  const fs::path path = dir / "metrics.jsonl";
  {
    st::io::MetricsLog log(path, /*append=*/false);
    log.write({{"event", "step"}, {"iter", 1}, {"loss", 2.5}, {"lr", 0.1}});
    log.write({{"event", "step"}, {"iter", 2}, {"loss", 1.25}, {"note", "a\nb"}});
    // Flushed per line: readable before the log is closed.
    CHECK(lines_of(read_text(path)).size() == 2);
  }
  {
    st::io::MetricsLog log(path, /*append=*/true);
    log.write({{"event", "cycle_end"}, {"cycle", 0}, {"sparsity", 0.5}});
    CHECK(contains(error_of([&] { log.write(nlohmann::json::array({1, 2})); }), path.string()));
  }
  std::vector<std::string> lines = lines_of(read_text(path));
  REQUIRE(lines.size() == 3);
  const auto first = nlohmann::json::parse(lines[0]);
  CHECK(first["iter"] == 1);
  CHECK(first["loss"] == 2.5);
  CHECK(first["lr"] == 0.1);
  CHECK(nlohmann::json::parse(lines[1])["note"] == "a\nb");
  CHECK(nlohmann::json::parse(lines[2])["sparsity"] == 0.5);

  // A crash mid-line is terminated on reopen, so the next event is still its own line.
  {
    std::ofstream(path, std::ios::app) << R"({"event": "st)";
    st::io::MetricsLog log(path, /*append=*/true);
    log.write({{"event", "resumed"}});
  }
  lines = lines_of(read_text(path));
  REQUIRE(lines.size() == 5);
  CHECK(nlohmann::json::parse(lines[4])["event"] == "resumed");

  {
    st::io::MetricsLog log(path, /*append=*/false);   // a fresh run replaces the log
    log.write({{"event", "start"}});
  }
  CHECK(read_text(path) == "{\"event\":\"start\"}\n");

  const fs::path unwritable = dir / "no_such_dir" / "metrics.jsonl";
  const std::string open_error = error_of([&] { st::io::MetricsLog log(unwritable, true); });
  CHECK(contains(open_error, unwritable.string()));
  CHECK(contains(open_error, "cannot open"));
}

TEST_CASE("io: summary.csv writes its header once across appends") {
  TempDir dir;
  const fs::path path = dir / "summary.csv";
  const std::vector<std::string> columns = {"cycle", "sparsity", "val_acc", "note"};
  {
    st::io::SummaryCsv summary(path, columns, /*append=*/true);   // missing file: header first
    summary.write_row({"0", "0.5", "0.91", "plain"});
  }
  {
    st::io::SummaryCsv summary(path, columns, /*append=*/true);
    summary.write_row({"1", "0.75", "0.885", "has, comma and \"quote\""});
    const std::string count_error = error_of([&] { summary.write_row({"2", "0.9"}); });
    CHECK(contains(count_error, path.string()));
    CHECK(contains(count_error, "row has 2 values but the header has 4 columns"));
  }
  CHECK(read_text(path) ==
        "cycle,sparsity,val_acc,note\n"
        "0,0.5,0.91,plain\n"
        "1,0.75,0.885,\"has, comma and \"\"quote\"\"\"\n");

  const std::string header_error =
      error_of([&] { st::io::SummaryCsv other(path, {"cycle", "loss"}, /*append=*/true); });
  CHECK(contains(header_error, path.string()));
  CHECK(contains(header_error, "existing header 'cycle,sparsity,val_acc,note' differs"));

  {
    st::io::SummaryCsv fresh(path, {"cycle", "loss"}, /*append=*/false);
    fresh.write_row({"0", "1.5"});
  }
  CHECK(read_text(path) == "cycle,loss\n0,1.5\n");

  const fs::path unwritable = dir / "no_such_dir" / "summary.csv";
  CHECK(contains(error_of([&] { st::io::SummaryCsv bad(unwritable, columns, false); }),
                 unwritable.string()));
}

TEST_CASE("io: write_text_atomic replaces a file whole and leaves no temp file") {
  TempDir dir;
  const fs::path path = dir / "config.toml";
  st::io::write_text_atomic(path, "[train]\nepochs = 30\nlr = 0.1\n");
  CHECK(read_text(path) == "[train]\nepochs = 30\nlr = 0.1\n");
  st::io::write_text_atomic(path, "x = 1\n");
  CHECK(read_text(path) == "x = 1\n");
  st::io::write_text_atomic(path, "");
  CHECK(read_text(path).empty());
  std::vector<fs::path> entries(fs::directory_iterator(dir.path()), fs::directory_iterator());
  CHECK(entries == std::vector<fs::path>{path});

  const fs::path unwritable = dir / "no_such_dir" / "report.md";
  const std::string error = error_of([&] { st::io::write_text_atomic(unwritable, "# r\n"); });
  CHECK(contains(error, unwritable.string()));
}

}  // TEST_SUITE("unit")

TEST_SUITE("unit") {
  TEST_CASE("load_pytorch_state_dict inverts pytorch_state_dict (masks, flattened linear columns, buffers) and is "
            "strict") {
    // lenet5: conv weights OIHW <-> KRSC, fc1 reading an NHWC-flattened 16x5x5 map <-> NCHW columns
    st::Rng rng(7);
    const st::models::InputSpec spec{1, 28, 28, 10};
    auto source = st::models::build_model("lenet5", spec, rng);
    st::Rng mask_rng(8);
    st::pruning::apply_random_masks(source->parameters(), 0.3, mask_rng);
    const SafetensorsFile exported = st::io::pytorch_state_dict(*source, spec);
    st::Rng other(9);
    auto target = st::models::build_model("lenet5", spec, other);
    st::io::load_pytorch_state_dict(*target, spec, exported);
    const auto from = source->parameters(), to = target->parameters();
    REQUIRE(from.size() == to.size());
    for (std::size_t i = 0; i < from.size(); ++i) {
      INFO(from[i]->name);
      CHECK(from[i]->value().to_vector() == to[i]->value().to_vector());
      if (from[i]->mask.defined()) CHECK(from[i]->mask.to_vector() == to[i]->mask.to_vector());
    }
    const auto expect_refused = [&](SafetensorsFile file, const std::string& needle) {
      file.path = "state.safetensors";
      auto model = st::models::build_model("lenet5", spec, other);
      try {
        st::io::load_pytorch_state_dict(*model, spec, file);
        FAIL("accepted: " << needle);
      } catch (const st::Error& e) {
        INFO(std::string(e.what()));
        CHECK(std::string(e.what()).find(needle) != std::string::npos);
      }
    };
    SafetensorsFile extra = exported;
    const float one = 1.0f;
    extra.add_f32("head.weight", {1}, &one);
    expect_refused(extra, "head.weight has no place in the model");
    SafetensorsFile missing = exported;
    missing.tensors.erase(missing.tensors.begin());  // the first tensor: 0.weight
    expect_refused(missing, "no tensor 0.weight");
    SafetensorsFile wrong = exported;
    for (TensorRecord& r : wrong.tensors)
      if (r.name == "9.weight") r.shape = {120, 84};  // transposed
    expect_refused(wrong, "9.weight has shape [120,84], the model's is [84,120] (in PyTorch's layout)");
    SafetensorsFile flat = exported;  // the linear layer reading the flattened map, misshapen
    for (TensorRecord& r : flat.tensors)
      if (r.name == "7.weight") r.shape = {400, 120};
    expect_refused(flat, "7.weight has shape [400,120], the model's is [120,400]");
    SafetensorsFile conv = exported;  // a convolution given in our KRSC layout instead of OIHW
    for (TensorRecord& r : conv.tensors)
      if (r.name == "3.weight") r.shape = {16, 5, 5, 6};
    expect_refused(conv, "3.weight has shape [16,5,5,6], the model's is [16,6,5,5]");
    SafetensorsFile unpruned = exported;  // a weight that is non-zero where its mask is 0
    for (TensorRecord& r : unpruned.tensors)
      if (r.name == "11.weight") std::fill(r.bytes.begin(), r.bytes.end(), uint8_t{0x3f});
    expect_refused(unpruned, "at a pruned entry of 11.weight_mask");
  }
}

