// End-to-end tests of the sparsetrain binary: real training on Fashion-MNIST, every bad input of
// the foundation issue refused with one line naming the file/flag, and a run killed with SIGKILL and
// resumed ending bit-identical to the uninterrupted run.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <chrono>
#include <cmath>
#include <map>
#include <set>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/device.h"
#include "engine/io/checkpoint.h"
#include "engine/io/safetensors.h"
#include "tests/image_files.h"

namespace fs = std::filesystem;

namespace {

const fs::path kFashionMnist = "/usr/share/datasets/fashion-mnist";

// Tests on the real data set skip with one line where Debian's dataset-fashion-mnist is missing.
#define SKIP_WITHOUT_FASHION_MNIST()                                                                   \
  if (!fs::exists(kFashionMnist)) {                                                                    \
    MESSAGE("skipped: " << kFashionMnist << " is not installed (apt-get install dataset-fashion-mnist)"); \
    return;                                                                                            \
  }

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("sparsetrain-e2e-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

CommandResult run(const std::string& args) {
  const fs::path dir = fs::temp_directory_path() / "sparsetrain-e2e-io";
  fs::create_directories(dir);
  const std::string command = std::string(ST_BINARY_PATH) + " " + args + " >" + (dir / "out").string() + " 2>" +
                              (dir / "err").string() + " </dev/null";
  const int status = std::system(command.c_str());
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = read_text(dir / "out");
  result.err = read_text(dir / "err");
  return result;
}

// The events of one kind in a run's metrics.jsonl, in order.
std::vector<nlohmann::json> metrics_events(const fs::path& run_dir, const std::string& kind) {
  std::ifstream metrics(run_dir / "metrics.jsonl");
  std::string line;
  std::vector<nlohmann::json> events;
  while (std::getline(metrics, line)) {
    auto event = nlohmann::json::parse(line);
    if (event.at("event") == kind) events.push_back(std::move(event));
  }
  return events;
}

// The units each layer of a select_units event kept; checks that every layer kept at least one and
// stopped at its target, or kept every unit when the target was out of reach.
std::vector<int64_t> checked_selection(const nlohmann::json& layers) {
  std::vector<int64_t> kept;
  for (const auto& layer : layers) {
    kept.push_back(layer.at("selected").get<int64_t>());
    INFO(layer.dump());
    CHECK(kept.back() >= 1);
    CHECK((layer.at("accuracy_selected").get<double>() >= layer.at("target_accuracy").get<double>() ||
           kept.back() == layer.at("units").get<int64_t>()));
  }
  return kept;
}

// The refusal contract: non-zero exit, exactly one line on stderr containing every `needles`.
void check_refused(const std::string& args, const std::vector<std::string>& needles) {
  const CommandResult r = run(args);
  INFO("args: " << args << "\nstderr: " << r.err << "\nstdout tail: " << r.out.substr(r.out.size() > 400 ? r.out.size() - 400 : 0));
  CHECK(r.exit_code != 0);
  CHECK(r.exit_code < 128);  // an error exit, not a crash
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  for (const std::string& needle : needles) CHECK(r.err.find(needle) != std::string::npos);
}

void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void put_be32(std::vector<uint8_t>& b, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<uint8_t>(v >> shift));
}

// A small valid IDX directory (raw files): n train and n test images of 28x28, labels i % 10.
void write_idx_directory(const fs::path& dir, uint32_t n, uint8_t bad_label = 255) {
  for (const std::string split : {"train", "t10k"}) {
    std::vector<uint8_t> images, labels;
    put_be32(images, 0x803);
    put_be32(images, n);
    put_be32(images, 28);
    put_be32(images, 28);
    for (uint32_t i = 0; i < n * 28 * 28; ++i) images.push_back(static_cast<uint8_t>((i * 7) % 256));
    put_be32(labels, 0x801);
    put_be32(labels, n);
    for (uint32_t i = 0; i < n; ++i) labels.push_back(static_cast<uint8_t>(i % 10));
    if (bad_label != 255 && split == "train") labels.back() = bad_label;
    write_bytes(dir / (split + "-images-idx3-ubyte"), images);
    write_bytes(dir / (split + "-labels-idx1-ubyte"), labels);
  }
}

// A small image folder (ImageNet layout): 3 classes of PNG and JPEG files of mixed sizes whose
// colour depends on the class, `per_class` train and 4 val images per class.
void write_image_folder(const fs::path& root, int per_class) {
  const char* const classes[3] = {"n001", "n002", "n003"};
  for (int label = 0; label < 3; ++label) {
    for (int index = 0; index < per_class + 4; ++index) {
      const bool val = index >= per_class;
      const fs::path dir = root / (val ? "val" : "train") / classes[label];
      const int width = 36 + 4 * (index % 3), height = 40 - 2 * (index % 4);
      std::vector<uint8_t> rgb;
      for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x)
          for (int c = 0; c < 3; ++c)
            rgb.push_back(static_cast<uint8_t>(c == label ? 180 + (x * y + index) % 60 : (x + 3 * y + 7 * index) % 90));
      const std::string name = "img_" + std::to_string(100 + index);
      if (index % 2 == 0)
        st::testing::write_file_bytes(dir / (name + ".png"),
                                      st::testing::encode_png(width, height, PNG_COLOR_TYPE_RGB, 8, rgb));
      else
        st::testing::write_file_bytes(dir / (name + ".JPEG"), st::testing::encode_jpeg(width, height, 3, rgb, 90));
    }
  }
}

std::vector<uint8_t> read_bytes(const fs::path& path) {
  const std::string text = read_text(path);
  return std::vector<uint8_t>(text.begin(), text.end());
}

// Every param/* tensor of a checkpoint, by name.
std::map<std::string, std::vector<uint8_t>> weights_of(const fs::path& checkpoint) {
  std::map<std::string, std::vector<uint8_t>> weights;
  for (const auto& record : st::io::read_safetensors(checkpoint).tensors)
    if (record.name.rfind("param/", 0) == 0 || record.name.rfind("buffer/", 0) == 0 ||
        record.name.rfind("optim/", 0) == 0 || record.name.rfind("mask/", 0) == 0)
      weights[record.name] = record.bytes;
  return weights;
}

// Global density of a checkpoint's masks; every masked-out weight must be exactly 0 (the invariant).
double masked_density(const fs::path& checkpoint) {
  const auto file = st::io::read_safetensors(checkpoint);
  int64_t kept = 0, total = 0;
  for (const auto& record : file.tensors) {
    if (record.name.rfind("mask/", 0) != 0) continue;
    const auto mask = file.f32(record.name);
    const auto weights = file.f32("param/" + record.name.substr(5));
    for (std::size_t i = 0; i < mask.size(); ++i) {
      kept += mask[i] != 0.0f ? 1 : 0;
      if (mask[i] == 0.0f) REQUIRE(weights[i] == 0.0f);
    }
    total += static_cast<int64_t>(mask.size());
  }
  return static_cast<double>(kept) / static_cast<double>(std::max<int64_t>(total, 1));
}

}  // namespace

TEST_SUITE("e2e") {
  TEST_CASE("bad input is refused with one line naming the file or flag") {
    const fs::path base = fresh_dir("bad-input");
    const std::string small = " --val-size 10 --threads 1 --run-dir " + (base / "run").string();

    SUBCASE("missing path") {
      check_refused("train --data-dir " + (base / "nowhere").string() + small, {(base / "nowhere").string(), "no such"});
    }
    SUBCASE("truncated IDX file") {
      const fs::path dir = base / "truncated";
      fs::create_directories(dir);
      write_idx_directory(dir, 40);
      auto bytes = read_bytes(dir / "train-images-idx3-ubyte");
      bytes.resize(bytes.size() / 2);
      write_bytes(dir / "train-images-idx3-ubyte", bytes);
      check_refused("train --data-dir " + dir.string() + small, {"train-images-idx3-ubyte", "truncated"});
    }
    SUBCASE("gzip-corrupt IDX file") {
      const fs::path dir = base / "gzip";
      fs::create_directories(dir);
      write_idx_directory(dir, 40);
      std::vector<uint8_t> gz = {0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0x03, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x11};
      write_bytes(dir / "train-images-idx3-ubyte.gz", gz);
      check_refused("train --data-dir " + dir.string() + small, {"train-images-idx3-ubyte.gz", "gzip"});
    }
    SUBCASE("wrong magic number") {
      const fs::path dir = base / "magic";
      fs::create_directories(dir);
      write_idx_directory(dir, 40);
      auto bytes = read_bytes(dir / "train-labels-idx1-ubyte");
      bytes[3] = 0x03;
      write_bytes(dir / "train-labels-idx1-ubyte", bytes);
      check_refused("train --data-dir " + dir.string() + small, {"train-labels-idx1-ubyte", "magic"});
    }
    SUBCASE("label out of range") {
      const fs::path dir = base / "label";
      fs::create_directories(dir);
      write_idx_directory(dir, 40, 12);
      check_refused("train --data-dir " + dir.string() + small, {"train-labels-idx1-ubyte", "12"});
    }
    SUBCASE("CIFAR file whose size is not a multiple of the record size") {
      const fs::path dir = base / "cifar";
      fs::create_directories(dir);
      for (const std::string name : {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                                     "data_batch_5.bin", "test_batch.bin"})
        write_bytes(dir / name, std::vector<uint8_t>(3073 * 2, 1));
      write_bytes(dir / "data_batch_3.bin", std::vector<uint8_t>(3073 * 2 + 100, 1));
      check_refused("train --data cifar10 --data-dir " + dir.string() + small, {"data_batch_3.bin", "3073"});
    }
    SUBCASE("unknown model") { check_refused("train --model resnet7" + small, {"--model", "resnet7"}); }
    SUBCASE("non-positive batch size") {
      check_refused("train --batch 0" + small, {"--batch"});
      check_refused("train --batch -5" + small, {"--batch"});
      check_refused("train --batch many" + small, {"--batch"});
    }
    SUBCASE("non-positive learning rate") {
      check_refused("train --lr 0" + small, {"--lr"});
      check_refused("train --lr -0.1" + small, {"--lr"});
    }
    SUBCASE("unknown optimizer and out-of-range flags") {
      check_refused("train --optimizer lion" + small, {"--optimizer", "lion"});
      check_refused("train --density 0" + small, {"--density"});
      check_refused("train --epochs 0" + small, {"--epochs"});
    }
    SUBCASE("resume of a directory without checkpoint") {
      check_refused("train --resume " + (base / "empty").string(), {"--resume", "no checkpoint"});
    }
    SUBCASE("corrupt image in an image folder") {
      const fs::path root = base / "images";
      write_image_folder(root, 4);
      const fs::path bad = root / "train" / "n002" / "img_101.JPEG";
      auto bytes = read_bytes(bad);
      bytes.resize(bytes.size() / 2);
      write_bytes(bad, bytes);
      const std::string args = "train --data imagefolder --image-size 32 --model lenet5 --data-dir " + root.string() + small;
      check_refused(args, {bad.string(), "truncated JPEG"});
      CHECK(run(args).exit_code == 2);
    }
  }

  TEST_CASE("lenet5 trains on an image folder of PNG and JPEG files resized to 32x32") {
    const fs::path root = fresh_dir("image-folder");
    write_image_folder(root / "data", 10);
    const fs::path run_dir = root / "run";
    const CommandResult r = run("train --data imagefolder --data-dir " + (root / "data").string() +
                                " --image-size 32 --model lenet5 --epochs 2 --batch 8 --val-size 6 --lr 0.02 --threads 2"
                                " --run-dir " + run_dir.string());
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    const auto config = nlohmann::json::parse(read_text(run_dir / "config.json"));
    CHECK(config.at("data") == "imagefolder");
    CHECK(config.at("image-size") == 32);
    std::ifstream metrics(run_dir / "metrics.jsonl");
    std::string line;
    double test_accuracy = -1.0;
    int64_t final_step = -1;
    int train_events = 0, eval_events = 0;
    while (std::getline(metrics, line)) {
      const auto event = nlohmann::json::parse(line);
      if (event.at("event") == "train") ++train_events;
      if (event.at("event") == "eval") ++eval_events;
      if (event.at("event") == "end") {
        test_accuracy = event.at("test_accuracy").get<double>();
        final_step = event.at("step").get<int64_t>();
      }
    }
    CHECK(train_events > 0);
    CHECK(eval_events >= 1);     // after epoch 1 (the last epoch's evaluation is the end event)
    CHECK(final_step == 2 * 3);  // (30 - 6 validation) images / batch 8 = 3 steps per epoch
    // The classes differ by their dominant colour channel: labels and pixels line up only if the
    // folder was read right; chance is 1/3 (seed 0 reaches 1.0 on the 12 val images).
    CHECK(test_accuracy > 0.6);
    const std::string summary = read_text(run_dir / "summary.csv");
    CHECK(std::count(summary.begin(), summary.end(), '\n') == 2);  // header + 1 cycle
    CHECK(fs::exists(run_dir / "checkpoints" / "final.safetensors"));
  }

  TEST_CASE("sparsetrain methods lists the pruning methods and scores of the registries") {
    const CommandResult r = run("methods --json");
    REQUIRE(r.exit_code == 0);
    const auto listed = nlohmann::json::parse(r.out);
    std::vector<std::string> methods;
    for (const auto& m : listed.at("methods")) methods.push_back(m.at("name"));
    CHECK(methods == std::vector<std::string>{"dst", "init", "early", "gmp", "imp", "structured", "select"});
    std::map<std::string, bool> needs_data;
    for (const auto& s : listed.at("scores")) needs_data[s.at("name")] = s.at("needs_data");
    CHECK(needs_data.size() >= 11);
    CHECK_FALSE(needs_data.at("magnitude"));
    CHECK(needs_data.at("snip"));
    const CommandResult table = run("methods");
    REQUIRE(table.exit_code == 0);
    CHECK(table.out.find("gmp          gradual magnitude pruning") != std::string::npos);
  }

  TEST_CASE("sparsetrain models --json gives the counts of ../shared/spec/models.md") {
    const CommandResult r = run("models --json");
    REQUIRE(r.exit_code == 0);
    const auto models = nlohmann::json::parse(r.out);
    const std::map<std::string, int64_t> expected = {
        {"lenet300", 266'610}, {"lenet5", 61'706},     {"resnet20", 272'474},  {"resnet32", 466'906},
        {"resnet56", 855'770}, {"resnet110", 1'730'714}, {"resnet20a", 269'722}, {"resnet32a", 464'154},
        {"resnet56a", 853'018}, {"resnet110a", 1'727'962}, {"vgg11", 9'231'114}, {"vgg13", 9'416'010},
        {"vgg16", 14'728'266}, {"vgg19", 20'040'522}, {"wrn-22-2", 1'079'642}, {"mobilenetv1", 3'217'226},
        {"mobilenetv2", 3'504'872 - 1280 * 990 - 990}, {"mobilenetv1-imagenet", 4'231'976},
        {"mobilenetv2-imagenet", 3'504'872}, {"resnet18", 11'689'512}, {"resnet50", 25'557'032},
        {"alexnet-cifar", 35'855'178}, {"densenet", 769'162}, {"vit-tiny", 5'362'762}, {"vit-tiny6", 2'693'578}};
    std::size_t seen = 0;
    for (const auto& model : models) {
      const std::string name = model.at("name");
      INFO(name);
      REQUIRE(expected.count(name) == 1);
      CHECK(model.at("parameters").get<int64_t>() == expected.at(name));
      CHECK(model.at("reference_parameters").get<int64_t>() == expected.at(name));
      int64_t prunable = 0;
      for (const auto& tensor : model.at("prunable_tensors")) prunable += tensor.at("numel").get<int64_t>();
      CHECK(prunable == model.at("prunable_parameters").get<int64_t>());
      ++seen;
    }
    CHECK(seen == expected.size());
    // lenet300: the three linear weights are its prunable tensors
    CHECK(models[0].at("prunable_tensors").size() == 3);
    CHECK(models[0].at("prunable_parameters").get<int64_t>() == 784 * 300 + 300 * 100 + 100 * 10);
  }

  TEST_CASE("sparsetrain schedule prints SILO(5e-2, 5e-2, 4K, 23K, 46K, 62K) over 12 cycles as the formulas say") {
    const CommandResult r = run("schedule --silo 'SILO(5e-2, 5e-2, 4K, 23K, 46K, 62K)' --cycles 12 --every 250 --csv");
    REQUIRE(r.exit_code == 0);
    std::istringstream lines(r.out);
    std::string line;
    std::getline(lines, line);
    CHECK(line == "cycle,iter,lr");
    int rows = 0, max_cycle = -1;
    while (std::getline(lines, line)) {
      int cycle = 0;
      long iter = 0;
      double lr = 0.0;
      REQUIRE(std::sscanf(line.c_str(), "%d,%ld,%lf", &cycle, &iter, &lr) == 3);
      // independent formula: max_lr(k) = 0.05 + 0.05 S(x_k), x_k = 1 - 0.8^(k - 1) for k > 1
      const double x = cycle > 1 ? 1.0 - std::pow(0.8, cycle - 1) : 0.0;
      const double s = x <= 0.0 ? 0.0 : std::pow(x, 5) / (std::pow(x, 5) + std::pow(1 - x, 5));
      const double peak = 0.05 + 0.05 * s;
      double expected = iter < 4000 ? peak * static_cast<double>(iter + 1) / 4000.0
                                    : peak * (iter >= 46000 ? 0.01 : iter >= 23000 ? 0.1 : 1.0);
      INFO(line);
      CHECK(lr == doctest::Approx(expected).epsilon(1e-6));
      CHECK(iter < 62000);
      max_cycle = std::max(max_cycle, cycle);
      ++rows;
    }
    CHECK(max_cycle == 11);
    CHECK(rows == 12 * (62000 / 250 + 1));
  }

  TEST_CASE("sparsetrain schedule draws its PNG") {
    if (std::system("/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1") != 0) {
      MESSAGE("skipped: /usr/bin/python3 has no matplotlib (apt-get install python3-matplotlib)");
      return;
    }
    const fs::path png = fresh_dir("schedule-png") / "silo.png";
    const CommandResult r = run("schedule --silo 'SILO(5e-2, 5e-2, 4K, 23K, 46K, 62K)' --cycles 12 --every 100 --png " +
                                png.string());
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    const auto bytes = read_bytes(png);
    REQUIRE(bytes.size() > 10000);
    CHECK(bytes[1] == 'P');
    CHECK(bytes[2] == 'N');
    CHECK(bytes[3] == 'G');
    CHECK(r.out.find("saturation") != std::string::npos);
  }

  TEST_CASE("bad schedule parameters are refused before any training starts") {
    const std::string common = " --epochs 1 --threads 1 --run-dir " + (fresh_dir("bad-schedule") / "run").string();
    for (const auto& [args, flag] : std::vector<std::pair<std::string, std::string>>{
             {"train --lr -0.1", "--lr"},
             {"train --schedule step --milestones 600,300", "--milestones"},
             {"train --schedule step --milestones 300,100000", "--milestones"},
             {"train --cycle-policy silo --silo-beta 0", "--silo-beta"},
             {"train --cycle-policy silo --silo-beta -2", "--silo-beta"},
             {"train --silo 'SILO(5e-2, 5e-2, 4K, 23K)'", "--silo"},
             {"schedule --schedule cyclical", "--half-cycle-iters"}}) {
      const CommandResult r = run(args + (args.rfind("train", 0) == 0 ? common : ""));
      INFO(args << "\n" << r.err);
      CHECK(r.exit_code == 2);
      CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
      CHECK(r.err.find(flag) != std::string::npos);
      CHECK(r.out.find("epoch") == std::string::npos);  // nothing trained
    }
  }

  TEST_CASE("the oracle on lenet300 writes its per-cycle table") {
    SKIP_WITHOUT_FASHION_MNIST();
    const fs::path run_dir = fresh_dir("oracle");
    const CommandResult r = run("train --model lenet300 --epochs 1 --train-limit 6000 --val-size 1000 --cycles 3 "
                                "--oracle --oracle-size 3 --oracle-min 1e-3 --oracle-max 1e-1 --run-dir " +
                                run_dir.string());
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    const std::string report = read_text(run_dir / "oracle.md");
    for (const std::string row : {"| 0 | 1.0000 |", "| 1 | 0.8000 |", "| 2 | 0.6400 |"})
      CHECK(report.find(row) != std::string::npos);
    CHECK(report.find("SILO max_lr(k)") != std::string::npos);
    // every branch was trained and logged: 3 cycles x 3 max_lr values
    CHECK(metrics_events(run_dir, "oracle_branch").size() == 9);
    const std::string summary = read_text(run_dir / "summary.csv");
    CHECK(std::count(summary.begin(), summary.end(), '\n') == 4);  // header + 3 cycles
    check_refused("train --oracle --oracle-size 0 --run-dir " + (run_dir / "x").string(), {"--oracle-size"});
    check_refused("train --cycles 2 --prune-rate 1.5 --run-dir " + (run_dir / "y").string(), {"--prune-rate"});
  }

  TEST_CASE("IMP density after K cycles is (1 - p)^K and masked weights stay zero") {
    SKIP_WITHOUT_FASHION_MNIST();
    const fs::path run_dir = fresh_dir("imp");
    const CommandResult r = run("train --model lenet300 --epochs 1 --train-limit 3000 --val-size 500 --cycles 4 "
                                "--cycle-policy lr_rewind --rewind-iter 5 --prune-rate 0.2 --run-dir " +
                                run_dir.string());
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(masked_density(run_dir / "checkpoints" / "final.safetensors") == doctest::Approx(0.8 * 0.8 * 0.8).epsilon(1e-4));
    // The per-cycle distribution report: one event per cycle, measured on the network each cycle trains.
    const auto events = metrics_events(run_dir, "distributions");
    REQUIRE(events.size() == 4);
    const int64_t prunable = 784 * 300 + 300 * 100 + 100 * 10;
    for (int k = 0; k < 4; ++k) {
      const auto& e = events[static_cast<std::size_t>(k)];
      CHECK(e["cycle"] == k);
      CHECK(e["density"].get<double>() == doctest::Approx(std::pow(0.8, k)).epsilon(1e-4));
      // gradients of the surviving weights only: kept = round((0.8)^k * prunable) up to per-layer rounding
      CHECK(std::fabs(e["gradient"]["kept"].get<double>() - std::pow(0.8, k) * prunable) < 4.0);
      int64_t binned = 0;
      for (int64_t c : e["gradient"]["histogram"]["counts"].get<std::vector<int64_t>>()) binned += c;
      CHECK(binned == e["gradient"]["kept"].get<int64_t>());
      CHECK(e["gradient"]["histogram"]["counts"].size() ==
            static_cast<std::size_t>(std::ceil(std::log2(e["gradient"]["kept"].get<double>()))) + 1);
      CHECK(e["activation"]["sites"].size() == 2);  // lenet300: two ReLUs
      CHECK(e["gradient"]["std"].get<double>() > 0.0);
    }
    const std::string report = read_text(run_dir / "report.md");
    for (int k = 0; k < 4; ++k) CHECK(report.find(fmt::format("\n| {} | {:.4f} |", k, std::pow(0.8, k))) != std::string::npos);
  }

  TEST_CASE("after a weight rewind the surviving weights equal their values at t_k") {
    SKIP_WITHOUT_FASHION_MNIST();
    const std::string common = " --model lenet300 --schedule constant --lr 0.05 --train-limit 3000 --val-size 500"
                               " --batch 64 --threads 2 --seed 9";
    const fs::path at_tk = fresh_dir("rewind-tk"), imp = fresh_dir("rewind-imp");
    REQUIRE(run("train" + common + " --iters 3 --run-dir " + at_tk.string()).exit_code == 0);
    REQUIRE(run("train" + common + " --epochs 1 --cycles 2 --cycle-policy weight_rewind --rewind-iter 3 --prune-rate 0.5"
                " --run-dir " + imp.string())
                .exit_code == 0);
    const auto theta = st::io::read_safetensors(at_tk / "checkpoints" / "final.safetensors");
    const auto rewound = st::io::read_safetensors(imp / "checkpoints" / "cycle-1.safetensors");
    int64_t survivors = 0, pruned = 0;
    for (const auto& record : theta.tensors) {
      if (record.name.rfind("param/", 0) != 0) continue;
      const std::string name = record.name.substr(6);
      const auto expected = theta.f32(record.name), actual = rewound.f32(record.name);
      const auto* mask = rewound.find("mask/" + name);
      const std::vector<float> keep = mask ? rewound.f32("mask/" + name) : std::vector<float>(expected.size(), 1.0f);
      for (std::size_t i = 0; i < expected.size(); ++i) {
        if (keep[i] != 0.0f) {
          ++survivors;
          REQUIRE(actual[i] == expected[i]);  // bit-identical to theta at t_k = 3
        } else {
          ++pruned;
          REQUIRE(actual[i] == 0.0f);
        }
      }
    }
    CHECK(survivors > 100000);
    CHECK(pruned > 100000);
  }

  TEST_CASE("every pruning method runs from sparsetrain train and reaches its density") {
    SKIP_WITHOUT_FASHION_MNIST();
    const std::string common = " --model lenet5 --epochs 2 --train-limit 3000 --val-size 500 --batch 64 --threads 2";
    const std::vector<std::pair<std::string, double>> runs = {
        {"--prune-at-init snip --init-density 0.1", 0.1},
        {"--prune-at-init grasp --init-density 0.2", 0.2},
        {"--prune-at-init synflow --init-density 0.1 --synflow-rounds 10", 0.1},
        {"--prune-at-init random --init-density 0.1 --prune-allocation erk", 0.1},
        {"--prune-at-init lap --init-density 0.3 --prune-allocation layerwise", 0.3},
        {"--early-rounds 1 --early-sparsity 0.75 --prune-score abs_hg", 0.25},
        {"--gmp-final-sparsity 0.8 --gmp-start 10 --gmp-interval 10 --gmp-steps 5", 0.2},
        {"--cycles 3 --cycle-policy weight_rewind --rewind-iter 2 --control reinit --prune-rate 0.5", 0.25},
        {"--cycles 3 --cycle-policy finetune --control random_mask --prune-rate 0.5 --prune-score snip", 0.25}};
    for (const auto& [flags, density] : runs) {
      const fs::path run_dir = fresh_dir("methods");
      const CommandResult r = run("train " + flags + common + " --run-dir " + run_dir.string());
      INFO(flags << "\n" << r.err << r.out.substr(r.out.size() > 2000 ? r.out.size() - 2000 : 0));
      REQUIRE(r.exit_code == 0);
      CHECK(r.out.find("pruning event") != std::string::npos);
      CHECK(r.out.find("MFLOP") != std::string::npos);
      CHECK(masked_density(run_dir / "checkpoints" / "final.safetensors") == doctest::Approx(density).epsilon(2e-3));
    }
  }

  TEST_CASE("RigL and SET in training keep each layer's non-zero count constant") {
    SKIP_WITHOUT_FASHION_MNIST();
    for (const std::string method : {"rigl", "set"}) {
      const fs::path run_dir = fresh_dir("dst-" + method);
      const CommandResult r = run("train --model lenet300 --dst " + method +
                                  " --init-density 0.1 --prune-allocation erk --dst-interval 20 --epochs 2"
                                  " --train-limit 6000 --val-size 1000 --threads 2 --run-dir " + run_dir.string());
      INFO(r.out << r.err);
      REQUIRE(r.exit_code == 0);
      std::ifstream metrics(run_dir / "metrics.jsonl");
      std::string line;
      std::map<std::string, int64_t> initial;
      int updates = 0;
      while (std::getline(metrics, line)) {
        const auto event = nlohmann::json::parse(line);
        if (event.at("event") == "prune")
          for (const auto& layer : event.at("layers")) initial[layer.at("name")] = layer.at("kept").get<int64_t>();
        if (event.at("event") != "dst_update") continue;
        ++updates;
        CHECK(event.at("moved").get<int64_t>() > 0);
        for (const auto& layer : event.at("layers")) {
          CHECK(layer.at("active").get<int64_t>() == initial.at(layer.at("name")));
          CHECK(layer.at("grown").get<int64_t>() == layer.at("dropped").get<int64_t>());
        }
      }
      CHECK(updates == 2);  // steps 20 and 40: updates stop at T_end = 0.75 * 80 iterations
      const auto file = st::io::read_safetensors(run_dir / "checkpoints" / "final.safetensors");
      for (const auto& [name, kept] : initial) {
        const auto mask = file.f32("mask/" + name);
        CHECK(std::count_if(mask.begin(), mask.end(), [](float m) { return m != 0.0f; }) == kept);
      }
    }
  }

  TEST_CASE("unit selection (GFS and magnitude) shrinks lenet300 to the units it selects, each layer at its target") {
    SKIP_WITHOUT_FASHION_MNIST();
    // method (and GFS's form): the label in the run directory's name, the flags, the metrics' "scale"
    const std::vector<std::array<std::string, 3>> methods = {{"gfs", "gfs", "average"},
                                                             {"gfs-sum", "gfs --select-scale sum", "sum"},
                                                             {"magnitude", "magnitude", "sum"}};
    for (const auto& [method, flags, scale] : methods) {
      for (const std::string target : {"layer", "original"}) {
        if (method == "gfs-sum" && target == "original") continue;  // the form does not change the references
        const fs::path run_dir = fresh_dir("select-" + method + "-" + target);
        const CommandResult r = run("train --model lenet300 --epochs 1 --cycles 2 --cycle-policy restart --select " +
                                    flags + " --select-target " + target +
                                    " --select-tolerance 0.05 --select-eval 1000 --select-finetune-steps 20"
                                    " --train-limit 6000 --val-size 1000 --threads 2 --run-dir " + run_dir.string());
        INFO(method << " " << target << "\n" << r.out << r.err);
        REQUIRE(r.exit_code == 0);
        const auto events = metrics_events(run_dir, "select_units");
        REQUIRE(events.size() == 1);
        const nlohmann::json& selection = events[0];
        CHECK(selection.at("scale") == scale);
        const auto& layers = selection.at("layers");
        REQUIRE(layers.size() == 2);
        const double original = selection.at("original_accuracy").get<double>();
        // The first layer's reference is the trained network in both modes; the second's is the
        // fine-tuned network after the first selection ("layer") or the trained one ("original").
        CHECK(layers[0].at("target_accuracy").get<double>() == doctest::Approx(0.95 * original).epsilon(1e-12));
        const double second_reference =
            target == "layer" ? layers[0].at("accuracy_finetuned").get<double>() : original;
        CHECK(layers[1].at("target_accuracy").get<double>() == doctest::Approx(0.95 * second_reference).epsilon(1e-12));
        const std::vector<int64_t> kept = checked_selection(layers);
        CHECK(kept[0] < 300);  // at 5% tolerance the first layer always loses units
        const auto file = st::io::read_safetensors(run_dir / "checkpoints" / "final.safetensors");
        CHECK(file.at("param/1.weight").shape == std::vector<int64_t>{kept[0], 784});
        CHECK(file.at("param/3.weight").shape == std::vector<int64_t>{kept[1], kept[0]});
        CHECK(file.at("param/5.weight").shape == std::vector<int64_t>{10, kept[1]});
        CHECK(selection.at("parameters").get<int64_t>() == 785 * kept[0] + (kept[0] + 1) * kept[1] + (kept[1] + 1) * 10);
      }
    }
    check_refused("train --model lenet300 --cycles 2 --select gfs --select-target best --val-size 10 --run-dir " +
                      fresh_dir("select-refused").string(),
                  {"--select-target", "best"});
    check_refused("train --model lenet300 --cycles 2 --select gfs --select-scale product --val-size 10 --run-dir " +
                      fresh_dir("select-refused").string(),
                  {"--select-scale", "product"});
    check_refused("train --model lenet300 --cycles 2 --select gfs --select-scale sum --select-repeats --val-size 10 "
                  "--run-dir " + fresh_dir("select-refused").string(),
                  {"--select-repeats", "average"});
  }

  TEST_CASE("unit selection removes the filters of convolutional layers (lenet5) and their columns after Flatten") {
    SKIP_WITHOUT_FASHION_MNIST();
    const fs::path run_dir = fresh_dir("select-lenet5");
    const CommandResult r = run("train --model lenet5 --epochs 1 --cycles 2 --cycle-policy restart --select gfs "
                                "--select-scale sum --select-tolerance 0.05 --select-eval 1000 "
                                "--select-finetune-steps 20 --train-limit 6000 --val-size 1000 --threads 2 --run-dir " +
                                run_dir.string());
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    const auto events = metrics_events(run_dir, "select_units");
    REQUIRE(events.size() == 1);
    const nlohmann::json& selection = events[0];
    const auto& layers = selection.at("layers");
    REQUIRE(layers.size() == 4);  // conv 6, conv 16, fc 120, fc 84
    const std::vector<int64_t> k = checked_selection(layers);
    CHECK(k[0] + k[1] < 6 + 16);  // at 5% tolerance the convolutions lose filters
    const auto file = st::io::read_safetensors(run_dir / "checkpoints" / "final.safetensors");
    CHECK(file.at("param/0.weight").shape == std::vector<int64_t>{k[0], 5, 5, 1});  // KRSC
    CHECK(file.at("param/3.weight").shape == std::vector<int64_t>{k[1], 5, 5, k[0]});
    CHECK(file.at("param/7.weight").shape == std::vector<int64_t>{k[2], 25 * k[1]});  // 5x5 positions x k[1] channels
    CHECK(file.at("param/9.weight").shape == std::vector<int64_t>{k[3], k[2]});
    CHECK(file.at("param/11.weight").shape == std::vector<int64_t>{10, k[3]});
    const int64_t parameters =
        k[0] * 26 + k[1] * (25 * k[0] + 1) + k[2] * (25 * k[1] + 1) + k[3] * (k[2] + 1) + 10 * (k[3] + 1);
    CHECK(selection.at("parameters").get<int64_t>() == parameters);
    CHECK(selection.at("parameters_before").get<int64_t>() == 61706);
    // FLOPs per sample: 2 x weights x output positions (28x28 for conv1, 10x10 for conv2, 1 for linears)
    CHECK(selection.at("flops_before").get<int64_t>() == 2 * (150 * 784 + 2400 * 100 + 48000 + 10080 + 840));
    CHECK(selection.at("flops_after").get<int64_t>() ==
          2 * (k[0] * 25 * 784 + k[1] * 25 * k[0] * 100 + 25 * k[1] * k[2] + k[2] * k[3] + k[3] * 10));
    CHECK(r.out.find(fmt::format("parameters 61706 -> {} (", parameters)) != std::string::npos);
    CHECK(r.out.find(fmt::format("{:>16} {:>16} {:>10}/{:<10}", "[16,5,5,6]",
                                 fmt::format("[{},5,5,{}]", k[1], k[0]), 2400, k[1] * 25 * k[0])) != std::string::npos);
  }

  TEST_CASE("exported checkpoints load into PyTorch twins with the same logits") {
    SKIP_WITHOUT_FASHION_MNIST();
    if (std::system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") != 0) {
      MESSAGE("skipped: /usr/bin/python3 cannot import torch (apt-get install python3-torch)");
      return;
    }
    const fs::path vit_data = fresh_dir("export-vit-data");
    write_idx_directory(vit_data, 400);
    const std::vector<std::pair<std::string, std::string>> runs = {
        {"lenet5", "--cycles 2 --prune-rate 0.5"},  // pruned: masks beside the weights
        // units selected by GFS: hidden layers narrower than 300 and 100
        {"lenet300", "--cycles 2 --cycle-policy restart --select gfs --select-tolerance 0.05 --select-eval 300 "
                     "--select-finetune-steps 5"},
        {"resnet20", "--cycles 2 --cycle-policy restart --structured-prune 0.25"},  // physically shrunk
        // ViT (6 blocks, MLP hidden units shrunk) on 400 synthetic images and a few steps: its
        // evaluations dominate the time
        {"vit-tiny6", "--cycles 2 --cycle-policy restart --structured-prune 0.25 --iters 3 --batch 16 --data-dir " +
                          vit_data.string()}};
    for (const auto& [model, flags] : runs) {
      const fs::path run_dir = fresh_dir("export-" + model);
      REQUIRE(run("train --model " + model + " " + flags +
                  " --epochs 1 --train-limit 1500 --val-size 300 --run-dir " + run_dir.string())
                  .exit_code == 0);
      const std::string out = (run_dir / "pytorch.safetensors").string();
      const CommandResult exported = run("export --check --run-dir " + run_dir.string() + " --out " + out);
      INFO(exported.out << exported.err);
      REQUIRE(exported.exit_code == 0);
      const std::string command = "/usr/bin/python3 " + std::string(ST_SOURCE_DIR) + "/tools/export_check.py " +
                                  model + " " + out + " > " + (run_dir / "check.txt").string() + " 2>&1";
      const int status = std::system(command.c_str());
      const std::string report = read_text(run_dir / "check.txt");
      INFO(report);
      CHECK(status == 0);
      CHECK(report.find("loaded strictly") != std::string::npos);
    }
  }

  TEST_CASE("sparsetrain eval: a checkpoint on the test and validation splits reproduces the run's accuracies, "
            "per class and per layer") {
    SKIP_WITHOUT_FASHION_MNIST();
    const fs::path run_dir = fresh_dir("eval-lenet5");
    REQUIRE(run("train --model lenet5 --cycles 2 --prune-rate 0.5 --epochs 1 --train-limit 1500 --val-size 300 "
                "--threads 2 --run-dir " + run_dir.string())
                .exit_code == 0);
    // summary.csv: cycle,density,max_lr,val_accuracy,test_accuracy,... ; the last line is the final cycle
    const std::string summary = read_text(run_dir / "summary.csv");
    const std::string last = summary.substr(summary.rfind('\n', summary.size() - 2) + 1);
    std::vector<std::string> fields;
    std::stringstream line(last);
    for (std::string field; std::getline(line, field, ',');) fields.push_back(field);
    REQUIRE(fields.size() >= 5);
    const double run_val = std::stod(fields[3]), run_test = std::stod(fields[4]);

    for (const std::string split : {"test", "val"}) {
      INFO("split " << split);
      const CommandResult r = run("eval --json --split " + split + " --run-dir " + run_dir.string());
      INFO(r.err);
      REQUIRE(r.exit_code == 0);
      const auto out = nlohmann::json::parse(r.out);
      const int64_t images = out.at("images").get<int64_t>();
      CHECK(images == (split == "test" ? 10000 : 300));
      // summary.csv rounds to 4 decimals
      CHECK(std::fabs(out.at("accuracy").get<double>() - (split == "test" ? run_test : run_val)) < 6e-5);
      int64_t class_images = 0, class_correct = 0;
      for (const auto& c : out.at("classes")) {
        class_images += c.at("images").get<int64_t>();
        class_correct += c.at("correct").get<int64_t>();
      }
      CHECK(out.at("classes").size() == 10);
      CHECK(class_images == images);
      CHECK(static_cast<double>(class_correct) / static_cast<double>(images) == out.at("accuracy").get<double>());
      // one pruning cycle at rate 0.5 (global magnitude): half of lenet5's prunable weights remain
      int64_t kept = 0, total = 0;
      for (const auto& l : out.at("layers")) {
        kept += l.at("kept").get<int64_t>();
        total += l.at("total").get<int64_t>();
      }
      CHECK(out.at("layers").size() == 5);  // 2 convolutions, 3 linear layers
      CHECK(total == 61'706 - 6 - 16 - 120 - 84 - 10);  // the weights (biases are not prunable)
      CHECK(out.at("density").get<double>() == doctest::Approx(static_cast<double>(kept) / static_cast<double>(total)));
      CHECK(out.at("density").get<double>() == doctest::Approx(0.5).epsilon(0.01));
    }
    const CommandResult table = run("eval --run-dir " + run_dir.string());
    REQUIRE(table.exit_code == 0);
    CHECK(table.out.find("| class | images | correct | accuracy |") != std::string::npos);
    CHECK(table.out.find("| layer | shape | kept / total | density | MFLOPs per sample |") != std::string::npos);
    check_refused("eval --split holdout --run-dir " + run_dir.string(), {"--split", "train, val or test", "holdout"});
    check_refused("eval --checkpoint nope --run-dir " + run_dir.string(), {"--checkpoint", "nope.safetensors"});
  }

  TEST_CASE("sparsetrain prune writes a new pruned checkpoint; train --init-from fine-tunes it with its masks") {
    SKIP_WITHOUT_FASHION_MNIST();
    const fs::path run_dir = fresh_dir("prune-lenet5"), tuned = fresh_dir("prune-lenet5-tuned");
    const std::string data = " --epochs 1 --train-limit 1500 --val-size 300 --threads 2";
    REQUIRE(run("train --model lenet5" + data + " --run-dir " + run_dir.string()).exit_code == 0);
    const CommandResult pruned = run("prune --run-dir " + run_dir.string() +
                                     " --density 0.2 --prune-score snip --prune-allocation layerwise --out-checkpoint pruned");
    INFO(pruned.out << pruned.err);
    REQUIRE(pruned.exit_code == 0);
    CHECK(pruned.out.find("global density 0.2") != std::string::npos);
    CHECK(pruned.out.find("before,") != std::string::npos);  // test accuracy before and after
    const fs::path checkpoint = run_dir / "checkpoints" / "pruned.safetensors";
    REQUIRE(fs::exists(checkpoint));
    // layerwise: every prunable tensor keeps 20% (rounded), the original checkpoint is untouched
    const auto layers_of = [&](const std::string& args) {
      const CommandResult r = run("eval --json " + args);
      INFO(r.err);
      REQUIRE(r.exit_code == 0);
      return nlohmann::json::parse(r.out);
    };
    const auto pruned_eval = layers_of("--run-dir " + run_dir.string() + " --checkpoint pruned");
    for (const auto& l : pruned_eval.at("layers")) {
      INFO(l.dump());
      CHECK(l.at("density").get<double>() == doctest::Approx(0.2).epsilon(0.02));
    }
    CHECK(layers_of("--run-dir " + run_dir.string()).at("density").get<double>() == 1.0);
    // a second prune to the same name is refused; so is asking for both or neither of --density and --rate
    check_refused("prune --run-dir " + run_dir.string() + " --density 0.5 --out-checkpoint pruned",
                  {"--out-checkpoint", "pruned.safetensors", "exists"});
    check_refused("prune --run-dir " + run_dir.string() + " --density 0.5 --rate 0.5 --out-checkpoint p2",
                  {"--density / --rate", "exactly one"});

    // fine-tuning starts from the pruned weights and keeps the masks: the final density is the pruned one
    const CommandResult tune = run("train --model lenet5" + data + " --init-from " + checkpoint.string() +
                                   " --run-dir " + tuned.string());
    INFO(tune.out << tune.err);
    REQUIRE(tune.exit_code == 0);
    CHECK(tune.out.find("initialised from " + checkpoint.string() + ": density 0.2") != std::string::npos);
    const auto tuned_eval = layers_of("--run-dir " + tuned.string());
    CHECK(tuned_eval.at("density").get<double>() == pruned_eval.at("density").get<double>());
    // a run started in the directory holding the checkpoint it starts from: refused, the checkpoint kept
    check_refused("train --model lenet5" + data + " --init-from " + checkpoint.string() + " --run-dir " +
                      run_dir.string(),
                  {"--run-dir", "already holds a run"});
    const fs::path imported_only = fresh_dir("prune-imported-only");
    fs::create_directories(imported_only / "checkpoints");
    fs::copy_file(checkpoint, imported_only / "checkpoints" / "imported.safetensors");
    check_refused("train --model lenet5" + data + " --run-dir " + imported_only.string(),
                  {"--run-dir", "holds checkpoints", "--overwrite"});
    CHECK(fs::exists(imported_only / "checkpoints" / "imported.safetensors"));
    check_refused("train --model lenet300" + data + " --init-from " + checkpoint.string() + " --run-dir " +
                      fresh_dir("prune-wrong-model").string(),
                  {"--init-from", "lenet5", "lenet300"});
    check_refused("train --model lenet5" + data + " --init-from /nonexistent.safetensors --run-dir " +
                      fresh_dir("prune-missing").string(),
                  {"--init-from", "/nonexistent.safetensors"});
  }

  TEST_CASE("sparsetrain import: torchvision's resnet18 and lenet5 state dicts imported, then exported, give "
            "PyTorch's logits and come back unchanged") {
    SKIP_WITHOUT_FASHION_MNIST();
    if (std::system("/usr/bin/python3 -c 'import torch, torchvision, numpy' >/dev/null 2>&1") != 0) {
      MESSAGE("skipped: /usr/bin/python3 cannot import torch and torchvision (tools/setup.sh installs them)");
      return;
    }
    const std::string check = "/usr/bin/python3 " + std::string(ST_SOURCE_DIR) + "/tools/export_check.py ";
    for (const auto& [model, input] : std::vector<std::pair<std::string, std::string>>{{"resnet18", "1x32"},
                                                                                       {"lenet5", "1x28"}}) {
      INFO(model);
      const fs::path dir = fresh_dir("import-" + model);
      const std::string state = (dir / "state.safetensors").string(), out = (dir / "again.safetensors").string();
      const fs::path log = dir / "check.txt";
      REQUIRE(std::system((check + model + " " + state + " --make-state --input " + input + " > " + log.string() +
                           " 2>&1").c_str()) == 0);
      const CommandResult imported =
          run("import --model " + model + " --state " + state + " --run-dir " + (dir / "run").string());
      INFO(imported.out << imported.err);
      REQUIRE(imported.exit_code == 0);
      REQUIRE(run("export --check --run-dir " + (dir / "run").string() + " --checkpoint imported --out " + out)
                  .exit_code == 0);
      const int status = std::system(
          (check + model + " " + out + " --same-as " + state + " > " + log.string() + " 2>&1").c_str());
      const std::string report = read_text(log);
      INFO(report);
      CHECK(status == 0);
      CHECK(report.find("came back unchanged") != std::string::npos);
      CHECK(report.find("loaded strictly") != std::string::npos);
      // a state dict of another model is refused, naming the tensor the model misses
      check_refused("import --model lenet300 --state " + state + " --run-dir " + (dir / "other").string(),
                    {"import", state, "no tensor 1.weight"});
      // the imported checkpoint is not overwritten by a second import
      check_refused("import --model " + model + " --state " + state + " --run-dir " + (dir / "run").string(),
                    {"--checkpoint", "imported.safetensors", "exists"});
    }
  }

  TEST_CASE("console output: a line per epoch to a pipe, a bar redrawn in place, a line per cycle, --quiet") {
    SKIP_WITHOUT_FASHION_MNIST();
    const std::string common = "train --model lenet5 --epochs 2 --train-limit 1500 --val-size 300 --threads 2";
    const auto lines_with = [](const std::string& text, const std::string& needle) {
      int64_t count = 0;
      for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
      return count;
    };
    {  // to a pipe (auto): one line per epoch, the evaluation in the same line; a resume chooses its own output
      const fs::path auto_dir = fresh_dir("progress-auto");
      const CommandResult r = run(common + " --run-dir " + auto_dir.string());
      const CommandResult resumed = run("train --resume " + auto_dir.string() + " --quiet");
      REQUIRE(resumed.exit_code == 0);
      CHECK(resumed.out.rfind("final: test accuracy ", 0) == 0);
      CHECK(std::count(resumed.out.begin(), resumed.out.end(), '\n') == 1);
      INFO(r.out);
      REQUIRE(r.exit_code == 0);
      CHECK(lines_with(r.out, "\nepoch 1/2: loss ") == 1);
      CHECK(lines_with(r.out, "\nepoch 2/2: loss ") == 1);
      CHECK(lines_with(r.out, "; val acc ") == 1);  // epoch 1 (the last epoch's evaluation is the final line)
      CHECK(r.out.find(" step ") == std::string::npos);
      CHECK(r.out.find('\r') == std::string::npos);
    }
    {  // --quiet: the final line alone
      const CommandResult r = run(common + " --cycles 2 --quiet --run-dir " + fresh_dir("progress-quiet").string());
      REQUIRE(r.exit_code == 0);
      CHECK(r.out.rfind("final: test accuracy ", 0) == 0);
      CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    }
    {  // cycles: a line per cycle and per pruning event, no tables
      const CommandResult r =
          run(common + " --cycles 3 --progress cycles --run-dir " + fresh_dir("progress-cycles").string());
      INFO(r.out);
      REQUIRE(r.exit_code == 0);
      CHECK(lines_with(r.out, "\npruning event (IMP") == 2);
      CHECK(lines_with(r.out, " done: density ") == 3);
      CHECK(r.out.find("layer ") == std::string::npos);
      CHECK(r.out.find("epoch") == std::string::npos);
    }
    {  // bar: one line per cycle redrawn with carriage returns, the ETA of the cycle and of the run
      const CommandResult r =
          run(common + " --cycles 2 --progress bar --run-dir " + fresh_dir("progress-bar").string());
      INFO(r.out);
      REQUIRE(r.exit_code == 0);
      CHECK(r.out.find("\r\x1b[2Kcycle 0/1 epoch 1/2 [") != std::string::npos);
      CHECK(r.out.find("[########################] ") != std::string::npos);  // the finished bar stays
      CHECK(r.out.find("(cycle), ") != std::string::npos);
      CHECK(r.out.find("(run)") != std::string::npos);
    }
    {  // steps: every --log-every steps (1200 images: 10 batches per epoch, 20 steps)
      const CommandResult r =
          run(common + " --progress steps --log-every 3 --run-dir " + fresh_dir("progress-steps").string());
      REQUIRE(r.exit_code == 0);
      CHECK(lines_with(r.out, " img/s ETA ") == 7);  // steps 3, 6, ..., 18 and the last (20)
    }
    check_refused(common + " --progress loud --run-dir " + fresh_dir("progress-bad").string(),
                  {"--progress", "auto, bar, epochs, steps, cycles or quiet", "loud"});
  }

  TEST_CASE("TOML experiment files: --print-config then --config reproduces a run bit-identically; every flag is a "
            "key and every key a flag; bad keys, types and values are refused with file, line and key") {
    SKIP_WITHOUT_FASHION_MNIST();
    const fs::path dir = fresh_dir("toml");
    const std::string flags = " --model lenet5 --epochs 1 --cycles 2 --train-limit 1500 --val-size 300 --prune-rate 0.3 "
                              "--augment --prune-score snip --threads 2 --quiet";
    const CommandResult printed = run("train" + flags + " --print-config");
    REQUIRE(printed.exit_code == 0);
    const fs::path file = dir / "exp.toml";
    { std::ofstream(file) << printed.out; }
    REQUIRE(run("train" + flags + " --run-dir " + (dir / "direct").string()).exit_code == 0);
    REQUIRE(run("train --config " + file.string() + " --run-dir " + (dir / "from-file").string()).exit_code == 0);
    // the same tensors (weights, masks, optimizer state, generators) and the same summary
    const auto a = st::io::read_safetensors(dir / "direct" / "checkpoints" / "final.safetensors");
    const auto b = st::io::read_safetensors(dir / "from-file" / "checkpoints" / "final.safetensors");
    REQUIRE(a.tensors.size() == b.tensors.size());
    for (std::size_t i = 0; i < a.tensors.size(); ++i) {
      INFO(a.tensors[i].name);
      CHECK(a.tensors[i].name == b.tensors[i].name);
      CHECK(a.tensors[i].bytes == b.tensors[i].bytes);
    }
    const auto accuracies = [](const std::string& csv) {  // the summary without its seconds column
      std::string out;
      std::stringstream lines(csv);
      for (std::string line; std::getline(lines, line);) {
        std::size_t end = 0;
        for (int field = 0; field < 5 && end != std::string::npos; ++field) end = line.find(',', end + (field > 0 ? 1 : 0));
        out += line.substr(0, end) + "\n";  // cycle, density, max_lr, val and test accuracy
      }
      return out;
    };
    CHECK(accuracies(read_text(dir / "direct" / "summary.csv")) ==
          accuracies(read_text(dir / "from-file" / "summary.csv")));

    // every flag of train (its --help) is a key of the printed file, and every key a flag
    const CommandResult help = run("train --help");
    std::set<std::string> flag_names, keys;
    std::stringstream help_lines(help.out);
    for (std::string line; std::getline(help_lines, line);) {  // "  --model TEXT=lenet300  model name ..."
      const std::size_t at = line.find_first_not_of(' ');
      if (at == std::string::npos || line.compare(at, 2, "--") != 0) continue;
      const std::string name = line.substr(at + 2, line.find_first_of(" ,=", at) - at - 2);
      if (name != "help" && name != "config" && name != "print-config") flag_names.insert(name);
    }
    std::stringstream lines(printed.out);
    for (std::string line; std::getline(lines, line);)
      if (!line.empty() && line[0] != '#') keys.insert(line.substr(0, line.find(" = ")));
    CHECK(flag_names.size() > 90);
    for (const std::string& name : flag_names) CHECK_MESSAGE(keys.count(name) == 1, "flag --" << name << " is no key");
    for (const std::string& key : keys) CHECK_MESSAGE(flag_names.count(key) == 1, "key " << key << " is no flag");

    // flags override the file
    REQUIRE(run("train --config " + file.string() + " --epochs 2 --cycles 1 --run-dir " + (dir / "override").string())
                .exit_code == 0);
    const auto config = nlohmann::json::parse(read_text(dir / "override" / "config.json"));
    CHECK(config.at("epochs").get<int64_t>() == 2);
    CHECK(config.at("cycles").get<int64_t>() == 1);
    CHECK(config.at("prune-score").get<std::string>() == "snip");  // from the file

    const auto refused = [&](const std::string& text, const std::vector<std::string>& needles) {
      const fs::path bad = dir / "bad.toml";
      { std::ofstream(bad) << text; }
      std::vector<std::string> with_file = needles;
      with_file.push_back(bad.string() + ":");
      check_refused("train --config " + bad.string() + " --run-dir " + (dir / "never").string(), with_file);
    };
    // a bad value given on the command line is the command line's, not the file's
    {
      const CommandResult r = run("train --config " + file.string() + " --epochs 0 --run-dir " + (dir / "never").string());
      CHECK(r.exit_code != 0);
      CHECK(r.err.find("--epochs: must be a positive number") != std::string::npos);
      CHECK(r.err.find(file.string()) == std::string::npos);
    }
    // a switch given false, integers as CLI11 reads them, --quiet folded into progress
    {
      const CommandResult r = run("train --augment=false --epochs 010 --quiet --print-config");
      REQUIRE(r.exit_code == 0);
      CHECK(r.out.find("\naugment = false\n") != std::string::npos);
      CHECK(r.out.find("\nepochs = 8\n") != std::string::npos);  // octal, as the flag itself reads it
      CHECK(r.out.find("\nprogress = \"quiet\"\n") != std::string::npos);
      CHECK(r.out.find("\nquiet = false\n") != std::string::npos);
      const CommandResult lists = run("train --oracle-grid 0.01,0.1 --milestones 100,200 --print-config");
      CHECK(lists.out.find("\noracle-grid = [0.01, 0.1]\n") != std::string::npos);
      CHECK(lists.out.find("\nmilestones = [100, 200]\n") != std::string::npos);
    }
    refused("model = \"lenet5\"\nepochs = 1\nwarp = 3\n", {":3: unknown key 'warp'"});
    refused("model = \"lenet5\"\n\nepochs = \"ten\"\n", {":3: key 'epochs' expects an integer"});
    refused("augment = 1\n", {":1: key 'augment' is a switch"});
    refused("model = \"lenet5\"\nepochs = -2\n", {":2: key 'epochs'", "must be a positive number of epochs"});
    refused("progress = \"loud\"\n", {":1: key 'progress'", "loud"});
    refused("[schedule]\nlr = 0.1\n", {":1: key 'schedule' is a table"});
    refused("model = \"lenet5\n", {":1:"});  // a syntax error
    check_refused("train --config " + (dir / "missing.toml").string(), {"--config", "missing.toml", "not a file"});
  }

  TEST_CASE("every experiment file in configs/ is accepted (every key a flag, every value of its type)") {
    int files = 0;
    for (const auto& entry : fs::directory_iterator(fs::path(ST_SOURCE_DIR) / "configs")) {
      if (entry.path().extension() != ".toml") continue;
      ++files;
      const CommandResult r = run("train --config " + entry.path().string() + " --print-config");
      INFO(entry.path().string() << "\n" << r.err);
      CHECK(r.exit_code == 0);
      CHECK(r.out.find("model = ") != std::string::npos);
    }
    CHECK(files >= 2);
  }

  TEST_CASE("sparsetrain bench prints one JSON line") {
    SKIP_WITHOUT_FASHION_MNIST();
    const CommandResult r = run("bench --model lenet5 --steps 3 --warmup 1 --threads 1 --device cpu --json");
    REQUIRE(r.exit_code == 0);
    const auto line = nlohmann::json::parse(r.out);
    CHECK(line.at("model") == "lenet5");
    CHECK(line.at("device") == "cpu");
    CHECK(line.at("images_per_s").get<double>() > 0.0);
    CHECK(std::isfinite(line.at("final_loss").get<double>()));
  }

  TEST_CASE("sparsetrain bench --op-times splits the step of the dense and the channel-pruned network by op") {
    SKIP_WITHOUT_FASHION_MNIST();
    const CommandResult r = run("bench --model resnet20 --batch 8 --steps 2 --warmup 1 --threads 1 --device cpu "
                                "--structured 0.5 --op-times --json");
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    const auto line = nlohmann::json::parse(r.out);
    for (const auto* result : {&line, &line.at("structured")}) {
      const auto& ms = result->at("op_ms_per_step");
      for (const char* key : {"conv2d forward", "conv2d backward", "batchnorm forward", "batchnorm backward",
                              "add_relu forward", "add_relu backward"})
        CHECK(ms.at(key).get<double>() > 0.0);
      CHECK(ms.at("other").get<double>() >= 0.0);  // the timed ops lie inside the step
      // the step in ms is the inverse of the reported rate at batch 8
      CHECK(ms.at("step").get<double>() == doctest::Approx(8e3 / result->at("images_per_s").get<double>()).epsilon(1e-6));
    }
  }

  TEST_CASE("--device and --kernels are validated; --device cuda without a GPU is refused") {
    const fs::path base = fresh_dir("device-flags");
    const std::string small = " --val-size 10 --threads 1 --run-dir " + (base / "run").string();
    check_refused("train --device tpu" + small, {"--device", "tpu"});
    check_refused("train --kernels cudnn" + small, {"--kernels", "cudnn"});
    check_refused("train --sparse-kernels yes" + small, {"--sparse-kernels", "off, on or auto", "yes"});
    check_refused("train --prune-at-init movement" + small, {"--prune-at-init", "movement", "history of training"});
    check_refused("train --prune-score movement --cycles 2 --oracle-grid 0.01,0.1" + small,
                  {"--prune-score movement", "oracle"});
    check_refused("train --prune-score movement --early-rounds 2" + small, {"--prune-score movement", "early pruning"});
    check_refused("train --prune-score loudness --cycles 2" + small, {"--prune-score", "loudness", "movement"});
    check_refused("bench --sparse-kernels yes --steps 1", {"--sparse-kernels", "off, on or auto", "yes"});
    check_refused("bench --kernels cudnn --steps 1", {"--kernels", "cudnn"});
    if (!st::cuda_status().available) {
      check_refused("train --device cuda --epochs 1 --train-limit 100" + small, {"--device cuda", "no usable CUDA"});
      check_refused("bench --device cuda --steps 1", {"--device cuda", "no usable CUDA"});
    }
  }

  TEST_CASE("--sparse-kernels: each pruning event lists the linear and conv layers' compute forms (auto: both timed)") {
    SKIP_WITHOUT_FASHION_MNIST();
    for (const std::string mode : {"auto", "on"}) {
      CAPTURE(mode);
      const fs::path run_dir = fresh_dir("sparse-forms-" + mode);
      const CommandResult r = run("train --model lenet5 --epochs 1 --cycles 2 --prune-rate 0.8 --sparse-kernels " +
                                  mode + " --train-limit 3000 --val-size 500 --threads 2 --run-dir " + run_dir.string());
      INFO(r.out << r.err);
      REQUIRE(r.exit_code == 0);
      CHECK(r.out.find("compute form of the sparse-capable layers (--sparse-kernels " + mode + ")") != std::string::npos);
      const auto events = metrics_events(run_dir, "prune");
      REQUIRE(events.size() == 1);
      const auto& layers = events[0].at("layers");
      REQUIRE(layers.size() == 5);  // conv1, conv2, fc1, fc2, fc3
      for (const auto& layer : layers) {
        INFO(layer.dump());
        if (mode == "auto" && layer.at("shape").size() == 4)  // a conv, timed on a full training batch
          CHECK(r.out.find("at batch 128") != std::string::npos);
        const std::string compute = layer.at("compute").get<std::string>();
        if (mode == "on") {
          CHECK(compute == "sparse");
          CHECK_FALSE(layer.contains("dense_ms"));
          continue;
        }
        const double dense_ms = layer.at("dense_ms").get<double>(), sparse_ms = layer.at("sparse_ms").get<double>();
        CHECK(dense_ms > 0.0);
        CHECK(sparse_ms > 0.0);
        CHECK(compute == (sparse_ms < dense_ms ? "sparse" : "dense"));
      }
      // auto's decisions go into the checkpoint (adopted again on resume, so it resumes bit-identically)
      const auto metadata = st::io::read_checkpoint_metadata(run_dir / "checkpoints" / "final.safetensors");
      const auto position = nlohmann::json::parse(metadata.at("sparsetrain.position"));
      if (mode == "on") {
        CHECK_FALSE(position.contains("sparse_choices"));
        continue;
      }
      REQUIRE(position.contains("sparse_choices"));
      const auto& choices = position.at("sparse_choices");
      CHECK(choices.size() == 5);
      for (const auto& layer : layers) {
        INFO(layer.dump());
        const std::string name = layer.at("name").get<std::string>();
        REQUIRE(choices.contains(name));
        CHECK(choices.at(name).at("sparse").get<bool>() == (layer.at("compute").get<std::string>() == "sparse"));
        CHECK(choices.at(name).at("dense_ms").get<double>() == layer.at("dense_ms").get<double>());
      }
    }
  }

  TEST_CASE("a corrupt checkpoint is refused and left untouched") {
    SKIP_WITHOUT_FASHION_MNIST();
    const fs::path run_dir = fresh_dir("corrupt-checkpoint");
    const CommandResult first = run("train --model lenet300 --epochs 1 --train-limit 2000 --val-size 500 --threads 1 --run-dir " +
                                    run_dir.string());
    REQUIRE(first.exit_code == 0);
    const fs::path last = run_dir / "checkpoints" / "last.safetensors";
    auto bytes = read_bytes(last);
    SUBCASE("flipped byte in the data") {
      bytes[bytes.size() - 7] ^= 0x40;
    }
    SUBCASE("truncated") {
      bytes.resize(bytes.size() - 1000);
    }
    write_bytes(last, bytes);
    check_refused("train --resume " + run_dir.string(), {last.string()});
    CHECK(read_bytes(last) == bytes);  // nothing overwritten
  }

  TEST_CASE("lenet300 learns Fashion-MNIST") {
    SKIP_WITHOUT_FASHION_MNIST();
    const fs::path run_dir = fresh_dir("learns");
    const CommandResult r = run("train --model lenet300 --epochs 2 --train-limit 12000 --val-size 2000 --run-dir " +
                                run_dir.string());
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    // metrics.jsonl: every line is JSON; the end event has the accuracy.
    std::ifstream metrics(run_dir / "metrics.jsonl");
    std::string line;
    double test_accuracy = -1.0;
    int lines = 0;
    while (std::getline(metrics, line)) {
      const auto event = nlohmann::json::parse(line);
      ++lines;
      if (event.at("event") == "end") test_accuracy = event.at("test_accuracy").get<double>();
    }
    CHECK(lines > 5);
    CHECK(test_accuracy > 0.78);
    const std::string summary = read_text(run_dir / "summary.csv");
    CHECK(summary.rfind("cycle,density,max_lr,val_accuracy,test_accuracy,seconds,steps\n", 0) == 0);
    CHECK(r.out.find("img/s") != std::string::npos);
    CHECK(r.out.find("ETA") != std::string::npos);
  }

  TEST_CASE("a run killed with SIGKILL and resumed ends bit-identical to the uninterrupted run") {
    SKIP_WITHOUT_FASHION_MNIST();
    std::string common;
    int64_t kill_after = 0;
    SUBCASE("one dense run, killed mid-epoch") {
      common = " --model lenet5 --epochs 3 --train-limit 4000 --val-size 500 --batch 64 --threads 2 --seed 11"
               " --checkpoint-every 5 --log-every 20";
      kill_after = 30;
    }
    SUBCASE("IMP with weight rewinding, killed in the second cycle (after a pruning event)") {
      common = " --model lenet5 --epochs 1 --cycles 3 --cycle-policy weight_rewind --rewind-iter 10 --prune-rate 0.3"
               " --train-limit 4000 --val-size 500 --batch 64 --threads 2 --seed 5 --checkpoint-every 5";
      kill_after = 70;  // cycle 0 has 55 steps
    }
    SUBCASE("IMP with the sparse kernels on (lenet5's masked conv and linear layers), killed in the second cycle") {
      common = " --model lenet5 --epochs 1 --cycles 3 --cycle-policy weight_rewind --rewind-iter 10 --prune-rate 0.5"
               " --sparse-kernels on --train-limit 4000 --val-size 500 --batch 64 --threads 2 --seed 12"
               " --checkpoint-every 5";
      kill_after = 70;  // cycle 0 has 55 steps
    }
    SUBCASE("IMP by movement, killed in the second cycle (the score's history of training is checkpointed)") {
      common = " --model lenet5 --epochs 2 --cycles 3 --prune-score movement --prune-rate 0.3"
               " --train-limit 2000 --val-size 500 --batch 64 --threads 2 --seed 13 --checkpoint-every 5";
      kill_after = 70;  // cycle 0 has 48 steps
    }
    SUBCASE("structured pruning, killed in the second cycle (a physically shrunk network)") {
      common = " --model lenet5 --epochs 1 --cycles 2 --cycle-policy finetune --structured-prune 0.5"
               " --train-limit 4000 --val-size 500 --batch 64 --threads 2 --seed 6 --checkpoint-every 5";
      kill_after = 70;
    }
    SUBCASE("unit selection (GFS), killed in the second cycle (units selected and removed)") {
      common = " --model lenet5 --epochs 1 --cycles 2 --cycle-policy restart --select gfs --select-tolerance 0.05"
               " --select-eval 500 --select-finetune-steps 10 --train-limit 4000 --val-size 500 --batch 64"
               " --threads 2 --seed 8 --checkpoint-every 5";
      kill_after = 70;
    }
    const fs::path reference = fresh_dir("kill-reference"), killed = fresh_dir("kill-resumed");
    const CommandResult reference_run = run("train" + common + " --run-dir " + reference.string());
    REQUIRE(reference_run.exit_code == 0);
    if (common.find("--structured-prune") != std::string::npos) {
      // the per-layer table: parameters and MFLOPs per sample before/after (lenet5's two convolutions at
      // half their filters: 6 -> 3 of 5x5x1 on 28x28, 16 -> 8 of 5x5 on 10x10 with 6 -> 3 input channels)
      const std::size_t table = reference_run.out.find("\nlayer ");  // after the channel-group table
      REQUIRE(table != std::string::npos);
      const auto line_of = [&](const std::string& start) {
        const std::size_t at = reference_run.out.find("\n" + start, table);
        REQUIRE(at != std::string::npos);
        return reference_run.out.substr(at + 1, reference_run.out.find('\n', at + 1) - at - 1);
      };
      CHECK(line_of("layer ").find("params before/after MFLOP before/after") != std::string::npos);
      const std::string conv1 = line_of("0.weight "), conv2 = line_of("3.weight ");
      INFO(conv1 << "\n" << conv2);
      CHECK(conv1.find(" 150/75 ") != std::string::npos);
      CHECK(conv1.find(" 0.235/0.118") != std::string::npos);
      CHECK(conv2.find(" 2400/600 ") != std::string::npos);
      CHECK(conv2.find(" 0.480/0.120") != std::string::npos);
    }

    // Start the same run, wait until it has checkpointed mid-training, then SIGKILL it.
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      const std::string args = "train" + common + " --run-dir " + killed.string();
      std::freopen("/dev/null", "w", stdout);
      execl("/bin/sh", "sh", "-c", (std::string("exec ") + ST_BINARY_PATH + " " + args).c_str(), nullptr);
      _exit(127);
    }
    const fs::path last = killed / "checkpoints" / "last.safetensors";
    int64_t step_at_kill = -1;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (!fs::exists(last)) continue;
      try {
        const auto metadata = st::io::read_checkpoint_metadata(last);
        const auto position = nlohmann::json::parse(metadata.at("sparsetrain.position"));
        if (position.at("global_step").get<int64_t>() >= kill_after) {
          step_at_kill = position.at("global_step").get<int64_t>();
          break;
        }
      } catch (...) {
        // the file is being replaced right now: look again
      }
    }
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(step_at_kill >= kill_after);
    CHECK_FALSE(fs::exists(killed / "checkpoints" / "final.safetensors"));  // it really was cut off

    const CommandResult resumed = run("train --resume " + killed.string());
    INFO(resumed.out << resumed.err);
    REQUIRE(resumed.exit_code == 0);
    CHECK(resumed.out.find("resuming at cycle") != std::string::npos);
    const auto expected = weights_of(reference / "checkpoints" / "final.safetensors");
    const auto actual = weights_of(killed / "checkpoints" / "final.safetensors");
    REQUIRE(expected.size() > 10);
    if (common.find("--structured-prune") != std::string::npos || common.find("--select") != std::string::npos) {
      // the resumed run restored a network with fewer filters than lenet5's (6, 16)
      const auto file = st::io::read_safetensors(killed / "checkpoints" / "final.safetensors");
      CHECK(file.at("param/0.weight").shape[0] + file.at("param/3.weight").shape[0] < 6 + 16);
    }
    CHECK(expected.size() == actual.size());
    for (const auto& [name, bytes] : expected) {
      INFO(name);
      REQUIRE(actual.count(name) == 1);
      CHECK(actual.at(name) == bytes);
    }
  }
}
