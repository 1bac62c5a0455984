// The committed fuzz seeds (test/fuzz/corpus/frame) stay valid frames: a change of the schema or
// the frame layout that invalidates them fails here, not silently in a weaker fuzz run.
// Regenerate them with `scripts/native-fuzz.sh --regen-corpus`.

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#include "check.h"
#include "frame.h"

namespace {

std::vector<uint8_t> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

int main() {
  const std::filesystem::path dir = DISCO_CORPUS_DIR;
  std::error_code ec;
  size_t seeds = 0;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::vector<uint8_t> bytes = read_file(it->path());
    disco::test::ExactBuffer frame(bytes.data(), bytes.size());
    const disco::Status status = disco::verify_frame(frame.data(), frame.size());
    if (status != disco::Status::kOk) {
      std::fprintf(stderr, "%s: %s\n", it->path().c_str(), disco::status_name(status));
    }
    CHECK_EQ(status, disco::Status::kOk);
    ++seeds;
  }
  CHECK(!ec);
  CHECK(seeds >= 5);
  std::printf("%zu seeds verified in %s\n", seeds, dir.c_str());
  return disco::test::check_exit_code();
}
