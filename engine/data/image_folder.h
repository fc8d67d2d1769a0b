// Image-folder datasets (the ImageNet / Tiny-ImageNet layout): class folders of JPEG and PNG files,
// decoded with libjpeg(-turbo) and libpng, converted to RGB, and resized on load to one square size
// so that the whole split is resident in memory like the IDX and CIFAR sets: uint8 NHWC, 3 channels,
// N * size * size * 3 bytes (Tiny-ImageNet train at 64: 100,000 images = 1.2 GB).
//
// Layout (ROOT is --data-dir):
//   ROOT/train/<class>/<image files>           ImageNet style; classes = the sorted folder names,
//   ROOT/train/<class>/images/<image files>    labels 0..C-1 (Tiny-ImageNet keeps each class's images
//                                              in an images/ subfolder beside <wnid>_boxes.txt)
//   ROOT/val/<class>/<image files>             the held-out split (the engine's "test" split); its
//                                              class folders must be train classes
//   ROOT/val/images/ + ROOT/val/val_annotations.txt
//                                              Tiny-ImageNet's original val layout: one line per
//                                              file, "<file>\t<wnid>[\t<box>...]"
// Image files are those ending in .jpg, .jpeg or .png (any case); files are taken sorted by name,
// names starting with '.' are skipped, and anything else in a class folder is an error (so a typo
// or a stray archive is noticed, not silently dropped). The content decides the decoder (JPEG or
// PNG magic bytes), not the extension: real data sets hold PNGs named .JPEG.
//
// Pixels: every input becomes 8-bit RGB. Grayscale is replicated into R = G = B; PNG palettes are
// expanded; an alpha channel is dropped (not composited); 16-bit PNG samples are scaled to 8 bits
// (libpng's rounding v * 255 / 65535); CMYK/YCCK JPEGs are converted with R = C * K / 255 on the
// inverted (Adobe) samples. No gamma or ICC colour management is applied.
//
// Resize: the image is center-cropped to its central square (side = the shorter side s, offset
// floor((longer - s) / 2)), then resampled to size x size; this is "shorter side to `size`, then
// center crop" without rounding the intermediate size. Downscaling uses the area filter (each output
// pixel is the coverage-weighted mean of the source pixels under it: antialiased at any factor);
// upscaling uses bilinear interpolation with half-pixel centers (align_corners = false, edges
// clamped); the same size is the identity. Both are separable, computed in float and rounded to the
// nearest integer. JPEGs at least twice larger than needed are first decoded at 1/2, 1/4 or 1/8
// scale by libjpeg's scaled inverse DCT (itself an average over each 8x8 block), always keeping the
// shorter side >= size, which makes decoding ImageNet-sized files several times faster.
//
// Bad input is an st::Error with a one-line message naming the file or folder: a missing root or
// split folder, no class folders, an empty class folder, an unsupported extension, an undecodable,
// corrupt or truncated image (libjpeg's and libpng's error handlers are replaced: they never exit),
// a Tiny-ImageNet annotation that is malformed, names an unknown class or a missing file, and a
// split larger than max_images. Decoding runs in parallel (OpenMP); each image is decoded
// independently into its own slot, so the result does not depend on the thread count, and the
// error reported is always the one of the first bad file in sorted order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/dataset.h"

namespace st::data {

struct ImageFolderOptions {
  int64_t image_size = 64;       // output side (Tiny-ImageNet's native 64)
  int64_t max_images = 200'000;  // refuse a split with more images (its memory is N*size*size*3)
};

// A decoded image: height x width x 3, RGB, row-major (HWC).
struct RgbImage {
  int64_t height = 0, width = 0;
  std::vector<uint8_t> pixels;
};

// Decodes a JPEG or PNG held in memory (`path` names it in errors). `min_side` > 0 allows a JPEG to be
// decoded at a reduced DCT scale (1/2, 1/4 or 1/8) as long as its shorter side stays >= min_side.
RgbImage decode_image(const std::vector<uint8_t>& bytes, const std::string& path, int64_t min_side = 0);

// Reads and decodes one file: decode_image(read_file_maybe_gzip(path), path, min_side).
RgbImage read_image_file(const std::string& path, int64_t min_side = 0);

// The central square of `image`, resampled to size x size as described above; size*size*3 bytes.
std::vector<uint8_t> center_crop_resize(const RgbImage& image, int64_t size);

// The train (ROOT/train) or validation (ROOT/val) split of an image folder. Labels come from the
// sorted class folders of ROOT/train in both splits. Named "<ROOT>/train" or "<ROOT>/val".
Dataset load_image_folder(const std::string& root, bool train, const ImageFolderOptions& options);

// The class names of ROOT/train (sorted; the label of a class is its index).
std::vector<std::string> image_folder_classes(const std::string& root);

}  // namespace st::data
