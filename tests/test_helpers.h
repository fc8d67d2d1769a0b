// Helpers shared by the test suites.
#pragma once

#include "engine/rng.h"
#include "engine/tensor.h"

namespace st::testing {

// Standard-normal values times `scale`, from the given generator.
inline Tensor random_tensor(const Shape& shape, Rng& rng, float scale = 1.0f) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = scale * rng.normal();
  return t;
}

}  // namespace st::testing
