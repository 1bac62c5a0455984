// libFuzzer target for the frame reader and verifier (DESIGN §12, STYLE §7).
//
// Each input is used twice:
//   1. as a whole frame, header included, handed to verify_frame() as it arrived; this covers
//      the header checks, which reject almost all random bytes early;
//   2. as a body: the bytes after the first 16 (where a seed frame keeps its header) are copied
//      behind a fresh header and sealed, so every mutation passes magic, length and checksum and
//      reaches the file identifier check and the FlatBuffers verifier. A body that verifies is
//      then described in full, which reads every field of every envelope.
// Seeds (test/fuzz/corpus/frame) are valid sealed frames, so both uses start from real frames.
//
// Built with -fsanitize=fuzzer plus AddressSanitizer and UBSan (scripts/native-fuzz.sh): an
// out-of-bounds read, undefined behaviour, or a broken invariant below aborts the run.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "frame.h"
#include "frame_testing.h"

namespace {

/// Aborts the run when an invariant of the frame code does not hold for this input.
void require(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // 1. The input as a frame. libFuzzer hands over an exact-size heap copy, so a read past
  //    `size` is caught; copy anyway to guarantee the 8-byte alignment verify_frame() expects.
  std::vector<uint8_t> frame(data, data + size);
  const disco::Status as_frame = disco::verify_frame(frame.data(), frame.size());
  require(disco::is_known_status(static_cast<int32_t>(as_frame)));

  // 2. The input's tail as a body behind a correct header.
  const size_t skip = size >= disco::kFrameHeaderBytes ? disco::kFrameHeaderBytes : 0;
  const std::vector<uint8_t> sealed = disco::testing::seal_body_copy(data + skip, size - skip);
  const disco::Status verified = disco::verify_frame(sealed.data(), sealed.size());
  std::string json;
  const disco::Status described =
      disco::testing::describe_frame(sealed.data(), sealed.size(), &json);
  require(verified == described);
  require(described != disco::Status::kOk || !json.empty());
  // Past the header, only the body's own checks can fail.
  const bool body_sized = size - skip >= disco::kMinBodyBytes;
  require(!body_sized || verified == disco::Status::kOk ||
          verified == disco::Status::kBadIdentifier || verified == disco::Status::kVerifyFailed);
  return 0;
}
