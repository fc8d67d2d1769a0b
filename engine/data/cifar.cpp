// CIFAR-10/100 binary reader (Krizhevsky 2009, "binary version" of the archives). A file is a
// sequence of fixed-size records: CIFAR-10 = <label byte><3072 pixel bytes>, CIFAR-100 =
// <coarse label byte><fine label byte><3072 pixel bytes>. The pixels of a record are three 32x32
// planes (red, green, blue: CHW); the engine stores activations NHWC, so each record is transposed
// to HWC on load. A file whose size is not a whole number of records is refused, not truncated.
#include <filesystem>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/error.h"

namespace st::data {
namespace {

constexpr int64_t kCifarSide = 32;
constexpr int64_t kCifarChannels = 3;
constexpr int64_t kCifarPlaneBytes = kCifarSide * kCifarSide;
constexpr int64_t kCifarPixelBytes = kCifarPlaneBytes * kCifarChannels;  // 3072
constexpr int kCifar100CoarseClasses = 20;

// The folders the official archives unpack to, accepted one level below the given directory.
std::string resolve_cifar_directory(const std::string& dir, bool cifar100,
                                    const std::string& probe_file) {
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) fail("data: {}: no such directory", dir);
  const std::filesystem::path unpacked =
      std::filesystem::path(dir) / (cifar100 ? "cifar-100-binary" : "cifar-10-batches-bin");
  if (!std::filesystem::exists(std::filesystem::path(dir) / probe_file, error) &&
      std::filesystem::is_regular_file(unpacked / probe_file, error)) {
    return unpacked.string();
  }
  return dir;
}

}  // namespace

Dataset read_cifar(const std::vector<std::string>& files, bool cifar100) {
  const char* const dataset_label = cifar100 ? "CIFAR-100" : "CIFAR-10";
  if (files.empty()) fail("data: read_cifar: no {} files given", dataset_label);
  const int64_t label_bytes = cifar100 ? 2 : 1;
  const int64_t record_bytes = label_bytes + kCifarPixelBytes;
  const int num_classes = cifar100 ? 100 : 10;

  Dataset dataset;
  dataset.name = cifar100 ? "cifar-100" : "cifar-10";
  dataset.height = kCifarSide;
  dataset.width = kCifarSide;
  dataset.channels = kCifarChannels;
  dataset.num_classes = num_classes;

  for (const std::string& path : files) {
    const std::vector<uint8_t> bytes = read_file_maybe_gzip(path);
    const auto file_bytes = static_cast<int64_t>(bytes.size());
    if (file_bytes == 0) fail("data: {}: empty dataset: the file has 0 bytes", path);
    if (file_bytes % record_bytes != 0) {
      fail(
          "data: {}: file size {} bytes is not a multiple of the {} record size {} bytes ({} label "
          "byte(s) + {} pixel bytes): truncated or not a {} binary file",
          path, file_bytes, dataset_label, record_bytes, label_bytes, kCifarPixelBytes,
          dataset_label);
    }
    const int64_t record_count = file_bytes / record_bytes;
    const int64_t first_sample = dataset.size();
    dataset.labels.resize(static_cast<size_t>(first_sample + record_count));
    dataset.pixels.resize(static_cast<size_t>((first_sample + record_count) * kCifarPixelBytes));

    for (int64_t record = 0; record < record_count; ++record) {
      const uint8_t* source = bytes.data() + record * record_bytes;
      if (cifar100 && source[0] >= kCifar100CoarseClasses) {
        fail(
            "data: {}: label out of range: record {} has coarse label {} but CIFAR-100 has {} "
            "coarse classes",
            path, record, source[0], kCifar100CoarseClasses);
      }
      const uint8_t label = source[label_bytes - 1];
      if (label >= num_classes) {
        fail("data: {}: label out of range: record {} has label {} but num_classes is {} ({})",
             path, record, label, num_classes, dataset_label);
      }
      dataset.labels[static_cast<size_t>(first_sample + record)] = label;

      // CHW planes -> HWC: pixel (y, x) of channel c moves from c*1024 + y*32 + x to (y*32+x)*3 +
      // c.
      const uint8_t* planes = source + label_bytes;
      uint8_t* target = dataset.pixels.data() + (first_sample + record) * kCifarPixelBytes;
      for (int64_t position = 0; position < kCifarPlaneBytes; ++position) {
        for (int64_t channel = 0; channel < kCifarChannels; ++channel) {
          target[position * kCifarChannels + channel] =
              planes[channel * kCifarPlaneBytes + position];
        }
      }
    }
  }
  return dataset;
}

Dataset load_cifar_directory(const std::string& dir, bool train, bool cifar100) {
  std::vector<std::string> names;
  if (cifar100) {
    names = {train ? "train.bin" : "test.bin"};
  } else if (train) {
    for (int batch = 1; batch <= 5; ++batch)
      names.push_back("data_batch_" + std::to_string(batch) + ".bin");
  } else {
    names = {"test_batch.bin"};
  }
  const std::string root = resolve_cifar_directory(dir, cifar100, names.front());
  std::vector<std::string> files;
  for (const std::string& name : names) {
    files.push_back((std::filesystem::path(root) / name).string());
  }
  Dataset dataset = read_cifar(files, cifar100);
  dataset.name = std::string(cifar100 ? "cifar-100" : "cifar-10") + (train ? "/train" : "/test");
  return dataset;
}

}  // namespace st::data
