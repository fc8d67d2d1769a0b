// The test runner: doctest's main, with fresh gradient buffers poisoned (NaN) so that a backward
// kernel that leaves part of a gradient it should overwrite unwritten fails the gradient checks.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "components/install.h"
#include "engine/autograd.h"

int main(int argc, char** argv) {
  st::install_components();
  st::set_poison_fresh_gradients(true);
  doctest::Context context(argc, argv);
  return context.run();
}
