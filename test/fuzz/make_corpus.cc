// Writes the seed corpus of the fuzz_frame target: valid sealed frames of several shapes,
// built by the same C++ builders the tests use. The output is committed under
// test/fuzz/corpus/frame; run again (scripts/native-fuzz.sh --regen-corpus) after a change
// of the schema or the frame layout.
//
// Usage: make_fuzz_corpus <output directory>

#include <cstdio>
#include <string>
#include <vector>

#include "frame.h"
#include "frame_testing.h"

namespace {

bool write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

struct Seed {
  const char* name;
  std::vector<uint8_t> frame;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output directory>\n", argv[0]);
    return 2;
  }
  const std::vector<Seed> seeds{
      {"sample.frame", disco::testing::build_sample_frame()},
      {"empty-batch.frame", disco::testing::build_test_frame(2, 0, 0)},
      {"one-envelope.frame", disco::testing::build_test_frame(1, 1, 0)},
      {"three-envelopes-data.frame", disco::testing::build_test_frame(3, 3, 24)},
      {"sixteen-envelopes.frame", disco::testing::build_test_frame(16, 16, 4)},
  };
  for (const Seed& seed : seeds) {
    if (disco::verify_frame(seed.frame.data(), seed.frame.size()) != disco::Status::kOk) {
      std::fprintf(stderr, "seed %s does not verify\n", seed.name);
      return 1;
    }
    const std::string path = std::string(argv[1]) + "/" + seed.name;
    if (!write_file(path, seed.frame)) {
      std::perror(path.c_str());
      return 1;
    }
    std::printf("%s (%zu bytes)\n", path.c_str(), seed.frame.size());
  }
  return 0;
}
