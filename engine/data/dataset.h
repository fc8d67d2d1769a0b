// Datasets as the engine holds them: every image of a split resident in memory as raw bytes
// (NHWC, 0..255) plus one int32 label per image. Readers for the two on-disk formats the pruning
// literature trains on (IDX for MNIST/Fashion-MNIST, the CIFAR-10/100 binary records), the explicit
// train/validation split, and per-channel normalization statistics. Every reader treats its input
// as untrusted: a missing, truncated, corrupt or inconsistent file is an st::Error whose one-line
// message names the file and the problem, never a crash or an out-of-bounds read.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace st::data {

struct Dataset {
  std::string name;                             // e.g. "fashion-mnist/train"
  int64_t height = 0, width = 0, channels = 0;  // images stored NHWC
  int num_classes = 0;
  std::vector<uint8_t> pixels;  // size()*height*width*channels, raw 0..255, NHWC
  std::vector<int32_t> labels;  // size()
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int64_t pixels_per_image() const { return height * width * channels; }
};

// The whole content of a file, gunzipped when it starts with the gzip magic bytes 1f 8b (several
// concatenated gzip members are accepted, as gzip(1) writes them). Throws st::Error naming the path
// for a missing/unreadable file, a truncated or corrupt gzip stream, or trailing garbage.
std::vector<uint8_t> read_file_maybe_gzip(const std::string& path);

// IDX (LeCun's MNIST format): images idx3-ubyte (magic 0x00000803) + labels idx1-ubyte
// (0x00000801), big-endian dimensions, each file gzipped or raw. The dataset's name is the images
// path; channels = 1.
Dataset read_idx(const std::string& images_path, const std::string& labels_path,
                 int num_classes = 10);

// A Fashion-MNIST/MNIST directory with the four standard file names (train-images-idx3-ubyte[.gz],
// train-labels-idx1-ubyte[.gz], t10k-...); each file is looked for gzipped first, then raw.
// The dataset is named `name + "/train"` or `name + "/test"` (e.g. "fashion-mnist/train").
Dataset load_idx_directory(const std::string& dir, bool train, const std::string& name);

// CIFAR binary records: CIFAR-10 = 1 label byte + 3072 pixel bytes, CIFAR-100 = coarse label byte
// + fine label byte + 3072 pixel bytes (the fine label is used: 100 classes). Pixels are stored as
// three 32x32 planes (CHW) and converted to NHWC. Files are concatenated in the order given.
Dataset read_cifar(const std::vector<std::string>& files, bool cifar100);

// A CIFAR directory: cifar-10 data_batch_1..5.bin / test_batch.bin; cifar-100 train.bin / test.bin.
// The directory may also be the one that holds the unpacked archive folder (cifar-10-batches-bin or
// cifar-100-binary). Named "cifar-10/train", "cifar-100/test", ...
Dataset load_cifar_directory(const std::string& dir, bool train, bool cifar100);

// Explicit train/validation split: a random permutation of the indices seeded by `seed`; its last
// `validation_size` entries form the validation set, the rest the training set. Within each part
// the samples keep their original relative order (so the split is a pure function of the seed and a
// loader without shuffling sees file order). validation_size must be in [0, size) -> else st::Error
// naming "--val-size". Parts are named "<name>:train" and "<name>:validation".
std::pair<Dataset, Dataset> split_train_validation(const Dataset& full, int64_t validation_size,
                                                   uint64_t seed);

// Per-channel statistics in [0,1] pixel units, used as (x/255 - mean[c]) / std[c].
struct Normalization {
  std::vector<float> mean, std;
};

// Mean and population standard deviation over every pixel of every image, per channel. The sums are
// accumulated exactly (integer sums of bytes and squared bytes), then reduced in double.
Normalization compute_normalization(const Dataset& dataset);

}  // namespace st::data
