// Test helpers that write small PNG and JPEG files with libpng's and libjpeg's own encoders, so the
// image-folder tests build their data sets in a temporary folder instead of shipping binary files.
// The encoders only ever see valid input here; should one fail anyway, libjpeg/libpng print their
// message and end the test program (their default handlers), which fails the run visibly.
#pragma once

#include <cstdio>
// clang-format off
#include <jpeglib.h>
#include <png.h>
// clang-format on

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace st::testing {

// A PNG of `color_type` (PNG_COLOR_TYPE_GRAY, _GRAY_ALPHA, _RGB, _RGB_ALPHA, _PALETTE) and
// `bit_depth`, from rows packed as PNG stores them (16-bit samples big-endian, sub-byte depths
// packed MSB first, palette images as indices). `palette` (and `transparency`, one alpha per palette
// entry) only for palette images.
inline std::vector<uint8_t> encode_png(int width, int height, int color_type, int bit_depth,
                                       const std::vector<uint8_t>& packed_rows,
                                       const std::vector<png_color>& palette = {},
                                       const std::vector<uint8_t>& transparency = {}, bool interlaced = false) {
  std::vector<uint8_t> bytes;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(
      png, &bytes,
      [](png_structp p, png_bytep data, size_t length) {
        auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(p));
        out->insert(out->end(), data, data + length);
      },
      [](png_structp) {});
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), bit_depth, color_type,
               interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!palette.empty()) png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
  if (!transparency.empty()) {
    png_set_tRNS(png, info, transparency.data(), static_cast<int>(transparency.size()), nullptr);
  }
  png_write_info(png, info);
  const size_t row_bytes = packed_rows.size() / static_cast<size_t>(height);
  std::vector<png_bytep> rows(static_cast<size_t>(height));
  for (int y = 0; y < height; ++y) {
    rows[static_cast<size_t>(y)] = const_cast<png_bytep>(packed_rows.data()) + static_cast<size_t>(y) * row_bytes;
  }
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return bytes;
}

// A baseline JPEG at `quality` from interleaved samples: components 1 (grayscale), 3 (RGB, no
// chroma subsampling, so only the DCT quantization is lossy) or 4 (CMYK; libjpeg writes it with an
// Adobe marker and the samples as given).
inline std::vector<uint8_t> encode_jpeg(int width, int height, int components, const std::vector<uint8_t>& samples,
                                        int quality = 100) {
  jpeg_compress_struct info;
  jpeg_error_mgr error;
  info.err = jpeg_std_error(&error);
  jpeg_create_compress(&info);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&info, &buffer, &size);
  info.image_width = static_cast<JDIMENSION>(width);
  info.image_height = static_cast<JDIMENSION>(height);
  info.input_components = components;
  info.in_color_space = components == 1 ? JCS_GRAYSCALE : components == 3 ? JCS_RGB : JCS_CMYK;
  jpeg_set_defaults(&info);
  jpeg_set_quality(&info, quality, TRUE);
  for (int c = 0; c < info.num_components; ++c) {
    info.comp_info[c].h_samp_factor = 1;
    info.comp_info[c].v_samp_factor = 1;
  }
  jpeg_start_compress(&info, TRUE);
  while (info.next_scanline < info.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(samples.data()) +
                   static_cast<size_t>(info.next_scanline) * static_cast<size_t>(width * components);
    jpeg_write_scanlines(&info, &row, 1);
  }
  jpeg_finish_compress(&info);
  std::vector<uint8_t> bytes(buffer, buffer + size);
  jpeg_destroy_compress(&info);
  std::free(buffer);
  return bytes;
}

inline void write_file_bytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// A width x height RGB PNG of one colour.
inline std::vector<uint8_t> solid_rgb_png(int width, int height, uint8_t red, uint8_t green, uint8_t blue) {
  std::vector<uint8_t> rows;
  for (int i = 0; i < width * height; ++i) rows.insert(rows.end(), {red, green, blue});
  return encode_png(width, height, PNG_COLOR_TYPE_RGB, 8, rows);
}

// A width x height RGB JPEG (quality 100) of one colour.
inline std::vector<uint8_t> solid_rgb_jpeg(int width, int height, uint8_t red, uint8_t green, uint8_t blue) {
  std::vector<uint8_t> samples;
  for (int i = 0; i < width * height; ++i) samples.insert(samples.end(), {red, green, blue});
  return encode_jpeg(width, height, 3, samples);
}

}  // namespace st::testing
