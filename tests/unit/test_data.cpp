// Unit tests of the data room: the IDX and CIFAR readers on small hand-written files (raw and
// gzipped), every kind of bad input the readers must refuse with a one-line message naming the
// file, the train/validation split, normalization statistics, and the BatchLoader (determinism,
// resumability, pad_to / crop / flip against a per-pixel reference). When Debian's Fashion-MNIST is
// installed, the real files are loaded and checked as well.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/data/loader.h"
#include "engine/error.h"

namespace fs = std::filesystem;
using st::data::AugmentOptions;
using st::data::BatchLoader;
using st::data::Dataset;
using st::data::Normalization;

namespace {

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDirectory {
 public:
  TempDirectory() {
    static std::atomic<int> counter{0};
    std::random_device entropy;
    path_ = fs::temp_directory_path() /
            fmt::format("sparsetrain-test-data-{:08x}-{}", entropy(), counter++);
    fs::create_directories(path_);
  }
  ~TempDirectory() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDirectory(const TempDirectory&) = delete;
  TempDirectory& operator=(const TempDirectory&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

void append_big_endian(std::vector<uint8_t>& bytes, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8)
    bytes.push_back(static_cast<uint8_t>(value >> shift));
}

std::vector<uint8_t> idx_images_file(uint32_t count, uint32_t rows, uint32_t columns,
                                     const std::vector<uint8_t>& pixels,
                                     uint32_t magic = 0x00000803) {
  std::vector<uint8_t> bytes;
  append_big_endian(bytes, magic);
  append_big_endian(bytes, count);
  append_big_endian(bytes, rows);
  append_big_endian(bytes, columns);
  bytes.insert(bytes.end(), pixels.begin(), pixels.end());
  return bytes;
}

std::vector<uint8_t> idx_labels_file(const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> bytes;
  append_big_endian(bytes, 0x00000801);
  append_big_endian(bytes, static_cast<uint32_t>(labels.size()));
  bytes.insert(bytes.end(), labels.begin(), labels.end());
  return bytes;
}

void write_raw(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  REQUIRE(file.good());
}

std::vector<uint8_t> read_raw(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(file), {});
}

// mode "wb" writes a new gzip file, "ab" appends another gzip member to it.
void write_gzip(const std::string& path, const std::vector<uint8_t>& bytes,
                const char* mode = "wb") {
  gzFile file = gzopen(path.c_str(), mode);
  REQUIRE(file != nullptr);
  if (!bytes.empty()) {
    REQUIRE(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())) ==
            static_cast<int>(bytes.size()));
  }
  REQUIRE(gzclose(file) == Z_OK);
}

// Distinct, non-trivial pixel values (so a misplaced byte is noticed).
std::vector<uint8_t> pattern_pixels(size_t count, int salt = 0) {
  std::vector<uint8_t> pixels(count);
  for (size_t index = 0; index < count; ++index) {
    pixels[index] = static_cast<uint8_t>((index * 37 + static_cast<size_t>(salt) * 101 + 5) % 256);
  }
  return pixels;
}

template <typename Function>
std::string error_message_of(Function&& function) {
  try {
    function();
  } catch (const st::Error& error) {
    return error.what();
  }
  return "<no st::Error was thrown>";
}

// Asserts that `expression` throws st::Error with a one-line message containing every needle
// (the file path among them).
#define CHECK_DATA_ERROR(expression, ...)                                      \
  do {                                                                         \
    const std::string message = error_message_of([&] { (void)(expression); }); \
    CHECK_MESSAGE(message.find('\n') == std::string::npos,                     \
                  "message is not one line: " << message);                     \
    for (const std::string& needle : std::vector<std::string>{__VA_ARGS__}) {  \
      CHECK_MESSAGE(message.find(needle) != std::string::npos,                 \
                    "expected '" << needle << "' in: " << message);            \
    }                                                                          \
  } while (0)

// A dataset built in memory: `count` images of height x width x channels.
Dataset make_dataset(int64_t count, int64_t height, int64_t width, int64_t channels,
                     int num_classes = 10) {
  Dataset dataset;
  dataset.name = "toy";
  dataset.height = height;
  dataset.width = width;
  dataset.channels = channels;
  dataset.num_classes = num_classes;
  dataset.pixels = pattern_pixels(static_cast<size_t>(count * height * width * channels));
  for (int64_t index = 0; index < count; ++index) {
    dataset.labels.push_back(static_cast<int32_t>(index % num_classes));
  }
  return dataset;
}

// A dataset whose image i is 1x1x1 with pixel value i: the pixel identifies the sample.
Dataset identity_dataset(int64_t count) {
  Dataset dataset = make_dataset(count, 1, 1, 1);
  for (int64_t index = 0; index < count; ++index)
    dataset.pixels[index] = static_cast<uint8_t>(index);
  return dataset;
}

// Sample ids (pixel values of identity_dataset, x/255 undone) of one loaded batch.
std::vector<int> sample_ids(const std::vector<float>& images) {
  std::vector<int> ids;
  for (float value : images) ids.push_back(static_cast<int>(std::lround(value * 255.0f)));
  return ids;
}

// The loader's contract written out per pixel, for one image: see loader.h.
float reference_pixel(const Dataset& data, int64_t index, int64_t out_size_y, int64_t out_size_x,
                      int64_t out_y, int64_t out_x, int64_t channel, int64_t crop_row,
                      int64_t crop_column, bool flipped, const Normalization& normalization) {
  const int64_t canvas_y = out_y + crop_row;
  const int64_t canvas_x = (flipped ? out_size_x - 1 - out_x : out_x) + crop_column;
  if (canvas_y < 0 || canvas_y >= out_size_y || canvas_x < 0 || canvas_x >= out_size_x) return 0.0f;
  const int64_t image_y = canvas_y - (out_size_y - data.height) / 2;
  const int64_t image_x = canvas_x - (out_size_x - data.width) / 2;
  uint8_t raw = 0;
  if (image_y >= 0 && image_y < data.height && image_x >= 0 && image_x < data.width) {
    raw = data.pixels[((index * data.height + image_y) * data.width + image_x) * data.channels +
                      channel];
  }
  return (static_cast<float>(raw) / 255.0f - normalization.mean[channel]) /
         normalization.std[channel];
}

bool matches_reference(const std::vector<float>& images, int64_t sample, const Dataset& data,
                       int64_t index, const BatchLoader& loader, int64_t crop_row,
                       int64_t crop_column, bool flipped, const Normalization& normalization) {
  const int64_t height = loader.output_height(), width = loader.output_width();
  const int64_t channels = loader.channels();
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      for (int64_t c = 0; c < channels; ++c) {
        const float expected = reference_pixel(data, index, height, width, y, x, c, crop_row,
                                               crop_column, flipped, normalization);
        const float actual =
            images[static_cast<size_t>(((sample * height + y) * width + x) * channels + c)];
        if (std::fabs(expected - actual) > 1e-5f) return false;
      }
    }
  }
  return true;
}

// Writes a CIFAR record: label byte(s), then three 32x32 planes where plane c, position p holds
// cifar_value(record_seed, c, p).
uint8_t cifar_value(int record_seed, int channel, int position) {
  return static_cast<uint8_t>((record_seed * 29 + channel * 100 + position * 7) % 256);
}

void append_cifar_record(std::vector<uint8_t>& bytes, std::vector<uint8_t> label_bytes,
                         int record_seed) {
  bytes.insert(bytes.end(), label_bytes.begin(), label_bytes.end());
  for (int channel = 0; channel < 3; ++channel) {
    for (int position = 0; position < 1024; ++position) {
      bytes.push_back(cifar_value(record_seed, channel, position));
    }
  }
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("read_idx reads raw IDX files exactly") {
    TempDirectory dir;
    const std::vector<uint8_t> pixels = pattern_pixels(3 * 2 * 3);
    write_raw(dir.file("images"), idx_images_file(3, 2, 3, pixels));
    write_raw(dir.file("labels"), idx_labels_file({7, 0, 9}));

    const Dataset dataset = st::data::read_idx(dir.file("images"), dir.file("labels"));
    CHECK(dataset.size() == 3);
    CHECK(dataset.height == 2);
    CHECK(dataset.width == 3);
    CHECK(dataset.channels == 1);
    CHECK(dataset.num_classes == 10);
    CHECK(dataset.name == dir.file("images"));
    CHECK(dataset.pixels == pixels);
    CHECK(dataset.labels == std::vector<int32_t>{7, 0, 9});
    CHECK(dataset.pixels[5] == pixels[5]);
    CHECK(dataset.pixels[17] == static_cast<uint8_t>((17 * 37 + 5) % 256));
  }

  TEST_CASE("read_idx reads gzipped files, multi-member gzip, and mixed gzip/raw") {
    TempDirectory dir;
    const uint32_t count = 120, rows = 28,
                   columns = 28;  // 94080 pixel bytes: past the first buffer
    const std::vector<uint8_t> pixels = pattern_pixels(count * rows * columns, 3);
    std::vector<uint8_t> labels;
    for (uint32_t index = 0; index < count; ++index)
      labels.push_back(static_cast<uint8_t>(index % 10));
    const std::vector<uint8_t> images_bytes = idx_images_file(count, rows, columns, pixels);

    write_gzip(dir.file("images.gz"), images_bytes);
    write_gzip(dir.file("labels.gz"), idx_labels_file(labels));
    write_raw(dir.file("labels"), idx_labels_file(labels));
    REQUIRE(read_raw(dir.file("images.gz"))[0] == 0x1f);
    REQUIRE(read_raw(dir.file("images.gz"))[1] == 0x8b);

    const Dataset from_gzip = st::data::read_idx(dir.file("images.gz"), dir.file("labels.gz"));
    CHECK(from_gzip.size() == count);
    CHECK(from_gzip.pixels == pixels);
    CHECK(from_gzip.labels[119] == 9);
    const Dataset mixed = st::data::read_idx(dir.file("images.gz"), dir.file("labels"));
    CHECK(mixed.pixels == pixels);
    CHECK(mixed.labels == from_gzip.labels);

    // Two gzip members (as `cat a.gz b.gz` makes): the size hint in the trailer covers only the
    // small last member, so the output buffer must grow.
    const auto split_at = static_cast<std::ptrdiff_t>(images_bytes.size() - 100);
    write_gzip(dir.file("two-members.gz"), {images_bytes.begin(), images_bytes.begin() + split_at});
    write_gzip(dir.file("two-members.gz"), {images_bytes.begin() + split_at, images_bytes.end()},
               "ab");
    CHECK(st::data::read_file_maybe_gzip(dir.file("two-members.gz")) == images_bytes);
    const Dataset two_members = st::data::read_idx(dir.file("two-members.gz"), dir.file("labels"));
    CHECK(two_members.pixels == pixels);
  }

  TEST_CASE("load_idx_directory prefers .gz, falls back to raw, and names the split") {
    TempDirectory dir;
    const std::vector<uint8_t> gz_pixels = pattern_pixels(2 * 4, 1);
    const std::vector<uint8_t> raw_pixels = pattern_pixels(2 * 4, 2);
    write_gzip(dir.file("train-images-idx3-ubyte.gz"), idx_images_file(2, 2, 2, gz_pixels));
    write_gzip(dir.file("train-labels-idx1-ubyte.gz"), idx_labels_file({1, 2}));
    write_raw(dir.file("train-images-idx3-ubyte"), idx_images_file(2, 2, 2, raw_pixels));
    write_raw(dir.file("train-labels-idx1-ubyte"), idx_labels_file({3, 4}));
    write_raw(dir.file("t10k-images-idx3-ubyte"), idx_images_file(2, 2, 2, raw_pixels));
    write_raw(dir.file("t10k-labels-idx1-ubyte"), idx_labels_file({5, 6}));

    const Dataset train = st::data::load_idx_directory(dir.path(), true, "toy-mnist");
    CHECK(train.name == "toy-mnist/train");
    CHECK(train.pixels == gz_pixels);
    CHECK(train.labels == std::vector<int32_t>{1, 2});
    const Dataset test = st::data::load_idx_directory(dir.path(), false, "toy-mnist");
    CHECK(test.name == "toy-mnist/test");
    CHECK(test.pixels == raw_pixels);
    CHECK(test.labels == std::vector<int32_t>{5, 6});

    fs::remove(dir.file("t10k-labels-idx1-ubyte"));
    CHECK_DATA_ERROR(st::data::load_idx_directory(dir.path(), false, "toy-mnist"),
                     dir.file("t10k-labels-idx1-ubyte"), "no such file");
    CHECK_DATA_ERROR(st::data::load_idx_directory(dir.file("missing"), true, "toy-mnist"),
                     dir.file("missing"), "no such directory");
  }

  TEST_CASE("read_cifar converts CIFAR-10 CHW planes to NHWC and concatenates files in order") {
    TempDirectory dir;
    std::vector<uint8_t> first, second;
    append_cifar_record(first, {3}, 0);
    append_cifar_record(first, {9}, 1);
    append_cifar_record(second, {0}, 2);
    write_raw(dir.file("a.bin"), first);
    write_gzip(dir.file("b.bin.gz"), second);  // gzip is accepted transparently

    const Dataset dataset = st::data::read_cifar({dir.file("a.bin"), dir.file("b.bin.gz")}, false);
    REQUIRE(dataset.size() == 3);
    CHECK(dataset.height == 32);
    CHECK(dataset.width == 32);
    CHECK(dataset.channels == 3);
    CHECK(dataset.num_classes == 10);
    CHECK(dataset.labels == std::vector<int32_t>{3, 9, 0});
    REQUIRE(dataset.pixels.size() == 3u * 3072u);
    int mismatches = 0;
    for (int record = 0; record < 3; ++record) {
      for (int position = 0; position < 1024; ++position) {
        for (int channel = 0; channel < 3; ++channel) {
          const uint8_t actual =
              dataset.pixels[static_cast<size_t>((record * 1024 + position) * 3 + channel)];
          if (actual != cifar_value(record, channel, position)) ++mismatches;
        }
      }
    }
    CHECK(mismatches == 0);
    // One pixel spelled out: record 1, row 1, column 2 (position 34), blue plane.
    CHECK(dataset.pixels[(1 * 1024 + 34) * 3 + 2] ==
          static_cast<uint8_t>((1 * 29 + 200 + 34 * 7) % 256));
    CHECK(dataset.pixels[(1 * 1024 + 34) * 3 + 0] ==
          static_cast<uint8_t>((1 * 29 + 0 + 34 * 7) % 256));
  }

  TEST_CASE("read_cifar uses the fine label of CIFAR-100 records") {
    TempDirectory dir;
    std::vector<uint8_t> bytes;
    append_cifar_record(bytes, {19, 99}, 0);
    append_cifar_record(bytes, {4, 30}, 5);
    write_raw(dir.file("train.bin"), bytes);
    const Dataset dataset = st::data::read_cifar({dir.file("train.bin")}, true);
    CHECK(dataset.num_classes == 100);
    CHECK(dataset.labels == std::vector<int32_t>{99, 30});
    CHECK(dataset.pixels[(1 * 1024 + 0) * 3 + 1] == cifar_value(5, 1, 0));
    CHECK(dataset.pixels[(0 * 1024 + 1023) * 3 + 2] == cifar_value(0, 2, 1023));
  }

  TEST_CASE("load_cifar_directory finds the standard files, also inside the unpacked folder") {
    TempDirectory dir;
    for (int batch = 1; batch <= 5; ++batch) {
      std::vector<uint8_t> bytes;
      append_cifar_record(bytes, {static_cast<uint8_t>(batch - 1)}, batch);
      write_raw(dir.file(fmt::format("data_batch_{}.bin", batch)), bytes);
    }
    std::vector<uint8_t> test_bytes;
    append_cifar_record(test_bytes, {7}, 0);
    append_cifar_record(test_bytes, {8}, 0);
    write_raw(dir.file("test_batch.bin"), test_bytes);

    const Dataset train = st::data::load_cifar_directory(dir.path(), true, false);
    CHECK(train.name == "cifar-10/train");
    CHECK(train.labels == std::vector<int32_t>{0, 1, 2, 3, 4});
    CHECK(train.pixels[(4 * 1024 + 10) * 3 + 1] == cifar_value(5, 1, 10));
    const Dataset test = st::data::load_cifar_directory(dir.path(), false, false);
    CHECK(test.name == "cifar-10/test");
    CHECK(test.labels == std::vector<int32_t>{7, 8});

    fs::create_directories(dir.file("cifar-100-binary"));
    std::vector<uint8_t> hundred;
    append_cifar_record(hundred, {1, 42}, 0);
    write_raw(dir.file("cifar-100-binary/test.bin"), hundred);
    const Dataset cifar100_test = st::data::load_cifar_directory(dir.path(), false, true);
    CHECK(cifar100_test.name == "cifar-100/test");
    CHECK(cifar100_test.labels == std::vector<int32_t>{42});

    CHECK_DATA_ERROR(st::data::load_cifar_directory(dir.path(), true, true), dir.file("train.bin"),
                     "no such file");
    fs::remove(dir.file("data_batch_3.bin"));
    CHECK_DATA_ERROR(st::data::load_cifar_directory(dir.path(), true, false),
                     dir.file("data_batch_3.bin"), "no such file");
  }

  TEST_CASE("split_train_validation: sizes, disjoint parts covering everything, determinism") {
    const Dataset full = identity_dataset(20);
    const auto [train, validation] = st::data::split_train_validation(full, 5, 42);
    CHECK(train.size() == 15);
    CHECK(validation.size() == 5);
    CHECK(train.name == "toy:train");
    CHECK(validation.name == "toy:validation");
    CHECK(train.height == 1);
    CHECK(validation.num_classes == 10);
    CHECK(train.pixels.size() == 15u);
    CHECK(validation.pixels.size() == 5u);

    std::set<int> all_ids;
    for (uint8_t id : train.pixels) all_ids.insert(id);
    for (uint8_t id : validation.pixels) all_ids.insert(id);
    CHECK(all_ids.size() == 20u);  // disjoint and complete
    CHECK(*all_ids.rbegin() == 19);
    // Each part keeps file order and its labels travel with their images.
    CHECK(std::is_sorted(train.pixels.begin(), train.pixels.end()));
    CHECK(std::is_sorted(validation.pixels.begin(), validation.pixels.end()));
    for (int64_t index = 0; index < validation.size(); ++index) {
      CHECK(validation.labels[index] == validation.pixels[index] % 10);
    }
    // Not simply the last five samples of the file.
    CHECK(validation.pixels != std::vector<uint8_t>{15, 16, 17, 18, 19});

    const auto [train_again, validation_again] = st::data::split_train_validation(full, 5, 42);
    CHECK(validation_again.pixels == validation.pixels);
    CHECK(train_again.pixels == train.pixels);
    const auto [train_other, validation_other] = st::data::split_train_validation(full, 5, 43);
    CHECK(validation_other.pixels != validation.pixels);

    const auto [train_all, validation_none] = st::data::split_train_validation(full, 0, 42);
    CHECK(validation_none.size() == 0);
    CHECK(train_all.pixels == full.pixels);

    CHECK_DATA_ERROR(st::data::split_train_validation(full, 20, 1), "--val-size", "20", "toy");
    CHECK_DATA_ERROR(st::data::split_train_validation(full, -1, 1), "--val-size", "-1");
  }

  TEST_CASE("compute_normalization: per-channel mean and population std in [0,1] units") {
    Dataset dataset = make_dataset(2, 1, 2, 2);
    // Channel 0 takes 0, 255, 0, 255: mean 0.5, std 0.5. Channel 1 takes 255, 255, 255, 0:
    // mean 0.75, std sqrt(0.75 - 0.75^2) = sqrt(0.1875).
    dataset.pixels = {0, 255, 255, 255, 0, 255, 255, 0};
    const Normalization normalization = st::data::compute_normalization(dataset);
    REQUIRE(normalization.mean.size() == 2u);
    REQUIRE(normalization.std.size() == 2u);
    CHECK(normalization.mean[0] == doctest::Approx(0.5).epsilon(1e-7));
    CHECK(normalization.std[0] == doctest::Approx(0.5).epsilon(1e-7));
    CHECK(normalization.mean[1] == doctest::Approx(0.75).epsilon(1e-7));
    CHECK(normalization.std[1] == doctest::Approx(std::sqrt(0.1875)).epsilon(1e-7));

    Dataset constant = make_dataset(3, 2, 2, 1);
    std::fill(constant.pixels.begin(), constant.pixels.end(), uint8_t{51});
    const Normalization flat = st::data::compute_normalization(constant);
    CHECK(flat.mean[0] == doctest::Approx(0.2).epsilon(1e-7));
    CHECK(flat.std[0] == 0.0f);
    CHECK_DATA_ERROR(BatchLoader(constant, 1, false, false, 0, {}, flat), "toy", "std > 0");
  }

  TEST_CASE("BatchLoader without shuffle: batch counts, last batch, normalized values") {
    const Dataset data = make_dataset(10, 2, 2, 1);
    const Normalization normalization{{0.5f}, {0.25f}};
    const BatchLoader loader(data, 4, false, false, 1, {}, normalization);
    CHECK(loader.batches_per_epoch() == 3);
    CHECK(loader.batch_size() == 4);
    CHECK(loader.output_height() == 2);
    CHECK(loader.output_width() == 2);
    CHECK(loader.channels() == 1);
    CHECK(&loader.dataset() == &data);
    CHECK(BatchLoader(data, 4, false, true, 1, {}, normalization).batches_per_epoch() == 2);
    CHECK(BatchLoader(data, 5, false, true, 1, {}, normalization).batches_per_epoch() == 2);

    std::vector<float> images;
    std::vector<int32_t> labels;
    CHECK(loader.fill_batch(0, 1, images, labels) == 4);
    CHECK(labels == std::vector<int32_t>{4, 5, 6, 7});
    REQUIRE(images.size() == 16u);
    for (size_t k = 0; k < 16; ++k) {
      const float raw = data.pixels[16 + k];
      CHECK(images[k] == doctest::Approx((raw / 255.0f - 0.5f) / 0.25f).epsilon(1e-6));
    }
    CHECK(loader.fill_batch(0, 2, images, labels) == 2);  // the smaller last batch
    CHECK(images.size() == 8u);
    CHECK(labels == std::vector<int32_t>{8, 9});
    CHECK(images[7] == doctest::Approx((data.pixels[39] / 255.0f - 0.5f) / 0.25f).epsilon(1e-6));

    // An empty Normalization is plain x/255.
    const BatchLoader plain(data, 10, false, false, 1, {}, {});
    plain.fill_batch(3, 0, images, labels);
    CHECK(images[13] == doctest::Approx(data.pixels[13] / 255.0f).epsilon(1e-7));
  }

  TEST_CASE("BatchLoader shuffle: each epoch a permutation, batches independent of call order") {
    const Dataset data = identity_dataset(103);
    const BatchLoader loader(data, 10, true, false, 7, {}, {});
    REQUIRE(loader.batches_per_epoch() == 11);

    std::vector<std::vector<int>> epoch0, epoch1;
    std::vector<float> images;
    std::vector<int32_t> labels;
    for (int64_t batch = 0; batch < 11; ++batch) {
      loader.fill_batch(0, batch, images, labels);
      epoch0.push_back(sample_ids(images));
      for (size_t k = 0; k < labels.size(); ++k) CHECK(labels[k] == epoch0.back()[k] % 10);
      loader.fill_batch(1, batch, images,
                        labels);  // interleaved epochs must not disturb each other
      epoch1.push_back(sample_ids(images));
    }
    CHECK(epoch0.back().size() == 3u);

    std::vector<int> order0, order1;
    for (const auto& batch : epoch0) order0.insert(order0.end(), batch.begin(), batch.end());
    for (const auto& batch : epoch1) order1.insert(order1.end(), batch.begin(), batch.end());
    std::vector<int> sorted0 = order0, identity(103);
    std::sort(sorted0.begin(), sorted0.end());
    for (int index = 0; index < 103; ++index) identity[index] = index;
    CHECK(sorted0 == identity);  // every sample exactly once
    CHECK(order0 != identity);   // actually shuffled
    CHECK(order1 != order0);     // a new order each epoch
    const std::vector<int64_t> expected_order = loader.epoch_order(0);
    CHECK(std::equal(order0.begin(), order0.end(), expected_order.begin()));

    // A fresh loader (as after a resume) asked in reverse order gives the very same batches.
    const BatchLoader resumed(data, 10, true, false, 7, {}, {});
    for (int64_t batch = 10; batch >= 0; --batch) {
      resumed.fill_batch(0, batch, images, labels);
      CHECK(sample_ids(images) == epoch0[static_cast<size_t>(batch)]);
    }
    const BatchLoader other_seed(data, 10, true, false, 8, {}, {});
    other_seed.fill_batch(0, 0, images, labels);
    CHECK(sample_ids(images) != epoch0[0]);
  }

  TEST_CASE("BatchLoader augmentation is a function of (seed, epoch, position) only") {
    const Dataset data = make_dataset(50, 6, 5, 2);
    const AugmentOptions augment{8, 2, true};
    const Normalization normalization{{0.4f, 0.6f}, {0.2f, 0.3f}};
    const BatchLoader forward(data, 8, true, false, 11, augment, normalization);
    const BatchLoader backward(data, 8, true, false, 11, augment, normalization);
    CHECK(forward.output_height() == 8);
    CHECK(forward.output_width() == 8);

    std::vector<std::vector<float>> forward_batches(7), backward_batches(7);
    std::vector<int32_t> labels;
    for (int64_t batch = 0; batch < 7; ++batch) {
      forward.fill_batch(2, batch, forward_batches[static_cast<size_t>(batch)], labels);
    }
    for (int64_t batch = 6; batch >= 0; --batch) {
      backward.fill_batch(2, batch, backward_batches[static_cast<size_t>(batch)], labels);
    }
    CHECK(forward_batches == backward_batches);
    std::vector<float> again;
    forward.fill_batch(3, 1, again, labels);
    CHECK(again != forward_batches[1]);
    forward.fill_batch(2, 1, again, labels);
    CHECK(again == forward_batches[1]);

    // Every augmented sample is its image under some crop offset and flip, per the reference.
    const std::vector<int64_t> order = forward.epoch_order(2);
    for (int64_t batch = 0; batch < 7; ++batch) {
      const auto& images = forward_batches[static_cast<size_t>(batch)];
      const int64_t samples = batch == 6 ? 2 : 8;
      for (int64_t sample = 0; sample < samples; ++sample) {
        const int64_t index = order[static_cast<size_t>(batch * 8 + sample)];
        bool found = false;
        for (int64_t dy = -2; dy <= 2 && !found; ++dy) {
          for (int64_t dx = -2; dx <= 2 && !found; ++dx) {
            for (bool flipped : {false, true}) {
              if (matches_reference(images, sample, data, index, forward, dy, dx, flipped,
                                    normalization)) {
                found = true;
              }
            }
          }
        }
        CHECK_MESSAGE(found, "batch " << batch << " sample " << sample);
      }
    }
  }

  TEST_CASE("pad_to centres the image on a raw-black canvas") {
    Dataset data = make_dataset(1, 2, 2, 1);
    data.pixels = {10, 20, 30, 40};
    const Normalization normalization{{0.5f}, {0.5f}};
    const auto normalized = [](float raw) { return (raw / 255.0f - 0.5f) / 0.5f; };
    std::vector<float> images;
    std::vector<int32_t> labels;

    const BatchLoader to4(data, 1, false, false, 0, {4, 0, false}, normalization);
    CHECK(to4.output_height() == 4);
    to4.fill_batch(0, 0, images, labels);
    REQUIRE(images.size() == 16u);
    const float black = normalized(0.0f);
    CHECK(black == doctest::Approx(-1.0f));
    // clang-format off
    const std::vector<float> expected4 = {
        black, black,            black,            black,
        black, normalized(10.f), normalized(20.f), black,
        black, normalized(30.f), normalized(40.f), black,
        black, black,            black,            black};
    // clang-format on
    for (size_t k = 0; k < 16; ++k) CHECK(images[k] == doctest::Approx(expected4[k]).epsilon(1e-6));

    // Odd difference: 2 -> 5 puts one row/column before the image and two after it.
    const BatchLoader to5(data, 1, false, false, 0, {5, 0, false}, normalization);
    to5.fill_batch(0, 0, images, labels);
    REQUIRE(images.size() == 25u);
    CHECK(images[1 * 5 + 1] == doctest::Approx(normalized(10.f)).epsilon(1e-6));
    CHECK(images[1 * 5 + 2] == doctest::Approx(normalized(20.f)).epsilon(1e-6));
    CHECK(images[2 * 5 + 2] == doctest::Approx(normalized(40.f)).epsilon(1e-6));
    CHECK(images[0 * 5 + 0] == doctest::Approx(black));
    CHECK(images[3 * 5 + 3] == doctest::Approx(black));
    CHECK(images[4 * 5 + 4] == doctest::Approx(black));
    CHECK(images[2 * 5 + 3] == doctest::Approx(black));
  }

  TEST_CASE("flip reverses columns (not channels) with probability one half") {
    Dataset data = make_dataset(200, 1, 3, 2);
    for (int64_t index = 0; index < 200; ++index) {
      const std::vector<uint8_t> image = {1, 2, 3, 4, 5, 6};  // pixels (1,2) (3,4) (5,6)
      std::copy(image.begin(), image.end(), data.pixels.begin() + index * 6);
    }
    const BatchLoader loader(data, 200, false, false, 5, {0, 0, true}, {});
    std::vector<float> images;
    std::vector<int32_t> labels;
    loader.fill_batch(0, 0, images, labels);
    int flipped = 0, unflipped = 0;
    for (int64_t sample = 0; sample < 200; ++sample) {
      std::vector<int> pixels;
      for (int k = 0; k < 6; ++k)
        pixels.push_back(static_cast<int>(std::lround(images[sample * 6 + k] * 255.0f)));
      if (pixels == std::vector<int>{1, 2, 3, 4, 5, 6}) ++unflipped;
      if (pixels == std::vector<int>{5, 6, 3, 4, 1, 2}) ++flipped;
    }
    CHECK(flipped + unflipped == 200);
    CHECK(flipped > 60);
    CHECK(unflipped > 60);
  }

  TEST_CASE("pad_crop shifts by every offset in [-p, p] and fills with 0 in normalized space") {
    Dataset data = make_dataset(300, 3, 3, 1);
    for (int64_t index = 0; index < 300; ++index) {
      for (int64_t k = 0; k < 9; ++k)
        data.pixels[index * 9 + k] = static_cast<uint8_t>(10 * (k + 1));
    }
    const Normalization normalization{{0.3f}, {0.5f}};
    const BatchLoader loader(data, 300, false, false, 9, {0, 1, false}, normalization);
    std::vector<float> images;
    std::vector<int32_t> labels;
    loader.fill_batch(0, 0, images, labels);
    std::map<std::pair<int64_t, int64_t>, int> offsets_seen;
    for (int64_t sample = 0; sample < 300; ++sample) {
      int matches = 0;
      for (int64_t dy = -1; dy <= 1; ++dy) {
        for (int64_t dx = -1; dx <= 1; ++dx) {
          if (matches_reference(images, sample, data, sample, loader, dy, dx, false,
                                normalization)) {
            ++matches;
            ++offsets_seen[{dy, dx}];
          }
        }
      }
      CHECK(matches == 1);
    }
    CHECK(offsets_seen.size() == 9u);
    for (const auto& [offset, count] : offsets_seen) CHECK(count > 10);
    // Offset (1, 1) moves the image up-left: the last row and column are the crop fill, 0 exactly.
    for (int64_t sample = 0; sample < 300; ++sample) {
      if (!matches_reference(images, sample, data, sample, loader, 1, 1, false, normalization))
        continue;
      CHECK(images[sample * 9 + 8] == 0.0f);
      CHECK(images[sample * 9 + 0] ==
            doctest::Approx((50.0f / 255.0f - 0.3f) / 0.5f).epsilon(1e-6));
      break;
    }
  }

  TEST_CASE("bad IDX input: each failure is one line naming the file and the problem") {
    TempDirectory dir;
    const std::string images = dir.file("train-images-idx3-ubyte");
    const std::string labels = dir.file("train-labels-idx1-ubyte");
    const std::vector<uint8_t> good_pixels = pattern_pixels(3 * 4 * 4);
    write_raw(images, idx_images_file(3, 4, 4, good_pixels));
    write_raw(labels, idx_labels_file({1, 2, 3}));
    REQUIRE(st::data::read_idx(images, labels).size() == 3);

    SUBCASE("missing file") {
      CHECK_DATA_ERROR(st::data::read_idx(dir.file("nope"), labels), dir.file("nope"),
                       "no such file");
      CHECK_DATA_ERROR(st::data::read_idx(images, dir.file("nope")), dir.file("nope"),
                       "no such file");
      CHECK_DATA_ERROR(st::data::read_idx(dir.path(), labels), dir.path(), "is a directory");
      if (fs::exists("/dev/null")) {
        CHECK_DATA_ERROR(st::data::read_idx("/dev/null", labels), "/dev/null",
                         "not a regular file");
      }
    }
    SUBCASE("truncated raw file") {
      write_raw(images, idx_images_file(5, 28, 28, pattern_pixels(1000)));
      CHECK_DATA_ERROR(st::data::read_idx(images, labels), images, "truncated", "5 images of 28x28",
                       "3920 bytes", "1000 bytes");
    }
    SUBCASE("truncated gzipped file (complete gzip stream, short content)") {
      write_gzip(images + ".gz", idx_images_file(5, 28, 28, pattern_pixels(1000)));
      CHECK_DATA_ERROR(st::data::read_idx(images + ".gz", labels), images + ".gz", "truncated",
                       "3920 bytes");
    }
    SUBCASE("file shorter than the header") {
      write_raw(images, {0, 0, 8, 3, 0, 0});
      CHECK_DATA_ERROR(st::data::read_idx(images, labels), images, "truncated", "6 bytes");
      write_raw(labels, {0, 0});
      write_raw(images, idx_images_file(3, 4, 4, good_pixels));
      CHECK_DATA_ERROR(st::data::read_idx(images, labels), labels, "truncated", "2 bytes");
    }
    SUBCASE("truncated labels") {
      std::vector<uint8_t> bytes = idx_labels_file({1, 2, 3});
      bytes.pop_back();
      write_raw(labels, bytes);
      CHECK_DATA_ERROR(st::data::read_idx(images, labels), labels, "truncated", "3 labels");
    }
    SUBCASE("extra bytes after the data") {
      std::vector<uint8_t> bytes = idx_images_file(3, 4, 4, good_pixels);
      bytes.push_back(0);
      write_raw(images, bytes);
      CHECK_DATA_ERROR(st::data::read_idx(images, labels), images, "1 unexpected bytes");
    }
    SUBCASE("huge dimensions in the header are refused without allocating them") {
      write_raw(images, idx_images_file(0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, good_pixels));
      CHECK_DATA_ERROR(st::data::read_idx(images, labels), images, "truncated", "more than 2^64");
      write_raw(images, idx_images_file(4000000000u, 28, 28, good_pixels));
      CHECK_DATA_ERROR(st::data::read_idx(images, labels), images, "truncated",
                       "3136000000000 bytes", "48 bytes");
    }
    SUBCASE("truncated gzip stream") {
      write_gzip(images + ".gz", idx_images_file(3, 4, 4, good_pixels));
      std::vector<uint8_t> compressed = read_raw(images + ".gz");
      compressed.resize(compressed.size() / 2);
      write_raw(images + ".gz", compressed);
      CHECK_DATA_ERROR(st::data::read_idx(images + ".gz", labels), images + ".gz", "truncated gzip",
                       "zlib");
    }
    SUBCASE("corrupt gzip stream") {
      write_gzip(images + ".gz", idx_images_file(3, 4, 4, good_pixels));
      std::vector<uint8_t> compressed = read_raw(images + ".gz");
      std::vector<uint8_t> bad_method = compressed;
      bad_method[2] = 7;  // compression method: only 8 (deflate) exists
      write_raw(images + ".gz", bad_method);
      CHECK_DATA_ERROR(st::data::read_idx(images + ".gz", labels), images + ".gz", "corrupt gzip",
                       "zlib error");
      std::vector<uint8_t> bad_checksum = compressed;
      bad_checksum[bad_checksum.size() - 8] ^= 0xFF;  // first byte of the CRC-32 trailer
      write_raw(images + ".gz", bad_checksum);
      CHECK_DATA_ERROR(st::data::read_idx(images + ".gz", labels), images + ".gz", "corrupt gzip",
                       "zlib error", "check");
      std::vector<uint8_t> trailing = compressed;
      trailing.insert(trailing.end(), {1, 2, 3});
      write_raw(images + ".gz", trailing);
      CHECK_DATA_ERROR(st::data::read_idx(images + ".gz", labels), images + ".gz",
                       "trailing garbage");
    }
    SUBCASE("wrong magic number") {
      CHECK_DATA_ERROR(st::data::read_idx(labels, images), labels, "wrong magic",
                       "expected 0x00000803", "found 0x00000801", "labels file");
      CHECK_DATA_ERROR(st::data::read_idx(images, images), images, "wrong magic",
                       "expected 0x00000801", "found 0x00000803");
      write_raw(images, idx_images_file(3, 4, 4, good_pixels, 0x12345678));
      CHECK_DATA_ERROR(st::data::read_idx(images, labels), images, "found 0x12345678");
    }
    SUBCASE("image/label count mismatch") {
      write_raw(labels, idx_labels_file({1, 2}));
      CHECK_DATA_ERROR(st::data::read_idx(images, labels), labels, images, "count mismatch",
                       "2 labels", "3 images");
    }
    SUBCASE("label out of range") {
      write_raw(labels, idx_labels_file({1, 2, 10}));
      CHECK_DATA_ERROR(st::data::read_idx(images, labels), labels, "label out of range",
                       "label[2] = 10", "num_classes is 10");
      write_raw(labels, idx_labels_file({4, 5, 1}));
      CHECK_DATA_ERROR(st::data::read_idx(images, labels, 5), labels, "label[1] = 5",
                       "num_classes is 5");
      CHECK_DATA_ERROR(st::data::read_idx(images, labels, 0), labels, "num_classes");
    }
    SUBCASE("zero dimensions") {
      write_raw(images, idx_images_file(3, 0, 4, {}));
      CHECK_DATA_ERROR(st::data::read_idx(images, labels), images, "zero image dimension",
                       "3 images of 0x4");
      write_raw(images, idx_images_file(3, 4, 0, {}));
      CHECK_DATA_ERROR(st::data::read_idx(images, labels), images, "zero image dimension");
    }
    SUBCASE("empty dataset") {
      write_raw(images, idx_images_file(0, 4, 4, {}));
      CHECK_DATA_ERROR(st::data::read_idx(images, labels), images, "empty dataset");
      write_raw(images, idx_images_file(3, 4, 4, good_pixels));
      write_raw(labels, idx_labels_file({}));
      CHECK_DATA_ERROR(st::data::read_idx(images, labels), labels, "empty dataset");
      write_raw(images, {});
      CHECK_DATA_ERROR(st::data::read_idx(images, labels), images, "truncated", "0 bytes");
    }
  }

  TEST_CASE("bad CIFAR input: each failure is one line naming the file and the problem") {
    TempDirectory dir;
    const std::string path = dir.file("data_batch_1.bin");
    std::vector<uint8_t> two_records;
    append_cifar_record(two_records, {1}, 0);
    append_cifar_record(two_records, {2}, 1);

    SUBCASE("missing file") {
      CHECK_DATA_ERROR(st::data::read_cifar({path}, false), path, "no such file");
      CHECK_DATA_ERROR(st::data::read_cifar({}, false), "no CIFAR-10 files");
    }
    SUBCASE("size not a multiple of the record size") {
      std::vector<uint8_t> bytes = two_records;
      bytes.resize(bytes.size() - 5);
      write_raw(path, bytes);
      CHECK_DATA_ERROR(st::data::read_cifar({path}, false), path, "not a multiple", "6141 bytes",
                       "record size 3073 bytes");
      write_raw(path, two_records);  // 6146 bytes: not whole CIFAR-100 records of 3074
      CHECK_DATA_ERROR(st::data::read_cifar({path}, true), path, "6146 bytes",
                       "record size 3074 bytes");
    }
    SUBCASE("label out of range") {
      std::vector<uint8_t> bytes = two_records;
      bytes[3073] = 10;  // label of record 1
      write_raw(path, bytes);
      CHECK_DATA_ERROR(st::data::read_cifar({path}, false), path, "label out of range", "record 1",
                       "label 10", "num_classes is 10");
      std::vector<uint8_t> hundred;
      append_cifar_record(hundred, {3, 100}, 0);
      write_raw(path, hundred);
      CHECK_DATA_ERROR(st::data::read_cifar({path}, true), path, "record 0", "label 100",
                       "num_classes is 100");
      hundred.clear();
      append_cifar_record(hundred, {20, 5}, 0);
      write_raw(path, hundred);
      CHECK_DATA_ERROR(st::data::read_cifar({path}, true), path, "coarse label 20");
    }
    SUBCASE("empty file") {
      write_raw(path, {});
      CHECK_DATA_ERROR(st::data::read_cifar({path}, false), path, "empty dataset");
    }
    SUBCASE("corrupt gzip") {
      write_gzip(path, two_records);
      std::vector<uint8_t> compressed = read_raw(path);
      compressed[compressed.size() - 8] ^= 0x01;
      write_raw(path, compressed);
      CHECK_DATA_ERROR(st::data::read_cifar({path}, false), path, "corrupt gzip", "zlib error");
    }
  }

  TEST_CASE("bad loader and split arguments are refused with the dataset's name") {
    const Dataset data = make_dataset(10, 4, 4, 1);
    const Normalization normalization{{0.5f}, {0.5f}};
    CHECK_DATA_ERROR(BatchLoader(data, 0, false, false, 0, {}, normalization), "toy", "batch size");
    CHECK_DATA_ERROR(BatchLoader(data, 11, false, true, 0, {}, normalization), "toy", "drop_last");
    CHECK_DATA_ERROR(BatchLoader(data, 2, false, false, 0, {3, 0, false}, normalization), "toy",
                     "pad_to 3");
    CHECK_DATA_ERROR(BatchLoader(data, 2, false, false, 0, {0, -1, false}, normalization), "toy",
                     "pad_crop -1");
    CHECK_DATA_ERROR(BatchLoader(data, 2, false, false, 0, {}, Normalization{{0.1f, 0.2f}, {1, 1}}),
                     "toy", "2 mean(s)", "1 channel(s)");
    CHECK_DATA_ERROR(BatchLoader(data, 2, false, false, 0, {}, Normalization{{0.1f}, {-1.0f}}),
                     "toy", "std > 0");

    const BatchLoader loader(data, 3, false, false, 0, {}, normalization);
    std::vector<float> images;
    std::vector<int32_t> labels;
    CHECK_DATA_ERROR(loader.fill_batch(0, 4, images, labels), "toy", "batch index 4", "4 batches");
    CHECK_DATA_ERROR(loader.fill_batch(0, -1, images, labels), "toy", "batch index -1");
    CHECK_DATA_ERROR(loader.fill_batch(-1, 0, images, labels), "toy", "epoch");

    Dataset inconsistent = data;
    inconsistent.pixels.pop_back();
    CHECK_DATA_ERROR(BatchLoader(inconsistent, 2, false, false, 0, {}, {}), "toy", "pixel bytes");
    Dataset bad_label = data;
    bad_label.labels[6] = 12;
    CHECK_DATA_ERROR(BatchLoader(bad_label, 2, false, false, 0, {}, {}), "toy", "label[6] = 12");
    Dataset empty = data;
    empty.labels.clear();
    empty.pixels.clear();
    CHECK_DATA_ERROR(BatchLoader(empty, 2, false, false, 0, {}, {}), "toy", "empty dataset");
    CHECK_DATA_ERROR(st::data::compute_normalization(empty), "toy", "empty dataset");
    CHECK_DATA_ERROR(st::data::split_train_validation(empty, 0, 1), "--val-size");
  }

  TEST_CASE("Fashion-MNIST from Debian's dataset-fashion-mnist loads with the known statistics") {
    const std::string dir = "/usr/share/datasets/fashion-mnist";
    if (!fs::exists(dir)) {
      MESSAGE("skipped: " << dir << " is not installed");
      return;
    }
    const Dataset train = st::data::load_idx_directory(dir, true, "fashion-mnist");

    const Dataset test = st::data::load_idx_directory(dir, false, "fashion-mnist");
    CHECK(train.name == "fashion-mnist/train");
    CHECK(train.size() == 60000);
    CHECK(test.size() == 10000);
    for (const Dataset* split : {&train, &test}) {
      CHECK(split->height == 28);
      CHECK(split->width == 28);
      CHECK(split->channels == 1);
      CHECK(split->num_classes == 10);
      CHECK(split->pixels.size() == static_cast<size_t>(split->size()) * 784u);
    }
    const auto count_per_class = [](const Dataset& split) {
      std::vector<int> per_class(10, 0);
      for (int32_t label : split.labels) {
        if (label >= 0 && label < 10) ++per_class[static_cast<size_t>(label)];
      }
      return per_class;  // out-of-range labels are counted nowhere, so the totals below catch them
    };
    const std::vector<int> train_per_class = count_per_class(train);
    const std::vector<int> test_per_class = count_per_class(test);
    CHECK(train_per_class == std::vector<int>(10, 6000));
    CHECK(test_per_class == std::vector<int>(10, 1000));
    CHECK(train.labels[0] == 9);  // the first training image is an ankle boot
    CHECK(test.labels[0] == 9);

    // The statistics everyone normalizes Fashion-MNIST with: mean 0.2860, std 0.3530.
    const Normalization normalization = st::data::compute_normalization(train);
    CHECK(normalization.mean[0] == doctest::Approx(0.2860).epsilon(0.001));
    CHECK(normalization.std[0] == doctest::Approx(0.3530).epsilon(0.001));

    const auto [train_part, validation] = st::data::split_train_validation(train, 5000, 0);
    CHECK(train_part.size() == 55000);
    CHECK(validation.size() == 5000);

    const BatchLoader loader(train_part, 128, true, true, 0, {32, 4, true}, normalization);
    CHECK(loader.batches_per_epoch() == 429);
    std::vector<float> images;
    std::vector<int32_t> labels;
    CHECK(loader.fill_batch(0, 428, images, labels) == 128);
    CHECK(images.size() == 128u * 32u * 32u);
    double mean = 0.0;
    for (float value : images) mean += value;
    mean /= static_cast<double>(images.size());
    // Normalized, padded and cropped: near 0, pulled down by the black pad_to border.
    CHECK(std::fabs(mean) < 0.5);
  }

}  // TEST_SUITE("unit")
