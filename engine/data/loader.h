// BatchLoader: turns a resident Dataset into normalized float batches (NHWC), with the standard
// augmentation of the CIFAR/ResNet recipe (He et al. 2016, sec. 4.2: pad by 4, random 32x32 crop,
// random horizontal flip). A batch is a pure function of (seed, epoch, batch_index): the loader
// keeps no position, so resuming from a checkpoint mid-epoch reproduces the very same batches
// without saving any loader state.
//
// Augmentation, applied per sample in this order (the reference the device implementation follows):
//   1. pad_to:   the image is placed centered on a pad_to x pad_to canvas (when the difference is
//                odd the extra row/column goes to the bottom/right) whose border is raw pixel 0,
//                i.e. black, as if the image had been zero-padded before normalization (28 -> 32
//                lets Fashion-MNIST feed CIFAR-shaped models).
//   2. pad_crop: a window of the canvas' size is cut at a random offset in [-pad_crop, pad_crop]
//                on each axis (uniform, independently); pixels it takes from beyond the canvas are
//                0 in normalized space, i.e. the per-channel mean, so they carry no signal.
//   3. flip:     with probability 0.5 the columns are reversed.
// Random draws per sample: crop row offset, crop column offset (only if pad_crop > 0), then flip
// (only if flip), all from Rng::derived(epoch augmentation seed, position in epoch).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/data/dataset.h"

namespace st::data {

struct AugmentOptions {
  int64_t pad_to = 0;    // 0 = keep the image size; else >= height and width
  int64_t pad_crop = 0;  // 0 = no random crop
  bool flip = false;     // random horizontal flip, p = 0.5
};

class BatchLoader {
 public:
  // `data` must outlive the loader (it is referenced, not copied). An empty Normalization (no
  // mean/std) means plain x/255; otherwise it needs one mean and one std > 0 per channel.
  BatchLoader(const Dataset& data, int64_t batch_size, bool shuffle, bool drop_last, uint64_t seed,
              AugmentOptions augment, Normalization normalization);

  int64_t batches_per_epoch() const;
  int64_t batch_size() const { return batch_size_; }
  int64_t output_height() const { return output_height_; }
  int64_t output_width() const { return output_width_; }
  int64_t channels() const { return data_->channels; }
  const Dataset& dataset() const { return *data_; }

  // The dataset index at each position of the epoch: a permutation from Rng::derived(seed, epoch),
  // or the identity when shuffle is off.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  // Fills images (float NHWC [B, output_height, output_width, channels], (x/255 - mean) / std, then
  // augmented as above) and labels [B]; returns B, which is batch_size except possibly for the last
  // batch of an epoch when drop_last is off. Safe to call from several threads at once.
  int64_t fill_batch(int64_t epoch, int64_t batch_index, std::vector<float>& images,
                     std::vector<int32_t>& labels) const;

 private:
  struct EpochOrderCache;
  std::shared_ptr<const std::vector<int64_t>> cached_epoch_order(int64_t epoch) const;

  const Dataset* data_;
  int64_t batch_size_;
  bool shuffle_;
  bool drop_last_;
  uint64_t seed_;
  AugmentOptions augment_;
  int64_t output_height_, output_width_;
  // normalized_value_[c * 256 + v] = (v/255 - mean[c]) / std[c]: one lookup per output pixel.
  std::vector<float> normalized_value_;
  // The last epoch's order, shared by copies of the loader (same seed, same order), so consecutive
  // batches of one epoch do not reshuffle the whole dataset each time.
  std::shared_ptr<EpochOrderCache> order_cache_;
};

}  // namespace st::data
