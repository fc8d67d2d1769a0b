// The input a network is built for: channels, image side (NHWC), classes. It belongs to the engine (the
// trainer, data and export read it), not to models/, which builds networks for it.
#pragma once

#include <cstdint>

namespace st {

struct InputSpec {
  int64_t channels = 1, height = 28, width = 28;
  int64_t num_classes = 10;
};

}  // namespace st
