// Sealing and verifying link frames; the layout and the contract are in frame.h.

#include "frame.h"

#include <cstring>

#include "flatbuffers/flatbuffers.h"
#include "generated/envelope_generated.h"

// Header-only xxHash: every function is static inline in this translation unit, so nothing is
// linked and no xxHash symbol leaks out of the addon.
#define XXH_INLINE_ALL
#include "xxhash.h"

namespace disco {

static_assert(kMaxVerifiableBodyBytes < FLATBUFFERS_MAX_BUFFER_SIZE,
              "the FlatBuffers verifier asserts its buffer is below FLATBUFFERS_MAX_BUFFER_SIZE");
static_assert(kDefaultMaxBodyBytes <= kMaxVerifiableBodyBytes,
              "the default limit must be verifiable");
static_assert(kDefaultMaxBodyBytes <= UINT32_MAX, "body_length is a u32");
static_assert(kMinBodyBytes == sizeof(flatbuffers::uoffset_t) + flatbuffers::kFileIdentifierLength,
              "a body starts with its root offset and file identifier");

namespace {

/// Offset of the file identifier inside a non-size-prefixed FlatBuffers buffer.
constexpr size_t kIdentifierOffset = sizeof(flatbuffers::uoffset_t);

/// kBadAlignment check: the address of the frame's first byte.
bool is_aligned(const uint8_t* p) noexcept {
  return reinterpret_cast<uintptr_t>(p) % kFrameAlignment == 0;
}

flatbuffers::Verifier::Options verifier_options(const VerifyOptions& opts) noexcept {
  flatbuffers::Verifier::Options v;
  v.max_depth = opts.max_depth;
  v.max_tables = opts.max_tables;
  // Alignment is checked relative to the body start; with the body itself 8-byte aligned in
  // memory (checked before) every scalar the accessors read is naturally aligned.
  v.check_alignment = true;
  // The schema has no nested_flatbuffer fields; keep the check on for any added later.
  v.check_nested_flatbuffers = true;
  // String terminators: the 2.0.8 verifier always checks that every string's NUL byte lies
  // inside the buffer, so a string read can never run past the body.
  return v;
}

}  // namespace

uint32_t load_le32(const uint8_t* p) noexcept {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

uint64_t load_le64(const uint8_t* p) noexcept {
  return static_cast<uint64_t>(load_le32(p)) | static_cast<uint64_t>(load_le32(p + 4)) << 32;
}

void store_le32(uint8_t* p, uint32_t v) noexcept {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v >> 16);
  p[3] = static_cast<uint8_t>(v >> 24);
}

void store_le64(uint8_t* p, uint64_t v) noexcept {
  store_le32(p, static_cast<uint32_t>(v));
  store_le32(p + 4, static_cast<uint32_t>(v >> 32));
}

uint64_t frame_checksum(const uint8_t* p, size_t len) noexcept {
  // XXH3 accepts a null pointer only with length 0; callers never pass one with bytes.
  return XXH3_64bits(p, len);
}

Status verify_frame(const uint8_t* p, size_t len, const VerifyOptions& opts) noexcept {
  if (p == nullptr || len < kMinFrameBytes) return Status::kTooShort;
  if (load_le32(p + offsetof(FrameHeader, magic)) != kFrameMagic) return Status::kBadMagic;

  const size_t body_len = len - kFrameHeaderBytes;
  const uint64_t max_body =
      opts.max_body_bytes < kMaxVerifiableBodyBytes ? opts.max_body_bytes : kMaxVerifiableBodyBytes;
  if (body_len > max_body) return Status::kTooLarge;
  if (load_le32(p + offsetof(FrameHeader, body_length)) != body_len) return Status::kBadLength;
  if (!is_aligned(p)) return Status::kBadAlignment;

  const uint8_t* body = p + kFrameHeaderBytes;
  if (opts.check_checksum &&
      load_le64(p + offsetof(FrameHeader, checksum)) != frame_checksum(body, body_len)) {
    return Status::kChecksumMismatch;
  }
  const bool packed = is_packed_body(body);
  if (!packed && std::memcmp(body + kIdentifierOffset, wire::FrameIdentifier(),
                             flatbuffers::kFileIdentifierLength) != 0) {
    return Status::kBadIdentifier;
  }
  flatbuffers::Verifier verifier(body, body_len, verifier_options(opts));
  // The identifier is checked above (either kind); the verifier checks the table tree.
  if (!verifier.VerifyBuffer<wire::Frame>(nullptr)) return Status::kVerifyFailed;
  // Each kind holds only its own envelope fields, so that no reader takes one for the other.
  const wire::Frame* frame = wire::GetFrame(body);
  const bool has_tables = frame->envelopes() != nullptr;
  const bool has_packed =
      frame->heads() != nullptr || frame->data() != nullptr || frame->extras() != nullptr;
  if (packed ? has_tables : has_packed) return Status::kVerifyFailed;
  // The verifier checks a vector's length word for 4-byte alignment, not its elements for
  // theirs: 8-byte PackedHead structs at a 4-byte offset would make the generated accessors
  // read misaligned. The body starts 8-byte aligned (above), so the address tells.
  if (const auto* heads = frame->heads();
      heads != nullptr &&
      reinterpret_cast<uintptr_t>(heads->Data()) % alignof(wire::PackedHead) != 0) {
    return Status::kVerifyFailed;
  }
  return Status::kOk;
}

bool is_packed_body(const uint8_t* body) noexcept {
  return std::memcmp(body + kIdentifierOffset, kPackedFrameIdentifier,
                     flatbuffers::kFileIdentifierLength) == 0;
}

Status verify_frame(const uint8_t* p, size_t len) noexcept {
  return verify_frame(p, len, VerifyOptions{});
}

VerifyOptions ring_verify_options() noexcept {
  VerifyOptions opts;
  opts.check_checksum = false;
  return opts;
}

namespace {

Status seal(uint8_t* p, size_t len, bool checksum) noexcept {
  if (p == nullptr || len < kMinFrameBytes) return Status::kTooShort;
  const size_t body_len = len - kFrameHeaderBytes;
  if (body_len > kDefaultMaxBodyBytes) return Status::kTooLarge;

  store_le32(p + offsetof(FrameHeader, magic), kFrameMagic);
  store_le32(p + offsetof(FrameHeader, body_length), static_cast<uint32_t>(body_len));
  store_le64(p + offsetof(FrameHeader, checksum),
             checksum ? frame_checksum(p + kFrameHeaderBytes, body_len) : 0);
  return Status::kOk;
}

}  // namespace

Status seal_frame(uint8_t* p, size_t len) noexcept { return seal(p, len, true); }

Status seal_frame_unchecked(uint8_t* p, size_t len) noexcept { return seal(p, len, false); }

}  // namespace disco
