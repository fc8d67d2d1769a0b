// IDX reader (LeCun's MNIST format, also Fashion-MNIST) and the shared "whole file, gunzipped if
// gzipped" reader. An IDX file is a 4-byte magic (0, 0, type 0x08 = unsigned byte, number of
// dimensions), one big-endian uint32 per dimension, then the bytes. Headers are untrusted: every
// size a header claims is checked, overflow-safe, against the bytes actually present before
// anything is allocated or indexed, so a corrupt header is an error message rather than a huge
// allocation.
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/error.h"

namespace st::data {
namespace {

constexpr uint32_t kIdxImagesMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned byte, 1 dimension
constexpr size_t kIdxImagesHeaderBytes = 16;
constexpr size_t kIdxLabelsHeaderBytes = 8;

// Deflate cannot compress better than about 1032:1, so a gzip size hint above that is a lie.
constexpr uint64_t kMaxDeflateRatio = 1032;
// zlib counts input and output in 32-bit uInt: feed and drain it in pieces of at most this size.
constexpr size_t kZlibChunkBytes = size_t{1} << 30;

bool starts_with_gzip_magic(const std::vector<uint8_t>& bytes) {
  return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

std::vector<uint8_t> read_raw_file(const std::string& path) {
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (!std::filesystem::exists(status)) fail("data: {}: no such file", path);
  if (std::filesystem::is_directory(status)) {
    fail("data: {}: is a directory, expected a file", path);
  }
  // Devices and pipes could stream forever (/dev/zero); datasets are regular files.
  if (!std::filesystem::is_regular_file(status)) fail("data: {}: not a regular file", path);

  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) fail("data: {}: cannot open: {}", path, std::strerror(errno));
  // Read to end of file instead of trusting the size query alone: a file that changes size while
  // being read yields exactly what was read, never uninitialised bytes.
  std::vector<uint8_t> bytes;
  size_t filled = 0;
  const uint64_t size_hint = std::filesystem::file_size(path, error);
  bytes.resize(error ? size_t{1} << 20 : static_cast<size_t>(size_hint) + 1);
  for (;;) {
    if (filled == bytes.size()) bytes.resize(bytes.size() * 2);
    const size_t got = std::fread(bytes.data() + filled, 1, bytes.size() - filled, file);
    filled += got;
    if (got == 0) break;
  }
  const bool read_failed = std::ferror(file) != 0;
  std::fclose(file);
  if (read_failed) fail("data: {}: read error after {} bytes", path, filled);
  bytes.resize(filled);
  return bytes;
}

std::vector<uint8_t> gunzip(const std::vector<uint8_t>& compressed, const std::string& path) {
  // The gzip trailer's last 4 bytes hold the uncompressed size mod 2^32 (of the last member only):
  // a good first guess for the output size, bounded so that a forged trailer cannot make us
  // allocate more than the stream could possibly expand to.
  uint64_t size_hint = 0;
  if (compressed.size() >= 4) {
    const size_t end = compressed.size();
    size_hint = uint64_t{compressed[end - 4]} | uint64_t{compressed[end - 3]} << 8 |
                uint64_t{compressed[end - 2]} << 16 | uint64_t{compressed[end - 1]} << 24;
  }
  size_hint = std::min<uint64_t>(size_hint, compressed.size() * kMaxDeflateRatio);
  std::vector<uint8_t> output(std::max<size_t>(static_cast<size_t>(size_hint), 1 << 16));

  z_stream stream{};
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) {  // 16: expect a gzip wrapper
    fail("data: {}: zlib error: cannot initialise inflate", path);
  }
  size_t consumed = 0;  // compressed bytes handed to zlib so far
  size_t produced = 0;  // output bytes written so far
  int result = Z_OK;
  for (;;) {
    if (stream.avail_in == 0 && consumed < compressed.size()) {
      const size_t piece = std::min(kZlibChunkBytes, compressed.size() - consumed);
      stream.next_in = const_cast<Bytef*>(compressed.data() + consumed);
      stream.avail_in = static_cast<uInt>(piece);
      consumed += piece;
    }
    if (produced == output.size()) output.resize(output.size() * 2);
    const size_t room = std::min(kZlibChunkBytes, output.size() - produced);
    stream.next_out = output.data() + produced;
    stream.avail_out = static_cast<uInt>(room);

    result = inflate(&stream, Z_NO_FLUSH);
    produced += room - stream.avail_out;

    if (result == Z_STREAM_END) {
      const size_t remaining = stream.avail_in + (compressed.size() - consumed);
      if (remaining == 0) break;
      // Another gzip member follows (what `cat a.gz b.gz` produces): decode it too.
      const size_t next = compressed.size() - remaining;
      if (remaining >= 2 && compressed[next] == 0x1f && compressed[next + 1] == 0x8b) {
        inflateReset(&stream);
        continue;
      }
      inflateEnd(&stream);
      fail("data: {}: corrupt gzip file: {} bytes of trailing garbage after the gzip stream", path,
           remaining);
    }
    if (result == Z_DATA_ERROR || result == Z_NEED_DICT || result == Z_STREAM_ERROR) {
      const std::string reason = stream.msg != nullptr ? stream.msg : "invalid data";
      inflateEnd(&stream);
      fail("data: {}: corrupt gzip stream (zlib error: {}) after {} compressed bytes", path, reason,
           consumed - stream.avail_in);
    }
    if (result == Z_MEM_ERROR) {
      inflateEnd(&stream);
      fail("data: {}: zlib error: out of memory while decompressing", path);
    }
    // Z_BUF_ERROR (or Z_OK) with all input consumed and room left in the output: the stream stopped
    // before its end-of-stream marker and checksum.
    if (stream.avail_in == 0 && consumed == compressed.size() && stream.avail_out != 0) {
      inflateEnd(&stream);
      fail(
          "data: {}: truncated gzip stream: the file ends ({} bytes) before the end of the "
          "compressed data (zlib error: unexpected end of stream)",
          path, compressed.size());
    }
  }
  inflateEnd(&stream);
  output.resize(produced);
  output.shrink_to_fit();
  return output;
}

uint32_t read_big_endian_u32(const std::vector<uint8_t>& bytes, size_t offset) {
  return uint32_t{bytes[offset]} << 24 | uint32_t{bytes[offset + 1]} << 16 |
         uint32_t{bytes[offset + 2]} << 8 | uint32_t{bytes[offset + 3]};
}

// Checks the header every IDX file starts with: long enough for its header, the expected magic.
void check_idx_header(const std::vector<uint8_t>& bytes, const std::string& path,
                      uint32_t expected_magic, size_t header_bytes, const char* what) {
  // The magic first: a wrong file is better reported as wrong than as short.
  if (bytes.size() < 4) {
    fail("data: {}: truncated: the file has {} bytes, shorter than the {}-byte IDX {} header", path,
         bytes.size(), header_bytes, what);
  }
  const uint32_t magic = read_big_endian_u32(bytes, 0);
  if (magic == expected_magic) {
    if (bytes.size() >= header_bytes) return;
    fail("data: {}: truncated: the file has {} bytes, shorter than the {}-byte IDX {} header", path,
         bytes.size(), header_bytes, what);
  }
  std::string hint;
  if (magic == kIdxLabelsMagic) hint = " (that is an idx1-ubyte labels file)";
  if (magic == kIdxImagesMagic) hint = " (that is an idx3-ubyte images file)";
  if (bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) hint = " (gzip inside gzip?)";
  fail("data: {}: wrong magic number: expected 0x{:08x} (IDX {}) but found 0x{:08x}{}", path,
       expected_magic, what, magic, hint);
}

// Where `name` is missing, its gzipped form is looked for first, then the raw one.
std::string find_idx_file(const std::string& dir, const std::string& name) {
  const std::filesystem::path base = std::filesystem::path(dir) / name;
  std::error_code error;
  const std::string gzipped = base.string() + ".gz";
  if (std::filesystem::is_regular_file(gzipped, error)) return gzipped;
  if (std::filesystem::is_regular_file(base, error)) return base.string();
  fail("data: {}: no such file: neither {} nor {} exists", base.string(), name + ".gz", name);
}

}  // namespace

std::vector<uint8_t> read_file_maybe_gzip(const std::string& path) {
  std::vector<uint8_t> bytes = read_raw_file(path);
  if (starts_with_gzip_magic(bytes)) return gunzip(bytes, path);
  return bytes;
}

Dataset read_idx(const std::string& images_path, const std::string& labels_path, int num_classes) {
  if (num_classes <= 0 || num_classes > 256) {
    fail("data: {}: num_classes must be in [1, 256] for byte labels, got {}", labels_path,
         num_classes);
  }

  std::vector<uint8_t> image_bytes = read_file_maybe_gzip(images_path);
  check_idx_header(image_bytes, images_path, kIdxImagesMagic, kIdxImagesHeaderBytes,
                   "idx3-ubyte images");
  const uint32_t image_count = read_big_endian_u32(image_bytes, 4);
  const uint32_t rows = read_big_endian_u32(image_bytes, 8);
  const uint32_t columns = read_big_endian_u32(image_bytes, 12);
  if (image_count == 0) fail("data: {}: empty dataset: the header says 0 images", images_path);
  if (rows == 0 || columns == 0) {
    fail("data: {}: zero image dimension: the header says {} images of {}x{}", images_path,
         image_count, rows, columns);
  }
  // rows*columns < 2^64 always; the product with the count may not be.
  const uint64_t pixels_per_image = uint64_t{rows} * columns;
  uint64_t pixel_bytes = 0;
  const bool overflow =
      __builtin_mul_overflow(pixels_per_image, uint64_t{image_count}, &pixel_bytes);
  const uint64_t payload_bytes = image_bytes.size() - kIdxImagesHeaderBytes;
  if (overflow || pixel_bytes > payload_bytes) {
    fail(
        "data: {}: truncated: header says {} images of {}x{} ({} bytes) but the file has {} bytes "
        "after its {}-byte header",
        images_path, image_count, rows, columns,
        overflow ? std::string("more than 2^64") : std::to_string(pixel_bytes), payload_bytes,
        kIdxImagesHeaderBytes);
  }
  if (pixel_bytes < payload_bytes) {
    fail("data: {}: {} unexpected bytes after the {} images of {}x{} the header announces",
         images_path, payload_bytes - pixel_bytes, image_count, rows, columns);
  }

  const std::vector<uint8_t> label_bytes = read_file_maybe_gzip(labels_path);
  check_idx_header(label_bytes, labels_path, kIdxLabelsMagic, kIdxLabelsHeaderBytes,
                   "idx1-ubyte labels");
  const uint32_t label_count = read_big_endian_u32(label_bytes, 4);
  const uint64_t label_payload_bytes = label_bytes.size() - kIdxLabelsHeaderBytes;
  if (label_count == 0) fail("data: {}: empty dataset: the header says 0 labels", labels_path);
  if (label_count > label_payload_bytes) {
    fail(
        "data: {}: truncated: header says {} labels but the file has {} bytes after its {}-byte "
        "header",
        labels_path, label_count, label_payload_bytes, kIdxLabelsHeaderBytes);
  }
  if (label_count < label_payload_bytes) {
    fail("data: {}: {} unexpected bytes after the {} labels the header announces", labels_path,
         label_payload_bytes - label_count, label_count);
  }
  if (label_count != image_count) {
    fail("data: {}: image/label count mismatch: {} labels but {} has {} images", labels_path,
         label_count, images_path, image_count);
  }

  Dataset dataset;
  dataset.name = images_path;
  dataset.height = rows;
  dataset.width = columns;
  dataset.channels = 1;
  dataset.num_classes = num_classes;
  dataset.labels.resize(label_count);
  for (uint32_t index = 0; index < label_count; ++index) {
    const uint8_t label = label_bytes[kIdxLabelsHeaderBytes + index];
    if (label >= num_classes) {
      fail("data: {}: label out of range: label[{}] = {} but num_classes is {}", labels_path, index,
           label, num_classes);
    }
    dataset.labels[index] = label;
  }
  // Drop the header in place: no second copy of the (possibly 47 MB) pixel buffer.
  image_bytes.erase(image_bytes.begin(),
                    image_bytes.begin() + static_cast<std::ptrdiff_t>(kIdxImagesHeaderBytes));
  dataset.pixels = std::move(image_bytes);
  return dataset;
}

Dataset load_idx_directory(const std::string& dir, bool train, const std::string& name) {
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) {
    fail("data: {}: no such directory (expected the IDX files of {})", dir, name);
  }
  const std::string prefix = train ? "train" : "t10k";
  const std::string images_path = find_idx_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_idx_file(dir, prefix + "-labels-idx1-ubyte");
  Dataset dataset = read_idx(images_path, labels_path);
  dataset.name = name + (train ? "/train" : "/test");
  return dataset;
}

}  // namespace st::data
