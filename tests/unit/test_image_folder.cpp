// Unit tests of image-folder data sets (engine/data/image_folder.h) on PNG and JPEG files written
// here with libpng's and libjpeg's encoders: exact pixels for every PNG colour type, JPEG within a
// small tolerance (quality 100, no chroma subsampling), the crop + resize against an independent
// 2-D area integral and hand-computed bilinear values, the ImageNet and Tiny-ImageNet layouts, and
// every bad input refused with one line naming the file or folder.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/data/image_folder.h"
#include "engine/error.h"
#include "tests/image_files.h"

namespace fs = std::filesystem;
using st::data::Dataset;
using st::data::ImageFolderOptions;
using st::data::RgbImage;
using st::testing::encode_jpeg;
using st::testing::encode_png;
using st::testing::solid_rgb_jpeg;
using st::testing::solid_rgb_png;
using st::testing::write_file_bytes;

namespace {

// A fresh folder under the system temp dir, removed with its content at scope exit.
class TempFolder {
 public:
  TempFolder() {
    static std::atomic<int> counter{0};
    std::random_device entropy;
    path_ = fs::temp_directory_path() / fmt::format("sparsetrain-test-images-{:08x}-{}", entropy(), counter++);
    fs::create_directories(path_);
  }
  ~TempFolder() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string error_of(const std::function<void()>& function) {
  try {
    function();
  } catch (const st::Error& error) {
    return error.what();
  }
  return "<no st::Error was thrown>";
}

// `function` throws st::Error with a one-line message containing every needle.
void check_error(const std::function<void()>& function, const std::vector<std::string>& needles) {
  const std::string message = error_of(function);
  CHECK_MESSAGE(message.find('\n') == std::string::npos, "message is not one line: " << message);
  for (const std::string& needle : needles) {
    CHECK_MESSAGE(message.find(needle) != std::string::npos, "expected '" << needle << "' in: " << message);
  }
}

RgbImage decode(const std::vector<uint8_t>& bytes) { return st::data::decode_image(bytes, "memory"); }

std::vector<uint8_t> random_bytes(size_t count, uint32_t seed) {
  std::mt19937 generator(seed);
  std::vector<uint8_t> bytes(count);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(generator() & 0xff);
  return bytes;
}

// RGB image from a function of (y, x, channel).
template <typename Function>
RgbImage make_image(int64_t height, int64_t width, Function value) {
  RgbImage image{height, width, std::vector<uint8_t>(static_cast<size_t>(height * width * 3))};
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int64_t c = 0; c < 3; ++c)
        image.pixels[static_cast<size_t>((y * width + x) * 3 + c)] = static_cast<uint8_t>(value(y, x, c));
  return image;
}

// Independent reference of the area filter: output (oy, ox) is the mean of the central square of
// `image` over the box [oy*s, (oy+1)*s) x [ox*s, (ox+1)*s), integrated pixel by pixel in 2-D (no
// separable passes, double precision).
double area_reference(const RgbImage& image, int size, int oy, int ox, int c) {
  const int side = static_cast<int>(std::min(image.height, image.width));
  const int top = (static_cast<int>(image.height) - side) / 2, left = (static_cast<int>(image.width) - side) / 2;
  const double s = double(side) / double(size);
  double sum = 0.0;
  for (int y = 0; y < side; ++y) {
    const double overlap_y = std::max(0.0, std::min((oy + 1) * s, y + 1.0) - std::max(oy * s, double(y)));
    for (int x = 0; x < side; ++x) {
      const double overlap_x = std::max(0.0, std::min((ox + 1) * s, x + 1.0) - std::max(ox * s, double(x)));
      sum += overlap_y * overlap_x *
             image.pixels[static_cast<size_t>(((top + y) * static_cast<int>(image.width) + left + x) * 3 + c)];
    }
  }
  return sum / (s * s);
}

// Every output byte is the exact reference rounded to nearest (a tie may go either way).
void check_against_area_reference(const RgbImage& image, int size) {
  const std::vector<uint8_t> out = st::data::center_crop_resize(image, size);
  REQUIRE(out.size() == static_cast<size_t>(size * size * 3));
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x)
      for (int c = 0; c < 3; ++c) {
        const double expected = area_reference(image, size, y, x, c);
        const double got = out[static_cast<size_t>((y * size + x) * 3 + c)];
        INFO("size " << size << " at (" << y << ", " << x << ", " << c << "): expected " << expected);
        CHECK(std::abs(got - expected) <= 0.5 + 1e-3);
      }
}

int max_abs_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  REQUIRE(a.size() == b.size());
  int worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(int(a[i]) - int(b[i])));
  return worst;
}

// A small image folder: classes (unsorted on purpose) with two images each of distinct solid colours;
// colour (40 * class + 10 * index + 5, class, index) identifies the file after loading.
const std::vector<std::string> kClasses = {"cat", "ant", "bee"};

uint8_t class_red(int sorted_class, int index) { return static_cast<uint8_t>(40 * sorted_class + 10 * index + 5); }

void write_imagenet_style(const fs::path& root) {
  const std::vector<std::string> sorted = {"ant", "bee", "cat"};
  for (int label = 0; label < 3; ++label) {
    for (int index = 0; index < 2; ++index) {
      const auto r = class_red(label, index);
      const auto g = static_cast<uint8_t>(label), b = static_cast<uint8_t>(index);
      // 10 x 7 PNG or 9 x 12 PNG named .JPEG (content decides the decoder): resized to 4 x 4.
      if (index == 0) {
        write_file_bytes(root / "train" / sorted[label] / "img_a.png", solid_rgb_png(10, 7, r, g, b));
      } else {
        write_file_bytes(root / "train" / sorted[label] / "img_b.JPEG", solid_rgb_png(9, 12, r, g, b));
      }
    }
    write_file_bytes(root / "train" / sorted[label] / ".DS_Store", {1, 2, 3});  // hidden: skipped
  }
  write_file_bytes(root / "val" / "cat" / "v1.png", solid_rgb_png(5, 5, 200, 2, 0));
  write_file_bytes(root / "val" / "ant" / "v0.png", solid_rgb_png(6, 6, 100, 0, 0));
  write_file_bytes(root / "val" / "ant" / "v2.png", solid_rgb_png(6, 6, 101, 0, 0));
}

// Every pixel of image `index` equals (r, g, b).
void check_solid(const Dataset& data, int64_t index, int r, int g, int b) {
  const uint8_t* p = data.pixels.data() + index * data.pixels_per_image();
  for (int64_t i = 0; i < data.height * data.width; ++i) {
    INFO("image " << index << " pixel " << i);
    REQUIRE(int(p[i * 3]) == r);
    REQUIRE(int(p[i * 3 + 1]) == g);
    REQUIRE(int(p[i * 3 + 2]) == b);
  }
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("PNG decoding gives exact RGB for every colour type") {
    SUBCASE("RGB, 8 bit, also Adam7-interlaced") {
      const std::vector<uint8_t> rgb = random_bytes(5 * 3 * 3, 1);
      for (bool interlaced : {false, true}) {
        const RgbImage image = decode(encode_png(5, 3, PNG_COLOR_TYPE_RGB, 8, rgb, {}, {}, interlaced));
        CHECK(image.width == 5);
        CHECK(image.height == 3);
        CHECK(image.pixels == rgb);
      }
    }
    SUBCASE("grayscale 8 bit and 1 bit replicate into R = G = B") {
      const std::vector<uint8_t> gray = random_bytes(4 * 2, 2);
      const RgbImage image = decode(encode_png(4, 2, PNG_COLOR_TYPE_GRAY, 8, gray));
      REQUIRE(image.pixels.size() == 4 * 2 * 3);
      for (size_t i = 0; i < gray.size(); ++i)
        for (size_t c = 0; c < 3; ++c) CHECK(image.pixels[i * 3 + c] == gray[i]);
      // 1-bit: 0b10110000 -> pixels 1,0,1,1,0 -> 255,0,255,255,0.
      const RgbImage bits = decode(encode_png(5, 1, PNG_COLOR_TYPE_GRAY, 1, {0xb0}));
      const std::vector<uint8_t> expected = {255, 255, 255, 0, 0, 0, 255, 255, 255, 255, 255, 255, 0, 0, 0};
      CHECK(bits.pixels == expected);
    }
    SUBCASE("gray + alpha and RGBA drop the alpha channel") {
      const RgbImage gray_alpha = decode(encode_png(2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, {7, 0, 250, 128}));
      CHECK(gray_alpha.pixels == std::vector<uint8_t>{7, 7, 7, 250, 250, 250});
      const RgbImage rgba = decode(encode_png(2, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8, {1, 2, 3, 0, 4, 5, 6, 255}));
      CHECK(rgba.pixels == std::vector<uint8_t>{1, 2, 3, 4, 5, 6});
    }
    SUBCASE("palette (with transparency) expands to the palette colours") {
      const std::vector<png_color> palette = {{10, 20, 30}, {200, 100, 50}, {0, 255, 1}};
      const RgbImage image = decode(encode_png(4, 1, PNG_COLOR_TYPE_PALETTE, 8, {2, 0, 1, 2}, palette, {255, 0, 128}));
      CHECK(image.pixels == std::vector<uint8_t>{0, 255, 1, 10, 20, 30, 200, 100, 50, 0, 255, 1});
      // 2-bit indices 2, 0, 1, 2 packed MSB first: 0b10'00'01'10.
      const RgbImage packed = decode(encode_png(4, 1, PNG_COLOR_TYPE_PALETTE, 2, {0x86}, palette));
      CHECK(packed.pixels == image.pixels);
    }
    SUBCASE("16-bit samples scale to round(v * 255 / 65535)") {
      const std::vector<uint16_t> samples = {0, 257 * 77, 65535, 0x1234, 0x8000, 0xfedc};
      std::vector<uint8_t> big_endian;
      for (uint16_t v : samples) big_endian.insert(big_endian.end(), {uint8_t(v >> 8), uint8_t(v & 0xff)});
      const RgbImage image = decode(encode_png(2, 1, PNG_COLOR_TYPE_RGB, 16, big_endian));
      REQUIRE(image.pixels.size() == 6);
      for (size_t i = 0; i < samples.size(); ++i) {
        INFO("sample " << samples[i]);
        CHECK(int(image.pixels[i]) == int(std::lround(samples[i] * 255.0 / 65535.0)));
      }
    }
  }

  TEST_CASE("JPEG decoding: RGB, grayscale and CMYK within a small tolerance at quality 100") {
    // A smooth 16 x 16 pattern (JPEG at quality 100 without chroma subsampling is then within a
    // few levels).
    std::vector<uint8_t> rgb;
    for (int y = 0; y < 16; ++y)
      for (int x = 0; x < 16; ++x)
        rgb.insert(rgb.end(), {uint8_t(8 * x + 40), uint8_t(8 * y + 20), uint8_t(200 - 4 * (x + y))});
    const RgbImage image = decode(encode_jpeg(16, 16, 3, rgb));
    CHECK(image.width == 16);
    CHECK(image.height == 16);
    CHECK(max_abs_difference(image.pixels, rgb) <= 3);

    std::vector<uint8_t> gray;
    for (int i = 0; i < 16 * 8; ++i) gray.push_back(uint8_t(30 + i));
    const RgbImage gray_image = decode(encode_jpeg(16, 8, 1, gray));
    std::vector<uint8_t> gray_rgb;
    for (uint8_t v : gray) gray_rgb.insert(gray_rgb.end(), {v, v, v});
    CHECK(max_abs_difference(gray_image.pixels, gray_rgb) <= 2);
    for (size_t i = 0; i < gray_image.pixels.size(); i += 3) {
      CHECK(gray_image.pixels[i] == gray_image.pixels[i + 1]);
      CHECK(gray_image.pixels[i] == gray_image.pixels[i + 2]);
    }

    // CMYK with libjpeg's Adobe marker: inverted samples, R = C * K / 255.
    std::vector<uint8_t> cmyk, expected;
    for (int i = 0; i < 8 * 8; ++i) {
      const int c = 255, m = 128, y = 0, k = 200;
      cmyk.insert(cmyk.end(), {uint8_t(c), uint8_t(m), uint8_t(y), uint8_t(k)});
      expected.insert(expected.end(), {uint8_t((c * k + 127) / 255), uint8_t((m * k + 127) / 255), uint8_t(0)});
    }
    CHECK(max_abs_difference(decode(encode_jpeg(8, 8, 4, cmyk)).pixels, expected) <= 3);
  }

  TEST_CASE("large JPEGs decode at a reduced DCT scale that keeps the shorter side >= the target") {
    TempFolder folder;
    const fs::path file = folder.path() / "big.jpg";
    write_file_bytes(file, solid_rgb_jpeg(128, 96, 30, 120, 220));
    const RgbImage full = st::data::read_image_file(file.string());
    CHECK(full.width == 128);
    CHECK(full.height == 96);
    const RgbImage eighth = st::data::read_image_file(file.string(), 12);  // 96 / 8 = 12
    CHECK(eighth.width == 16);
    CHECK(eighth.height == 12);
    const RgbImage quarter = st::data::read_image_file(file.string(), 13);  // 96 / 8 < 13 <= 96 / 4
    CHECK(quarter.width == 32);
    CHECK(quarter.height == 24);
    std::vector<uint8_t> solid;
    for (int i = 0; i < 16 * 12; ++i) solid.insert(solid.end(), {30, 120, 220});
    CHECK(max_abs_difference(eighth.pixels, solid) <= 3);
  }

  TEST_CASE("center crop + resize: identity, crop offsets, area and bilinear values") {
    SUBCASE("same size is the identity") {
      const RgbImage image = make_image(5, 5, [](int64_t y, int64_t x, int64_t c) { return 50 * c + 7 * y + x; });
      CHECK(st::data::center_crop_resize(image, 5) == image.pixels);
    }
    SUBCASE("the central square is kept, offset floor((long - short) / 2)") {
      // 2 rows x 5 columns: columns 1..2 survive; 5 rows x 2 columns: rows 1..2.
      const RgbImage wide = make_image(2, 5, [](int64_t y, int64_t x, int64_t) { return 10 * y + x; });
      CHECK(st::data::center_crop_resize(wide, 2) == std::vector<uint8_t>{1, 1, 1, 2, 2, 2, 11, 11, 11, 12, 12, 12});
      const RgbImage tall = make_image(5, 2, [](int64_t y, int64_t x, int64_t) { return 10 * y + x; });
      CHECK(st::data::center_crop_resize(tall, 2) ==
            std::vector<uint8_t>{10, 10, 10, 11, 11, 11, 20, 20, 20, 21, 21, 21});
    }
    SUBCASE("area filter by hand: 4 -> 2 block means, 3 -> 2 with weights 2/3, 1/3") {
      const RgbImage four = make_image(4, 4, [](int64_t y, int64_t x, int64_t c) { return 16 * y + 4 * x + c; });
      // block (0,0): mean of 0,4,16,20 = 10; (0,1): 8 + 10 = 18; (1,0): 32 + 10 = 42; (1,1): 50
      CHECK(st::data::center_crop_resize(four, 2) ==
            std::vector<uint8_t>{10, 11, 12, 18, 19, 20, 42, 43, 44, 50, 51, 52});
      const RgbImage three = make_image(3, 3, [](int64_t, int64_t x, int64_t) { return 90 * x; });
      // output 0 = (1 * 0 + 0.5 * 90) / 1.5 = 30; output 1 = (0.5 * 90 + 1 * 180) / 1.5 = 150
      CHECK(st::data::center_crop_resize(three, 2) ==
            std::vector<uint8_t>{30, 30, 30, 150, 150, 150, 30, 30, 30, 150, 150, 150});
    }
    SUBCASE("area filter against a 2-D integral, non-integer ratios, non-square sources") {
      const RgbImage image = make_image(
          9, 13, [](int64_t y, int64_t x, int64_t c) { return (37 * y + 91 * x + 53 * c + 11 * x * y) % 256; });
      for (int size : {8, 7, 5, 4, 3, 2, 1}) check_against_area_reference(image, size);
    }
    SUBCASE("bilinear upscaling with half-pixel centres: 2 -> 4 gives 0, 50, 150, 200") {
      const RgbImage image = make_image(2, 2, [](int64_t, int64_t x, int64_t) { return 200 * x; });
      const std::vector<uint8_t> out = st::data::center_crop_resize(image, 4);
      const int expected[4] = {0, 50, 150, 200};
      for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x)
          for (int c = 0; c < 3; ++c) CHECK(int(out[static_cast<size_t>((y * 4 + x) * 3 + c)]) == expected[x]);
      // 3 -> 5 on both axes: position (o + 0.5) * 0.6 - 0.5 = -0.2, 0.4, 1.0, 1.6, 2.2 (clamped).
      const RgbImage ramp = make_image(3, 3, [](int64_t y, int64_t x, int64_t) { return 100 * x + 10 * y; });
      const std::vector<uint8_t> up = st::data::center_crop_resize(ramp, 5);
      const double position[5] = {0.0, 0.4, 1.0, 1.6, 2.0};
      for (int y = 0; y < 5; ++y)
        for (int x = 0; x < 5; ++x) {
          const double expected_value = 100 * position[x] + 10 * position[y];
          CHECK(std::abs(up[static_cast<size_t>((y * 5 + x) * 3)] - expected_value) <= 0.5 + 1e-3);
        }
    }
    SUBCASE("strong downscaling is antialiased: a 1-pixel checkerboard becomes flat gray") {
      const RgbImage board = make_image(64, 64, [](int64_t y, int64_t x, int64_t) { return (x + y) % 2 ? 255 : 0; });
      for (uint8_t v : st::data::center_crop_resize(board, 8)) CHECK((v == 127 || v == 128));
    }
  }

  TEST_CASE("an ImageNet-style folder: sorted classes, sorted files, mixed formats, resized on load") {
    TempFolder folder;
    write_imagenet_style(folder.path());
    CHECK(st::data::image_folder_classes(folder.path().string()) == std::vector<std::string>{"ant", "bee", "cat"});
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const Dataset serial = st::data::load_image_folder(folder.path().string(), true, {4, 100});
    omp_set_num_threads(3);
    const Dataset train = st::data::load_image_folder(folder.path().string(), true, {4, 100});
    omp_set_num_threads(threads);
    CHECK(train.pixels == serial.pixels);  // independent of the thread count
    CHECK(train.name == (folder.path() / "train").string());
    CHECK(train.height == 4);
    CHECK(train.width == 4);
    CHECK(train.channels == 3);
    CHECK(train.num_classes == 3);
    REQUIRE(train.size() == 6);
    CHECK(train.labels == std::vector<int32_t>{0, 0, 1, 1, 2, 2});
    for (int label = 0; label < 3; ++label)
      for (int index = 0; index < 2; ++index)
        check_solid(train, 2 * label + index, class_red(label, index), label, index);

    const Dataset val = st::data::load_image_folder(folder.path().string(), false, {4, 100});
    CHECK(val.name == (folder.path() / "val").string());
    CHECK(val.num_classes == 3);
    CHECK(val.labels == std::vector<int32_t>{0, 0, 2});  // ant/v0, ant/v2, cat/v1
    check_solid(val, 0, 100, 0, 0);
    check_solid(val, 1, 101, 0, 0);
    check_solid(val, 2, 200, 2, 0);
  }

  TEST_CASE("Tiny-ImageNet's layout: train/<wnid>/images and val/images + val_annotations.txt") {
    TempFolder folder;
    const fs::path root = folder.path();
    const std::vector<std::string> wnids = {"n01443537", "n01629819"};
    for (int label = 0; label < 2; ++label) {
      const fs::path class_dir = root / "train" / wnids[label];
      for (int index = 0; index < 3; ++index) {
        write_file_bytes(class_dir / "images" / fmt::format("{}_{}.JPEG", wnids[label], index),
                         solid_rgb_jpeg(8, 8, uint8_t(60 * label + 20 * index + 10), 128, 64));
      }
      write_file_bytes(class_dir / (wnids[label] + "_boxes.txt"), {'x', '\n'});  // beside images/: ignored
    }
    write_file_bytes(root / "val" / "images" / "val_0.JPEG", solid_rgb_jpeg(8, 8, 250, 0, 0));
    write_file_bytes(root / "val" / "images" / "val_1.JPEG", solid_rgb_jpeg(8, 8, 0, 250, 0));
    write_file_bytes(root / "val" / "images" / "val_2.JPEG", solid_rgb_jpeg(8, 8, 0, 0, 250));
    const std::string annotations =
        "val_1.JPEG\tn01443537\t0\t1\t7\t7\r\n"
        "val_0.JPEG\tn01629819\t0\t0\t8\t8\n\n"
        "val_2.JPEG\tn01443537\t1\t1\t6\t6\n";
    write_file_bytes(root / "val" / "val_annotations.txt", {annotations.begin(), annotations.end()});
    const Dataset train = st::data::load_image_folder(root.string(), true, {8, 10});
    CHECK(train.labels == std::vector<int32_t>{0, 0, 0, 1, 1, 1});
    CHECK(train.num_classes == 2);
    const Dataset val = st::data::load_image_folder(root.string(), false, {8, 10});
    CHECK(val.labels == std::vector<int32_t>{1, 0, 0});  // val_0, val_1, val_2 in file order
    std::vector<uint8_t> first(val.pixels.begin(), val.pixels.begin() + 8 * 8 * 3), red;
    for (int i = 0; i < 64; ++i) red.insert(red.end(), {250, 0, 0});
    CHECK(max_abs_difference(first, red) <= 3);
    std::vector<uint8_t> train_image(train.pixels.begin() + 4 * 64 * 3, train.pixels.begin() + 5 * 64 * 3), color;
    for (int i = 0; i < 64; ++i) color.insert(color.end(), {90, 128, 64});  // label 1, index 1
    CHECK(max_abs_difference(train_image, color) <= 3);
  }

  TEST_CASE("bad image folders are refused with one line naming the file or folder") {
    TempFolder folder;
    const fs::path root = folder.path() / "data";
    const ImageFolderOptions options{4, 100};
    auto load = [&](bool train) { (void)st::data::load_image_folder(root.string(), train, options); };
    auto good_tree = [&] {
      fs::remove_all(root);
      write_imagenet_style(root);
    };

    SUBCASE("missing root, missing train, no classes, empty class folder") {
      check_error([&] { load(true); }, {root.string(), "no such directory"});
      fs::create_directories(root);
      check_error([&] { load(true); }, {(root / "train").string(), "no such directory", "<class>"});
      fs::create_directories(root / "train");
      check_error([&] { load(true); }, {(root / "train").string(), "no class folders"});
      good_tree();
      fs::create_directories(root / "train" / "dog");
      check_error([&] { load(true); }, {(root / "train" / "dog").string(), "empty class folder"});
    }
    SUBCASE("unsupported extension, stray file, unexpected folder") {
      good_tree();
      write_file_bytes(root / "train" / "bee" / "photo.gif", {'G', 'I', 'F'});
      check_error([&] { load(true); }, {(root / "train" / "bee" / "photo.gif").string(), "'.gif'", ".png"});
      good_tree();
      write_file_bytes(root / "train" / "wnids.txt", {'x'});
      check_error([&] { load(true); }, {(root / "train" / "wnids.txt").string(), "class folders"});
      good_tree();
      fs::create_directories(root / "train" / "bee" / "more");
      check_error([&] { load(true); }, {(root / "train" / "bee" / "more").string(), "unexpected folder"});
    }
    SUBCASE("undecodable, corrupt, truncated and empty files") {
      const fs::path file = root / "train" / "bee" / "img_a.png";
      good_tree();
      write_file_bytes(file, {'h', 'e', 'l', 'l', 'o'});
      check_error([&] { load(true); }, {file.string(), "not a JPEG or PNG", "68 65 6c 6c"});
      good_tree();
      write_file_bytes(file, {});
      check_error([&] { load(true); }, {file.string(), "empty file"});

      std::vector<uint8_t> png = solid_rgb_png(10, 7, 1, 2, 3);
      good_tree();
      write_file_bytes(file, std::vector<uint8_t>(png.begin(), png.begin() + static_cast<long>(png.size()) - 20));
      check_error([&] { load(true); }, {file.string(), "truncated PNG"});
      good_tree();
      png[16] ^= 0x40;  // IHDR width byte: the chunk's CRC no longer matches
      write_file_bytes(file, png);
      check_error([&] { load(true); }, {file.string(), "corrupt or unsupported PNG", "CRC"});

      const fs::path jpeg_file = root / "train" / "cat" / "img_b.JPEG";
      std::vector<uint8_t> jpeg = encode_jpeg(16, 16, 3, random_bytes(16 * 16 * 3, 9));
      good_tree();
      write_file_bytes(jpeg_file,
                       std::vector<uint8_t>(jpeg.begin(), jpeg.begin() + static_cast<long>(jpeg.size()) / 2));
      check_error([&] { load(true); }, {jpeg_file.string(), "truncated JPEG", "Premature end"});
      good_tree();
      // SOF0 (baseline) turned into SOF3 (lossless), which libjpeg refuses.
      const uint8_t sof0[2] = {0xff, 0xc0};
      const auto sof = std::search(jpeg.begin(), jpeg.end(), sof0, sof0 + 2);
      REQUIRE(sof != jpeg.end());
      *(sof + 1) = 0xc3;
      write_file_bytes(jpeg_file, jpeg);
      check_error([&] { load(true); }, {jpeg_file.string(), "corrupt or unsupported JPEG", "libjpeg"});
    }
    SUBCASE("the first bad file in sorted order is the one reported, whatever the threads") {
      good_tree();
      write_file_bytes(root / "train" / "cat" / "img_a.png", {1, 2, 3, 4});
      write_file_bytes(root / "train" / "ant" / "img_b.JPEG", {5, 6, 7, 8});
      const int threads = omp_get_max_threads();
      omp_set_num_threads(4);
      check_error([&] { load(true); }, {(root / "train" / "ant" / "img_b.JPEG").string()});
      omp_set_num_threads(threads);
    }
    SUBCASE("more images than max_images") {
      good_tree();
      check_error(
          [&] {
            (void)st::data::load_image_folder(root.string(), true, {64, 5});
          },
          {(root / "train").string(), "6 images", "--max-images 5", "73728 bytes"});
    }
    SUBCASE("val: missing, unknown class folder") {
      good_tree();
      fs::remove_all(root / "val");
      check_error([&] { load(false); }, {(root / "val").string(), "no such directory", "val_annotations.txt"});
      good_tree();
      write_file_bytes(root / "val" / "dog" / "d.png", solid_rgb_png(4, 4, 0, 0, 0));
      check_error([&] { load(false); }, {(root / "val" / "dog").string(), "not a class of"});
    }
    SUBCASE("Tiny-ImageNet annotations: malformed line, unknown class, unannotated and missing files") {
      auto tiny_val = [&](const std::string& annotations) {
        good_tree();
        fs::remove_all(root / "val");
        write_file_bytes(root / "val" / "images" / "val_0.JPEG", solid_rgb_png(4, 4, 0, 0, 0));
        write_file_bytes(root / "val" / "val_annotations.txt", {annotations.begin(), annotations.end()});
      };
      const std::string annotations_path = (root / "val" / "val_annotations.txt").string();
      tiny_val("val_0.JPEG\n");
      check_error([&] { load(false); }, {annotations_path + ":1", "expected"});
      tiny_val("val_0.JPEG\tbee\nval_1.JPEG\tn999\n");
      check_error([&] { load(false); }, {annotations_path + ":2", "'n999'", "not a class folder"});
      tiny_val("other.JPEG\tbee\n");
      check_error([&] { load(false); }, {(root / "val" / "images" / "val_0.JPEG").string(), "no line"});
      tiny_val("val_0.JPEG\tbee\nval_7.JPEG\tant\n");
      check_error([&] { load(false); }, {annotations_path, "val_7.JPEG", "not in"});
      tiny_val("val_0.JPEG\tbee\nval_0.JPEG\tant\n");
      check_error([&] { load(false); }, {annotations_path + ":2", "twice"});
    }
  }
}
