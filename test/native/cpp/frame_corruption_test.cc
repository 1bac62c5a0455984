// Corrupt input (STYLE §7): every truncation and every single-byte change of valid frames is
// rejected, and nothing reads past the bytes it was given. Each case runs on an exact-size heap
// copy, so the AddressSanitizer build (scripts/native-sanitize.sh) turns any over-read into a
// failure.

#include <cstdio>
#include <vector>

#include "check.h"
#include "frame.h"
#include "frame_testing.h"

namespace {

using disco::Status;
using disco::test::ExactBuffer;

Status verify_copy(const uint8_t* p, size_t n) {
  ExactBuffer copy(p, n);
  return disco::verify_frame(copy.data(), copy.size());
}

void rejects_every_truncation(const std::vector<uint8_t>& frame) {
  for (size_t n = 0; n < frame.size(); ++n) {
    const Status s = verify_copy(frame.data(), n);
    if (s == Status::kOk) std::fprintf(stderr, "truncation to %zu bytes verified\n", n);
    CHECK(s != Status::kOk);
  }
}

void rejects_every_single_byte_change(const std::vector<uint8_t>& frame) {
  std::vector<uint8_t> changed = frame;
  for (size_t i = 0; i < frame.size(); ++i) {
    for (const uint8_t mask : {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff}) {
      changed[i] = frame[i] ^ mask;
      const Status s = verify_copy(changed.data(), changed.size());
      if (s == Status::kOk) std::fprintf(stderr, "byte %zu ^ 0x%02x verified\n", i, mask);
      CHECK(s != Status::kOk);
    }
    changed[i] = frame[i];
  }
}

// With the header resealed after the change, the checksum no longer protects the body and the
// FlatBuffers verifier is the only guard. Some changes are harmless (a data byte, a scalar), so
// the outcome may be OK; what must hold is that nothing is read out of bounds and that every
// frame that verifies can be described in full, which reads every field.
void survives_every_resealed_body_change(const std::vector<uint8_t>& frame) {
  const size_t header = disco::kFrameHeaderBytes;
  std::vector<uint8_t> body(frame.begin() + header, frame.end());
  size_t accepted = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    for (const uint8_t mask : {0x01, 0x10, 0x80, 0xff}) {
      body[i] ^= mask;
      const auto sealed = disco::testing::seal_body_copy(body.data(), body.size());
      ExactBuffer copy(sealed.data(), sealed.size());
      std::string json;
      const Status s = disco::testing::describe_frame(copy.data(), copy.size(), &json);
      CHECK(s == Status::kOk || s == Status::kVerifyFailed || s == Status::kBadIdentifier);
      if (s == Status::kOk) {
        CHECK(!json.empty());
        ++accepted;
      }
      body[i] ^= mask;
    }
  }
  std::printf("resealed body changes: %zu of %zu verified\n", accepted, body.size() * 4);
}

void run_all(const char* name, const std::vector<uint8_t>& frame) {
  std::printf("%s: %zu bytes\n", name, frame.size());
  CHECK_EQ(disco::verify_frame(frame.data(), frame.size()), Status::kOk);
  rejects_every_truncation(frame);
  rejects_every_single_byte_change(frame);
  survives_every_resealed_body_change(frame);
}

}  // namespace

int main() {
  run_all("sample frame", disco::testing::build_sample_frame());
  run_all("three envelopes", disco::testing::build_test_frame(3, 3, 5));
  run_all("empty batch", disco::testing::build_test_frame(2, 0, 0));
  return disco::test::check_exit_code();
}
