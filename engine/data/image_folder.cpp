// Image folders (see image_folder.h for the layout, the pixel conversions and the resize filter).
//
// libjpeg and libpng report errors through callbacks that must not return; their defaults print and
// exit() (libjpeg) or abort (libpng without a jump buffer). Here both callbacks copy the library's
// message and longjmp back into a small "protected" function that only calls the library through
// raw pointers: no C++ object with a destructor lives between setjmp and longjmp, every buffer is
// owned by the (ordinary) caller, and nothing a protected function modifies after setjmp is read
// after the jump. The caller turns a failed phase into an st::Error naming the file.
#include "engine/data/image_folder.h"

// jpeglib.h needs size_t and FILE declared before it.
#include <cstddef>
#include <cstdio>
// clang-format off
#include <jpeglib.h>
#include <jerror.h>  // the JWRN_* message codes
#include <png.h>
// clang-format on

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <csetjmp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "engine/error.h"

namespace st::data {
namespace {

namespace fs = std::filesystem;

// A decoded image larger than this (2^27 pixels, 384 MiB as RGB) is refused rather than allocated:
// no photograph in an image-classification data set comes near it, a forged header easily does.
constexpr int64_t kMaxDecodedPixels = int64_t{1} << 27;
constexpr int64_t kMaxOutputSide = 4096;
constexpr int kChannels = 3;

std::string lowercase(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

bool is_image_extension(const std::string& extension) {
  const std::string lower = lowercase(extension);
  return lower == ".jpg" || lower == ".jpeg" || lower == ".png";
}

void check_decoded_size(const std::string& path, const char* format, int64_t width, int64_t height) {
  if (width <= 0 || height <= 0 || width > kMaxDecodedPixels / height) {
    fail("data: {}: {} image of {}x{} pixels (width x height) is refused: expected at most {} pixels", path, format,
         width, height, kMaxDecodedPixels);
  }
}

// ---- JPEG (libjpeg / libjpeg-turbo) --------------------------------------------------------------

struct JpegErrorManager {
  jpeg_error_mgr base;  // first member: libjpeg hands callbacks &base as cinfo->err
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;
};

void jpeg_error_exit(j_common_ptr info) {
  auto* manager = reinterpret_cast<JpegErrorManager*>(info->err);
  (*info->err->format_message)(info, manager->message);
  std::longjmp(manager->jump, 1);
}

// Warnings (level -1) that mean the entropy-coded data is damaged or missing: libjpeg would go on
// and fill the rest of the image with gray, which must not become a silent training sample. Other
// warnings (extraneous bytes before a marker, an unknown JFIF revision, a bad ICC marker) leave the
// pixels intact and are ignored, as are trace messages (level >= 0).
void jpeg_emit_message(j_common_ptr info, int level) {
  if (level >= 0) return;
  const int code = info->err->msg_code;
  if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE || code == JWRN_ARITH_BAD_CODE ||
      code == JWRN_MUST_RESYNC || code == JWRN_NOT_SEQUENTIAL || code == JWRN_BOGUS_PROGRESSION) {
    auto* manager = reinterpret_cast<JpegErrorManager*>(info->err);
    manager->truncated = code == JWRN_JPEG_EOF;
    jpeg_error_exit(info);
  }
}

struct JpegDecoder {
  jpeg_decompress_struct info;
  JpegErrorManager error;
  bool created = false;
  JpegDecoder() {
    std::memset(&info, 0, sizeof info);
    std::memset(&error, 0, sizeof error);
    info.err = jpeg_std_error(&error.base);
    error.base.error_exit = jpeg_error_exit;
    error.base.emit_message = jpeg_emit_message;
  }
  ~JpegDecoder() {
    if (created) jpeg_destroy_decompress(&info);
  }
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;
};

// Reduced DCT scale 1/denominator: the largest of 8, 4, 2 that keeps the shorter side >= min_side.
unsigned int jpeg_scale_denominator(JDIMENSION width, JDIMENSION height, int64_t min_side) {
  if (min_side <= 0) return 1;
  const int64_t shorter = std::min<int64_t>(width, height);
  for (unsigned int denominator : {8u, 4u, 2u}) {
    if ((shorter + denominator - 1) / denominator >= min_side) return denominator;
  }
  return 1;
}

// Protected phase 1: header, output colour space and scale, start of decompression.
bool jpeg_start(JpegDecoder* decoder, const unsigned char* bytes, unsigned long size, int64_t min_side) {
  if (setjmp(decoder->error.jump)) return false;
  decoder->created = true;  // jpeg_destroy_decompress is safe even if creation fails half-way
  jpeg_create_decompress(&decoder->info);
  jpeg_mem_src(&decoder->info, bytes, size);
  jpeg_read_header(&decoder->info, TRUE);
  const J_COLOR_SPACE source = decoder->info.jpeg_color_space;
  // libjpeg converts grayscale, YCbCr and RGB to RGB itself; CMYK and YCCK come out as CMYK.
  decoder->info.out_color_space = (source == JCS_CMYK || source == JCS_YCCK) ? JCS_CMYK : JCS_RGB;
  decoder->info.scale_num = 1;
  decoder->info.scale_denom = jpeg_scale_denominator(decoder->info.image_width, decoder->info.image_height, min_side);
  jpeg_start_decompress(&decoder->info);
  return true;
}

// Protected phase 2: every scanline into `pixels` (output_height rows of `row_bytes`), then the end.
bool jpeg_read_pixels(JpegDecoder* decoder, unsigned char* pixels, size_t row_bytes) {
  if (setjmp(decoder->error.jump)) return false;
  while (decoder->info.output_scanline < decoder->info.output_height) {
    JSAMPROW row = pixels + decoder->info.output_scanline * row_bytes;
    jpeg_read_scanlines(&decoder->info, &row, 1);
  }
  jpeg_finish_decompress(&decoder->info);
  return true;
}

[[noreturn]] void fail_jpeg(const JpegDecoder& decoder, const std::string& path) {
  if (decoder.error.truncated) {
    fail("data: {}: truncated JPEG file (libjpeg: {}); expected a complete JPEG image", path, decoder.error.message);
  }
  fail("data: {}: corrupt or unsupported JPEG file (libjpeg: {}); expected a decodable JPEG image", path,
       decoder.error.message);
}

RgbImage decode_jpeg(const std::vector<uint8_t>& bytes, const std::string& path, int64_t min_side) {
  JpegDecoder decoder;
  if (!jpeg_start(&decoder, bytes.data(), static_cast<unsigned long>(bytes.size()), min_side)) {
    fail_jpeg(decoder, path);
  }
  const int64_t width = decoder.info.output_width, height = decoder.info.output_height;
  const int components = decoder.info.output_components;
  check_decoded_size(path, "JPEG", width, height);
  if (components != 3 && components != 4) {
    fail("data: {}: JPEG decodes to {} components; expected RGB (3) or CMYK (4)", path, components);
  }
  std::vector<uint8_t> decoded(static_cast<size_t>(width * height * components));
  if (!jpeg_read_pixels(&decoder, decoded.data(), static_cast<size_t>(width * components))) {
    fail_jpeg(decoder, path);
  }
  RgbImage image{height, width, {}};
  if (components == 3) {
    image.pixels = std::move(decoded);
    return image;
  }
  // CMYK -> RGB. Adobe's CMYK JPEGs (the ones an Adobe marker announces) store inverted samples, so
  // there R = C * K / 255; otherwise the samples are ink amounts and R = (255 - C)(255 - K) / 255.
  const bool inverted = decoder.info.saw_Adobe_marker != 0;
  image.pixels.resize(static_cast<size_t>(width * height * kChannels));
  for (int64_t pixel = 0; pixel < width * height; ++pixel) {
    const uint8_t* cmyk = decoded.data() + pixel * 4;
    const int k = inverted ? cmyk[3] : 255 - cmyk[3];
    for (int channel = 0; channel < kChannels; ++channel) {
      const int ink = inverted ? cmyk[channel] : 255 - cmyk[channel];
      image.pixels[static_cast<size_t>(pixel * kChannels + channel)] = static_cast<uint8_t>((ink * k + 127) / 255);
    }
  }
  return image;
}

// ---- PNG (libpng 1.6) ----------------------------------------------------------------------------

struct PngDecoder {
  png_structp png = nullptr;
  png_infop info = nullptr;
  const uint8_t* bytes = nullptr;
  size_t size = 0, offset = 0;
  std::jmp_buf jump;
  char message[256] = {};
  bool truncated = false;
  PngDecoder() = default;
  ~PngDecoder() {
    if (png != nullptr) png_destroy_read_struct(&png, info != nullptr ? &info : nullptr, nullptr);
  }
  PngDecoder(const PngDecoder&) = delete;
  PngDecoder& operator=(const PngDecoder&) = delete;
};

void png_error_exit(png_structp png, png_const_charp message) {
  auto* decoder = static_cast<PngDecoder*>(png_get_error_ptr(png));
  std::snprintf(decoder->message, sizeof decoder->message, "%s", message != nullptr ? message : "unknown error");
  std::longjmp(decoder->jump, 1);
}

void png_ignore_warning(png_structp, png_const_charp) {}

void png_read_from_memory(png_structp png, png_bytep out, size_t count) {
  auto* decoder = static_cast<PngDecoder*>(png_get_io_ptr(png));
  if (count > decoder->size - decoder->offset) {
    decoder->truncated = true;
    png_error(png, "unexpected end of file");
  }
  std::memcpy(out, decoder->bytes + decoder->offset, count);
  decoder->offset += count;
}

// Protected phase 1: signature and header, then the transforms that make every PNG 8-bit RGB.
bool png_start(PngDecoder* decoder) {
  if (setjmp(decoder->jump)) return false;
  png_set_read_fn(decoder->png, decoder, png_read_from_memory);
  png_read_info(decoder->png, decoder->info);
  const png_byte color_type = png_get_color_type(decoder->png, decoder->info);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(decoder->png);
  if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) {
    png_set_expand_gray_1_2_4_to_8(decoder->png);
    png_set_gray_to_rgb(decoder->png);
  }
  png_set_scale_16(decoder->png);
  png_set_strip_alpha(decoder->png);  // also covers palette/gray transparency (tRNS is not expanded)
  png_set_interlace_handling(decoder->png);
  png_read_update_info(decoder->png, decoder->info);
  return true;
}

// Protected phase 2: the whole image through `rows`, then the chunks after it up to IEND.
bool png_read_pixels(PngDecoder* decoder, png_bytep* rows) {
  if (setjmp(decoder->jump)) return false;
  png_read_image(decoder->png, rows);
  png_read_end(decoder->png, nullptr);
  return true;
}

[[noreturn]] void fail_png(const PngDecoder& decoder, const std::string& path) {
  if (decoder.truncated) {
    fail("data: {}: truncated PNG file (libpng: {}); expected a complete PNG image", path, decoder.message);
  }
  fail("data: {}: corrupt or unsupported PNG file (libpng: {}); expected a decodable PNG image", path, decoder.message);
}

RgbImage decode_png(const std::vector<uint8_t>& bytes, const std::string& path) {
  PngDecoder decoder;
  decoder.bytes = bytes.data();
  decoder.size = bytes.size();
  decoder.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &decoder, png_error_exit, png_ignore_warning);
  if (decoder.png == nullptr) fail("data: {}: libpng: cannot create a PNG reader", path);
  decoder.info = png_create_info_struct(decoder.png);
  if (decoder.info == nullptr) fail("data: {}: libpng: cannot create a PNG info structure", path);
  if (!png_start(&decoder)) fail_png(decoder, path);

  const int64_t width = png_get_image_width(decoder.png, decoder.info);
  const int64_t height = png_get_image_height(decoder.png, decoder.info);
  check_decoded_size(path, "PNG", width, height);
  const int channels = png_get_channels(decoder.png, decoder.info);
  const size_t row_bytes = png_get_rowbytes(decoder.png, decoder.info);
  if (channels != kChannels || row_bytes != static_cast<size_t>(width * kChannels)) {
    fail("data: {}: PNG converts to {} channels of {} bytes per row; expected 8-bit RGB", path, channels, row_bytes);
  }
  RgbImage image{height, width, std::vector<uint8_t>(static_cast<size_t>(width * height * kChannels))};
  std::vector<png_bytep> rows(static_cast<size_t>(height));
  for (int64_t y = 0; y < height; ++y) rows[static_cast<size_t>(y)] = image.pixels.data() + y * width * kChannels;
  if (!png_read_pixels(&decoder, rows.data())) fail_png(decoder, path);
  return image;
}

// ---- resize ----------------------------------------------------------------------------------------

// Source taps of each output index along one axis: output o reads source[first[o] + t] with
// weight[o * taps + t] for t < count[o].
struct ResampleAxis {
  int64_t taps = 1;
  std::vector<int64_t> first, count;
  std::vector<float> weight;
};

ResampleAxis resample_axis(int64_t source, int64_t target) {
  ResampleAxis axis;
  axis.first.resize(static_cast<size_t>(target));
  axis.count.resize(static_cast<size_t>(target));
  const double scale = static_cast<double>(source) / static_cast<double>(target);
  if (source > target) {
    // Area: output o covers source [o*scale, (o+1)*scale); each source pixel weighs its overlap.
    axis.taps = static_cast<int64_t>(std::ceil(scale)) + 1;
    axis.weight.assign(static_cast<size_t>(target * axis.taps), 0.0f);
    for (int64_t o = 0; o < target; ++o) {
      const double start = static_cast<double>(o) * scale, end = static_cast<double>(o + 1) * scale;
      const int64_t first = static_cast<int64_t>(std::floor(start));
      const int64_t last = std::min(source - 1, static_cast<int64_t>(std::ceil(end)) - 1);
      axis.first[o] = first;
      axis.count[o] = last - first + 1;
      for (int64_t i = first; i <= last; ++i) {
        const double overlap = std::min(end, static_cast<double>(i + 1)) - std::max(start, static_cast<double>(i));
        axis.weight[static_cast<size_t>(o * axis.taps + (i - first))] = static_cast<float>(overlap / scale);
      }
    }
  } else {
    // Bilinear (source < target; the caller copies equal sizes), half-pixel centers, edges clamped.
    axis.taps = 2;
    axis.weight.assign(static_cast<size_t>(target * 2), 0.0f);
    for (int64_t o = 0; o < target; ++o) {
      const double position =
          std::clamp((static_cast<double>(o) + 0.5) * scale - 0.5, 0.0, static_cast<double>(source - 1));
      const int64_t first = std::min(static_cast<int64_t>(std::floor(position)), source - 1);
      const double fraction = position - static_cast<double>(first);
      axis.first[o] = first;
      axis.count[o] = (fraction > 0.0 && first + 1 < source) ? 2 : 1;
      axis.weight[static_cast<size_t>(o * 2)] = static_cast<float>(1.0 - fraction);
      if (axis.count[o] == 2) axis.weight[static_cast<size_t>(o * 2 + 1)] = static_cast<float>(fraction);
    }
  }
  return axis;
}

// The central square of `image` resampled to size x size, written to `out` (size*size*3 bytes).
void center_crop_resize_into(const RgbImage& image, int64_t size, uint8_t* out) {
  const int64_t side = std::min(image.height, image.width);
  const int64_t top = (image.height - side) / 2, left = (image.width - side) / 2;
  if (side == size) {  // the crop alone (Tiny-ImageNet at its native 64): the same bytes, without the passes
    for (int64_t y = 0; y < size; ++y) {
      std::copy_n(image.pixels.data() + ((top + y) * image.width + left) * kChannels, size * kChannels,
                  out + y * size * kChannels);
    }
    return;
  }
  const ResampleAxis axis = resample_axis(side, size);
  // Horizontal pass over the square's rows: side x size x 3 floats.
  std::vector<float> rows(static_cast<size_t>(side * size * kChannels));
  for (int64_t y = 0; y < side; ++y) {
    const uint8_t* source_row = image.pixels.data() + ((top + y) * image.width + left) * kChannels;
    float* target_row = rows.data() + y * size * kChannels;
    for (int64_t x = 0; x < size; ++x) {
      float sum[kChannels] = {0.0f, 0.0f, 0.0f};
      for (int64_t t = 0; t < axis.count[x]; ++t) {
        const float w = axis.weight[static_cast<size_t>(x * axis.taps + t)];
        const uint8_t* pixel = source_row + (axis.first[x] + t) * kChannels;
        for (int c = 0; c < kChannels; ++c) sum[c] += w * static_cast<float>(pixel[c]);
      }
      for (int c = 0; c < kChannels; ++c) target_row[x * kChannels + c] = sum[c];
    }
  }
  // Vertical pass, rounded to the nearest byte.
  for (int64_t y = 0; y < size; ++y) {
    for (int64_t x = 0; x < size; ++x) {
      float sum[kChannels] = {0.0f, 0.0f, 0.0f};
      for (int64_t t = 0; t < axis.count[y]; ++t) {
        const float w = axis.weight[static_cast<size_t>(y * axis.taps + t)];
        const float* pixel = rows.data() + ((axis.first[y] + t) * size + x) * kChannels;
        for (int c = 0; c < kChannels; ++c) sum[c] += w * pixel[c];
      }
      for (int c = 0; c < kChannels; ++c) {
        out[(y * size + x) * kChannels + c] = static_cast<uint8_t>(std::clamp(std::floor(sum[c] + 0.5f), 0.0f, 255.0f));
      }
    }
  }
}

// ---- folders ---------------------------------------------------------------------------------------

struct ImageEntry {
  std::string path;
  int32_t label = 0;
};

std::string format_bytes(int64_t bytes) {
  if (bytes >= 1'000'000'000) return fmt::format("{:.1f} GB", static_cast<double>(bytes) / 1e9);
  if (bytes >= 1'000'000) return fmt::format("{:.1f} MB", static_cast<double>(bytes) / 1e6);
  return fmt::format("{} bytes", bytes);
}

bool is_hidden(const fs::path& path) { return path.filename().string().rfind('.', 0) == 0; }

std::vector<fs::path> sorted_entries(const fs::path& dir) {
  std::vector<fs::path> entries;
  std::error_code error;
  for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    if (!is_hidden(it->path())) entries.push_back(it->path());
  }
  if (error) fail("data: {}: cannot list the folder: {}", dir.string(), error.message());
  std::sort(entries.begin(), entries.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename().string() < b.filename().string(); });
  return entries;
}

void require_directory(const fs::path& dir, const std::string& expected) {
  std::error_code error;
  if (!fs::exists(dir, error)) fail("data: {}: no such directory (expected {})", dir.string(), expected);
  if (!fs::is_directory(dir, error)) fail("data: {}: not a directory (expected {})", dir.string(), expected);
}

// The image files of a folder, sorted by name; anything that is not one is an error.
std::vector<std::string> list_image_files(const fs::path& dir) {
  std::vector<std::string> files;
  for (const fs::path& entry : sorted_entries(dir)) {
    std::error_code error;
    if (fs::is_directory(entry, error)) {
      fail("data: {}: unexpected folder inside an image folder (expected only .jpg, .jpeg or .png files)",
           entry.string());
    }
    if (!is_image_extension(entry.extension().string())) {
      fail("data: {}: unsupported file extension '{}' (expected .jpg, .jpeg or .png, any case)", entry.string(),
           entry.extension().string());
    }
    files.push_back(entry.string());
  }
  return files;
}

// A class folder's images: those of its images/ subfolder when it has one (Tiny-ImageNet, whose
// class folders also hold <wnid>_boxes.txt), else its own files.
std::vector<std::string> class_folder_images(const fs::path& class_dir) {
  std::error_code error;
  const fs::path images = class_dir / "images";
  std::vector<std::string> files =
      fs::is_directory(images, error) ? list_image_files(images) : list_image_files(class_dir);
  if (files.empty()) {
    fail("data: {}: empty class folder: no image files (expected at least one .jpg, .jpeg or .png file)",
         class_dir.string());
  }
  return files;
}

// The class folders of a split folder, sorted; a plain file among them is an error.
std::vector<fs::path> class_folders(const fs::path& split_dir) {
  std::vector<fs::path> folders;
  for (const fs::path& entry : sorted_entries(split_dir)) {
    std::error_code error;
    if (!fs::is_directory(entry, error)) {
      fail("data: {}: unexpected file among the class folders (expected {}/<class>/<image files>)", entry.string(),
           split_dir.string());
    }
    folders.push_back(entry);
  }
  if (folders.empty()) {
    fail("data: {}: no class folders (expected {}/<class>/<image files>)", split_dir.string(), split_dir.string());
  }
  return folders;
}

std::map<std::string, int32_t> class_labels(const std::vector<std::string>& classes) {
  std::map<std::string, int32_t> labels;
  for (size_t i = 0; i < classes.size(); ++i) labels[classes[i]] = static_cast<int32_t>(i);
  return labels;
}

// Tiny-ImageNet's val: val/images/<file> labelled by val/val_annotations.txt lines
// "<file>\t<wnid>[\t<x0>\t<y0>\t<x1>\t<y1>]".
std::vector<ImageEntry> tiny_imagenet_val_entries(const fs::path& val_dir, const fs::path& train_dir,
                                                  const std::map<std::string, int32_t>& labels) {
  const fs::path annotations_path = val_dir / "val_annotations.txt";
  std::ifstream annotations(annotations_path);
  if (!annotations) fail("data: {}: cannot open", annotations_path.string());
  std::map<std::string, int32_t> label_of_file;
  std::string line;
  for (int64_t line_number = 1; std::getline(annotations, line); ++line_number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::vector<std::string> fields;
    size_t position = 0;
    while (position < line.size()) {
      const size_t start = line.find_first_not_of(" \t", position);
      if (start == std::string::npos) break;
      const size_t end = std::min(line.find_first_of(" \t", start), line.size());
      fields.push_back(line.substr(start, end - start));
      position = end;
    }
    if (fields.empty()) continue;
    if (fields.size() < 2) {
      fail("data: {}:{}: expected '<file> <class>' (tab-separated), found '{}'", annotations_path.string(), line_number,
           line);
    }
    const auto label = labels.find(fields[1]);
    if (label == labels.end()) {
      fail("data: {}:{}: class '{}' of {} is not a class folder of {}", annotations_path.string(), line_number,
           fields[1], fields[0], train_dir.string());
    }
    if (!label_of_file.emplace(fields[0], label->second).second) {
      fail("data: {}:{}: {} is annotated twice", annotations_path.string(), line_number, fields[0]);
    }
  }
  const fs::path images_dir = val_dir / "images";
  require_directory(images_dir, "Tiny-ImageNet's val/images folder beside val/val_annotations.txt");
  std::vector<ImageEntry> entries;
  for (const std::string& file : list_image_files(images_dir)) {
    const std::string name = fs::path(file).filename().string();
    const auto label = label_of_file.find(name);
    if (label == label_of_file.end()) {
      fail("data: {}: no line for this file in {} (expected '<file> <class>')", file, annotations_path.string());
    }
    entries.push_back({file, label->second});
    label_of_file.erase(label);
  }
  if (!label_of_file.empty()) {
    fail("data: {}: names {} which is not in {} ({} annotated files missing)", annotations_path.string(),
         label_of_file.begin()->first, images_dir.string(), label_of_file.size());
  }
  if (entries.empty())
    fail("data: {}: no image files (expected Tiny-ImageNet's validation images)", images_dir.string());
  return entries;
}

}  // namespace

RgbImage decode_image(const std::vector<uint8_t>& bytes, const std::string& path, int64_t min_side) {
  static constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.empty()) fail("data: {}: empty file (0 bytes); expected a JPEG or PNG image", path);
  if (bytes.size() >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff) {
    return decode_jpeg(bytes, path, min_side);
  }
  if (bytes.size() >= 8 && std::equal(kPngSignature, kPngSignature + 8, bytes.begin())) return decode_png(bytes, path);
  std::string start;
  for (size_t i = 0; i < std::min<size_t>(bytes.size(), 4); ++i) start += fmt::format(" {:02x}", bytes[i]);
  fail("data: {}: not a JPEG or PNG image (the file starts with bytes{}; expected ff d8 ff or 89 50 4e 47)", path,
       start);
}

RgbImage read_image_file(const std::string& path, int64_t min_side) {
  return decode_image(read_file_maybe_gzip(path), path, min_side);
}

std::vector<uint8_t> center_crop_resize(const RgbImage& image, int64_t size) {
  if (size <= 0 || size > kMaxOutputSide) fail("data: image size must be in [1, {}], got {}", kMaxOutputSide, size);
  if (image.height <= 0 || image.width <= 0 ||
      image.pixels.size() != static_cast<size_t>(image.height * image.width * kChannels)) {
    fail("data: center_crop_resize: {} bytes do not form a {}x{} RGB image", image.pixels.size(), image.height,
         image.width);
  }
  std::vector<uint8_t> out(static_cast<size_t>(size * size * kChannels));
  center_crop_resize_into(image, size, out.data());
  return out;
}

std::vector<std::string> image_folder_classes(const std::string& root) {
  const std::string layout = "an image folder: ROOT/train/<class>/<image files> and ROOT/val/...";
  require_directory(root, layout);
  const fs::path train_dir = fs::path(root) / "train";
  require_directory(train_dir, "ROOT/train/<class>/<image files>");
  std::vector<std::string> classes;
  for (const fs::path& folder : class_folders(train_dir)) classes.push_back(folder.filename().string());
  return classes;
}

Dataset load_image_folder(const std::string& root, bool train, const ImageFolderOptions& options) {
  const int64_t size = options.image_size;
  if (size <= 0 || size > kMaxOutputSide) fail("--image-size: must be in [1, {}], got {}", kMaxOutputSide, size);
  if (options.max_images <= 0) fail("--max-images: must be positive, got {}", options.max_images);

  const std::vector<std::string> classes = image_folder_classes(root);
  const std::map<std::string, int32_t> labels = class_labels(classes);
  const fs::path train_dir = fs::path(root) / "train";
  const fs::path split_dir = fs::path(root) / (train ? "train" : "val");

  std::vector<ImageEntry> entries;
  if (train) {
    for (size_t label = 0; label < classes.size(); ++label) {
      for (std::string& file : class_folder_images(train_dir / classes[label]))
        entries.push_back({std::move(file), static_cast<int32_t>(label)});
    }
  } else {
    require_directory(split_dir,
                      "ROOT/val/<class>/<image files>, or Tiny-ImageNet's val/images + val/val_annotations.txt");
    std::error_code error;
    if (fs::exists(split_dir / "val_annotations.txt", error)) {
      entries = tiny_imagenet_val_entries(split_dir, train_dir, labels);
    } else {
      for (const fs::path& folder : class_folders(split_dir)) {
        const auto label = labels.find(folder.filename().string());
        if (label == labels.end()) {
          fail("data: {}: class folder '{}' is not a class of {} (expected one of its {} class folders)",
               folder.string(), folder.filename().string(), train_dir.string(), classes.size());
        }
        for (std::string& file : class_folder_images(folder)) entries.push_back({std::move(file), label->second});
      }
    }
  }

  const auto count = static_cast<int64_t>(entries.size());
  const int64_t image_bytes = size * size * kChannels;
  if (count > options.max_images) {
    fail(
        "data: {}: {} images at {}x{}x3 would hold {} in memory (the whole resized split is kept as uint8), "
        "more than --max-images {}: raise --max-images if the machine has the memory, or lower --image-size",
        split_dir.string(), count, size, size, format_bytes(count * image_bytes), options.max_images);
  }

  Dataset dataset;
  dataset.name = split_dir.string();
  dataset.height = size;
  dataset.width = size;
  dataset.channels = kChannels;
  dataset.num_classes = static_cast<int>(classes.size());
  try {
    dataset.pixels.resize(static_cast<size_t>(count * image_bytes));
  } catch (const std::bad_alloc&) {
    fail("data: {}: cannot allocate {} for {} images at {}x{}x3: lower --image-size", split_dir.string(),
         format_bytes(count * image_bytes), count, size, size);
  }
  dataset.labels.resize(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) dataset.labels[static_cast<size_t>(i)] = entries[static_cast<size_t>(i)].label;

  // Each image is independent and lands in its own slot, so any schedule gives the same bytes; a
  // dynamic one balances files of very different sizes. After a failure only earlier files are
  // still decoded, and the first failing file in sorted order is the one reported.
  std::atomic<int64_t> first_failure{count};
  std::vector<std::string> errors(static_cast<size_t>(count));
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < count; ++i) {
    if (i > first_failure.load(std::memory_order_relaxed)) continue;
    try {
      const RgbImage image = read_image_file(entries[static_cast<size_t>(i)].path, size);
      center_crop_resize_into(image, size, dataset.pixels.data() + i * image_bytes);
    } catch (const std::exception& e) {
      errors[static_cast<size_t>(i)] = e.what();
      int64_t seen = first_failure.load();
      while (i < seen && !first_failure.compare_exchange_weak(seen, i)) {
      }
    }
  }
  if (first_failure.load() < count) throw Error(errors[static_cast<size_t>(first_failure.load())]);
  return dataset;
}

}  // namespace st::data
