// The model registry: name -> builder, with the input each model expects and the reference
// parameter count of ../shared/spec/models.md (checked by tests and printed by `sparsetrain models`).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/input_spec.h"
#include "engine/nn.h"
#include "engine/plugins.h"
#include "engine/rng.h"

namespace st::models {

using InputSpec = st::InputSpec;  // (engine/input_spec.h)

struct ModelEntry {
  std::string name;
  std::string description;
  InputSpec reference_input;         // the input the reference count is stated for
  int64_t reference_parameters = 0;  // exact trainable parameter count at reference_input
  int64_t image_size = 28;           // smallest spatial size the model takes; smaller inputs are zero-padded
  std::function<std::unique_ptr<nn::Module>(const InputSpec&, Rng&)> build;
};

const std::vector<ModelEntry>& registry();
// Throws st::Error naming the unknown model and listing the known ones.
const ModelEntry& find_model(const std::string& name);
std::unique_ptr<nn::Module> build_model(const std::string& name, const InputSpec& input, Rng& rng);
// Sets the models' entries of `plugins` (engine/plugins.h): build_model and model_image_size.
void install(Plugins& plugins);

// Families (defined in one file each).
std::unique_ptr<nn::Module> make_lenet300(const InputSpec& input, Rng& rng);
std::unique_ptr<nn::Module> make_lenet5(const InputSpec& input, Rng& rng);
enum class Shortcut { A, B };
std::unique_ptr<nn::Module> make_cifar_resnet(int depth, Shortcut shortcut, const InputSpec& input, Rng& rng);
std::unique_ptr<nn::Module> make_vgg(int depth, const InputSpec& input, Rng& rng);
std::unique_ptr<nn::Module> make_imagenet_resnet(int depth, const InputSpec& input, Rng& rng);
std::unique_ptr<nn::Module> make_wide_resnet(int depth, int widen, const InputSpec& input, Rng& rng);
std::unique_ptr<nn::Module> make_mobilenet_v1(bool cifar, const InputSpec& input, Rng& rng);
std::unique_ptr<nn::Module> make_mobilenet_v2(bool cifar, const InputSpec& input, Rng& rng);
std::unique_ptr<nn::Module> make_alexnet_cifar(const InputSpec& input, Rng& rng);
std::unique_ptr<nn::Module> make_densenet_bc(int depth, int64_t growth, const InputSpec& input, Rng& rng);
std::unique_ptr<nn::Module> make_vit_tiny(int depth, const InputSpec& input, Rng& rng);

}  // namespace st::models
