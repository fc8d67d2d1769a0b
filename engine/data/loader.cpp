// The train/validation split, normalization statistics and the BatchLoader (see loader.h for the
// augmentation contract). Everything random here is a pure function of a seed and a position, so
// a batch can be rebuilt from (seed, epoch, batch_index) alone.
#include "engine/data/loader.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "engine/error.h"
#include "engine/rng.h"

namespace st::data {
namespace {

// Separates the augmentation streams from the epoch-order streams, which use the plain seed.
constexpr uint64_t kAugmentStreamSalt = 0x5A17'A0C3'D1B5'E9F7ULL;
// Larger canvases are certainly a typo, and keeping sizes small keeps every product far from
// overflow.
constexpr int64_t kMaxImageSide = 1 << 16;
// Below this many output floats a batch is filled on one thread (thread start-up would dominate).
constexpr int64_t kParallelOutputFloats = 1 << 15;

// Checks the invariants every consumer of a Dataset relies on (the readers guarantee them; a
// hand-built or hand-edited Dataset may not).
void check_dataset(const Dataset& data) {
  if (data.size() == 0) fail("data: {}: empty dataset: it has 0 samples", data.name);
  if (data.height <= 0 || data.width <= 0 || data.channels <= 0 || data.height > kMaxImageSide ||
      data.width > kMaxImageSide || data.channels > kMaxImageSide) {
    fail("data: {}: invalid image dimensions {}x{}x{} (height x width x channels)", data.name,
         data.height, data.width, data.channels);
  }
  uint64_t expected_pixels = 0;
  const bool overflow =
      __builtin_mul_overflow(static_cast<uint64_t>(data.size()),
                             static_cast<uint64_t>(data.pixels_per_image()), &expected_pixels);
  if (overflow || expected_pixels != data.pixels.size()) {
    fail("data: {}: {} pixel bytes but {} images of {}x{}x{} need {}", data.name,
         data.pixels.size(), data.size(), data.height, data.width, data.channels,
         overflow ? std::string("more than 2^64") : std::to_string(expected_pixels));
  }
  if (data.num_classes <= 0) {
    fail("data: {}: num_classes must be positive, got {}", data.name, data.num_classes);
  }
  for (int64_t index = 0; index < data.size(); ++index) {
    const int32_t label = data.labels[index];
    if (label < 0 || label >= data.num_classes) {
      fail("data: {}: label out of range: label[{}] = {} but num_classes is {}", data.name, index,
           label, data.num_classes);
    }
  }
}

// A Dataset with the samples at `indices` of `source`, in that order.
Dataset gather(const Dataset& source, const std::vector<int64_t>& indices, std::string name) {
  Dataset subset;
  subset.name = std::move(name);
  subset.height = source.height;
  subset.width = source.width;
  subset.channels = source.channels;
  subset.num_classes = source.num_classes;
  const int64_t image_bytes = source.pixels_per_image();
  subset.pixels.resize(indices.size() * static_cast<size_t>(image_bytes));
  subset.labels.resize(indices.size());
  for (size_t slot = 0; slot < indices.size(); ++slot) {
    const int64_t index = indices[slot];
    subset.labels[slot] = source.labels[index];
    std::copy_n(source.pixels.begin() + index * image_bytes, image_bytes,
                subset.pixels.begin() + static_cast<int64_t>(slot) * image_bytes);
  }
  return subset;
}

}  // namespace

std::pair<Dataset, Dataset> split_train_validation(const Dataset& full, int64_t validation_size,
                                                   uint64_t seed) {
  if (validation_size < 0 || validation_size >= full.size()) {
    fail(
        "--val-size: {} is out of range for {}: must be in [0, {}) (the dataset has {} samples "
        "and the training part must keep at least one)",
        validation_size, full.name, full.size(), full.size());
  }
  check_dataset(full);
  std::vector<int64_t> permutation(static_cast<size_t>(full.size()));
  std::iota(permutation.begin(), permutation.end(), int64_t{0});
  Rng rng(seed);
  rng.shuffle(permutation);

  const auto train_end = permutation.end() - validation_size;
  std::vector<int64_t> train_indices(permutation.begin(), train_end);
  std::vector<int64_t> validation_indices(train_end, permutation.end());
  // Sorted: each part keeps the file order, so only membership depends on the seed.
  std::sort(train_indices.begin(), train_indices.end());
  std::sort(validation_indices.begin(), validation_indices.end());
  return {gather(full, train_indices, full.name + ":train"),
          gather(full, validation_indices, full.name + ":validation")};
}

Normalization compute_normalization(const Dataset& dataset) {
  check_dataset(dataset);
  const auto channels = static_cast<size_t>(dataset.channels);
  // Exact integer sums: 255^2 * pixels stays below 2^64 up to ~2.8e14 pixels per channel.
  std::vector<uint64_t> sums(channels, 0), squared_sums(channels, 0);
  const size_t pixel_count = dataset.pixels.size() / channels;
  const uint8_t* pixels = dataset.pixels.data();
#pragma omp parallel
  {
    std::vector<uint64_t> local_sums(channels, 0), local_squared_sums(channels, 0);
#pragma omp for schedule(static)
    for (size_t pixel = 0; pixel < pixel_count; ++pixel) {
      for (size_t channel = 0; channel < channels; ++channel) {
        const uint64_t value = pixels[pixel * channels + channel];
        local_sums[channel] += value;
        local_squared_sums[channel] += value * value;
      }
    }
#pragma omp critical
    for (size_t channel = 0; channel < channels; ++channel) {
      sums[channel] += local_sums[channel];
      squared_sums[channel] += local_squared_sums[channel];
    }
  }

  Normalization normalization;
  for (size_t channel = 0; channel < channels; ++channel) {
    const double count = static_cast<double>(pixel_count);
    const double mean = static_cast<double>(sums[channel]) / count / 255.0;
    const double mean_square = static_cast<double>(squared_sums[channel]) / count / (255.0 * 255.0);
    // max(): rounding can make a zero variance come out as -1e-17.
    const double variance = std::max(0.0, mean_square - mean * mean);
    normalization.mean.push_back(static_cast<float>(mean));
    normalization.std.push_back(static_cast<float>(std::sqrt(variance)));
  }
  return normalization;
}

struct BatchLoader::EpochOrderCache {
  std::mutex mutex;
  int64_t epoch = -1;
  std::shared_ptr<const std::vector<int64_t>> order;
};

BatchLoader::BatchLoader(const Dataset& data, int64_t batch_size, bool shuffle, bool drop_last,
                         uint64_t seed, AugmentOptions augment, Normalization normalization)
    : data_(&data),
      batch_size_(batch_size),
      shuffle_(shuffle),
      drop_last_(drop_last),
      seed_(seed),
      augment_(augment),
      order_cache_(std::make_shared<EpochOrderCache>()) {
  check_dataset(data);
  if (batch_size <= 0) fail("data: {}: batch size must be positive, got {}", data.name, batch_size);
  if (drop_last && batch_size > data.size()) {
    fail(
        "data: {}: batch size {} is larger than the dataset ({} samples) and drop_last is on, so "
        "an epoch would have no batch",
        data.name, batch_size, data.size());
  }
  if (augment.pad_to != 0 &&
      (augment.pad_to < std::max(data.height, data.width) || augment.pad_to > kMaxImageSide)) {
    fail("data: {}: pad_to {} must be 0 (keep) or in [{}, {}] for {}x{} images", data.name,
         augment.pad_to, std::max(data.height, data.width), kMaxImageSide, data.height, data.width);
  }
  output_height_ = augment.pad_to != 0 ? augment.pad_to : data.height;
  output_width_ = augment.pad_to != 0 ? augment.pad_to : data.width;
  if (augment.pad_crop < 0 || augment.pad_crop > std::min(output_height_, output_width_)) {
    fail("data: {}: pad_crop {} must be in [0, {}] for {}x{} outputs", data.name, augment.pad_crop,
         std::min(output_height_, output_width_), output_height_, output_width_);
  }

  const auto channel_count = static_cast<size_t>(data.channels);
  if (normalization.mean.empty() && normalization.std.empty()) {
    normalization.mean.assign(channel_count, 0.0f);
    normalization.std.assign(channel_count, 1.0f);
  }
  if (normalization.mean.size() != channel_count || normalization.std.size() != channel_count) {
    fail("data: {}: normalization has {} mean(s) and {} std(s) but the images have {} channel(s)",
         data.name, normalization.mean.size(), normalization.std.size(), channel_count);
  }
  normalized_value_.resize(channel_count * 256);
  for (size_t channel = 0; channel < channel_count; ++channel) {
    const float mean = normalization.mean[channel];
    const float std = normalization.std[channel];
    if (!std::isfinite(mean) || !std::isfinite(std) || std <= 0.0f) {
      fail(
          "data: {}: normalization of channel {} needs a finite mean and a std > 0, got mean {} "
          "std {}",
          data.name, channel, mean, std);
    }
    for (int value = 0; value < 256; ++value) {
      normalized_value_[channel * 256 + value] = (static_cast<float>(value) / 255.0f - mean) / std;
    }
  }
}

int64_t BatchLoader::batches_per_epoch() const {
  const int64_t size = data_->size();
  return drop_last_ ? size / batch_size_ : (size + batch_size_ - 1) / batch_size_;
}

std::vector<int64_t> BatchLoader::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order(static_cast<size_t>(data_->size()));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (shuffle_) {
    Rng rng = Rng::derived(seed_, static_cast<uint64_t>(epoch));
    rng.shuffle(order);
  }
  return order;
}

std::shared_ptr<const std::vector<int64_t>> BatchLoader::cached_epoch_order(int64_t epoch) const {
  std::lock_guard<std::mutex> lock(order_cache_->mutex);
  if (order_cache_->order == nullptr || order_cache_->epoch != epoch) {
    order_cache_->order = std::make_shared<const std::vector<int64_t>>(epoch_order(epoch));
    order_cache_->epoch = epoch;
  }
  return order_cache_->order;
}

int64_t BatchLoader::fill_batch(int64_t epoch, int64_t batch_index, std::vector<float>& images,
                                std::vector<int32_t>& labels) const {
  const Dataset& data = *data_;
  if (epoch < 0) fail("data: {}: epoch must be >= 0, got {}", data.name, epoch);
  const int64_t batch_count = batches_per_epoch();
  if (batch_index < 0 || batch_index >= batch_count) {
    fail("data: {}: batch index {} is out of range: an epoch has {} batches", data.name,
         batch_index, batch_count);
  }
  const int64_t first_position = batch_index * batch_size_;
  const int64_t samples = std::min(batch_size_, data.size() - first_position);
  const std::shared_ptr<const std::vector<int64_t>> order =
      shuffle_ ? cached_epoch_order(epoch) : nullptr;

  const int64_t height = data.height, width = data.width, channels = data.channels;
  const int64_t out_height = output_height_, out_width = output_width_;
  const int64_t output_floats = out_height * out_width * channels;
  // Centering offsets of the image on the pad_to canvas (odd remainder at bottom/right).
  const int64_t top = (out_height - height) / 2, left = (out_width - width) / 2;
  const int64_t pad_crop = augment_.pad_crop;
  const bool random_flip = augment_.flip;
  const uint64_t augment_seed =
      Rng::derived(seed_ ^ kAugmentStreamSalt, static_cast<uint64_t>(epoch)).next_u64();
  const float* lookup = normalized_value_.data();

  images.resize(static_cast<size_t>(samples * output_floats));
  labels.resize(static_cast<size_t>(samples));
  float* out_images = images.data();
  int32_t* out_labels = labels.data();

#pragma omp parallel for schedule(static) if (samples * output_floats >= kParallelOutputFloats)
  for (int64_t sample = 0; sample < samples; ++sample) {
    const int64_t position = first_position + sample;
    const int64_t index = order ? (*order)[position] : position;
    out_labels[sample] = data.labels[index];

    int64_t crop_row = 0, crop_column = 0;
    bool flipped = false;
    if (pad_crop > 0 || random_flip) {
      Rng rng = Rng::derived(augment_seed, static_cast<uint64_t>(position));
      const auto crop_choices = static_cast<uint64_t>(2 * pad_crop + 1);
      if (pad_crop > 0) {
        crop_row = static_cast<int64_t>(rng.uniform_int(crop_choices)) - pad_crop;
        crop_column = static_cast<int64_t>(rng.uniform_int(crop_choices)) - pad_crop;
      }
      if (random_flip) flipped = rng.uniform() < 0.5f;
    }

    const uint8_t* image = data.pixels.data() + index * height * width * channels;
    float* target = out_images + sample * output_floats;
    for (int64_t out_y = 0; out_y < out_height; ++out_y) {
      const int64_t canvas_y = out_y + crop_row;
      const int64_t image_y = canvas_y - top;
      for (int64_t out_x = 0; out_x < out_width; ++out_x) {
        const int64_t canvas_x = (flipped ? out_width - 1 - out_x : out_x) + crop_column;
        const int64_t image_x = canvas_x - left;
        float* pixel_out = target + (out_y * out_width + out_x) * channels;
        const bool outside_canvas =
            canvas_y < 0 || canvas_y >= out_height || canvas_x < 0 || canvas_x >= out_width;
        const bool outside_image =
            image_y < 0 || image_y >= height || image_x < 0 || image_x >= width;
        for (int64_t channel = 0; channel < channels; ++channel) {
          if (outside_canvas) {
            pixel_out[channel] = 0.0f;  // crop padding: the mean, 0 after normalization
          } else if (outside_image) {
            pixel_out[channel] = lookup[channel * 256];  // pad_to border: raw black
          } else {
            const uint8_t value = image[(image_y * width + image_x) * channels + channel];
            pixel_out[channel] = lookup[channel * 256 + value];
          }
        }
      }
    }
  }
  return samples;
}

}  // namespace st::data
