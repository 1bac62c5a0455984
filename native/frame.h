// The sealed link frame: what a link carries between processes and machines (DESIGN §4).
//
// A frame is a 16-byte header followed by a FlatBuffers `disco.wire.Frame` body. The header
// lets a receiver reject torn, truncated or foreign bytes cheaply before the FlatBuffers
// verifier walks the body; the verifier then guarantees that every offset and length in the
// body stays inside it, so TypeScript (which has no verifier) can decode it safely (STYLE §9).
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  'D' 0x44     |  'S' 0x53     |  'C' 0x43     |  'O' 0x4F     |  0  magic (u32 0x4F435344)
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                      body_length (u32)                        |  4  bytes after the header
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                                                               |  8  XXH3_64bits(body),
//  +                      checksum (u64)                           +     seed 0
//  |                                                               |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  root offset (u32, FlatBuffers)                               | 16  body: a finished,
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+      non-size-prefixed
//  |  file identifier 'D' 'S' 'C' 'O'                              | 20  FlatBuffers buffer
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+      with root_type Frame
//  |  ... tables, vectors, strings of disco.wire.Frame ...         |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  16 + body_length
//
// All header fields are little-endian, whatever the host. The frame length is exactly
// 16 + body_length: a frame never has trailing bytes, so a receiver that knows where a frame
// ends (ring record length, gRPC message length) can check the header against it.
//
// Alignment: the FlatBuffers builders (C++ and TypeScript) align every scalar relative to the
// end of the buffer and pad the finished buffer to its largest alignment (8 with our u64 and
// double fields). The verifier checks that alignment relative to the body start. The C++
// accessors read scalars through plain pointer dereferences, which is only defined behaviour
// when the body is also aligned in memory. verify_frame() therefore requires the frame start
// (and with the 16-byte header, the body) to sit at an 8-byte aligned address and returns
// kBadAlignment otherwise. Ring records are 8-byte aligned (DESIGN §5) and Node's Buffer
// allocations are too; a caller holding an unaligned view copies it once.
//
// Ownership and threads: the functions here are pure; they read or write only the bytes they
// are given, keep no pointers and are safe to call from any thread on distinct buffers. The
// bytes must not change while verify_frame() runs, and the result is only meaningful while
// they stay unchanged afterwards: the reader owns a frame until it releases it.

#ifndef DISCO_NATIVE_FRAME_H_
#define DISCO_NATIVE_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "status.h"

namespace disco {

/// Version of the layout drawn above; bump when the header or the framing rules change.
inline constexpr uint32_t kFrameLayoutVersion = 1;

/// Body identifiers (FlatBuffers file_identifier, bytes 4..8 of the body). The schema's own,
/// "DSCO" (wire::FrameIdentifier()): a frame of `Envelope` tables (`Frame.envelopes`). "DSC2":
/// a packed frame, its envelopes as `Frame.heads` structs with their payloads in `Frame.data`
/// and their headers and replyTo in `Frame.extras` (schemas/envelope.fbs). The encoders write
/// packed frames; readers take both. A frame of one kind holding the other's fields does not
/// verify.
inline constexpr char kPackedFrameIdentifier[] = "DSC2";
/// PackedHead.flags: the envelope has data.
inline constexpr uint8_t kPackedHasData = 1;

/// True when the FlatBuffers body `body` (at least kMinBodyBytes) carries the packed frame
/// identifier. Says nothing of the rest: verify_frame() checks the body.
[[nodiscard]] bool is_packed_body(const uint8_t* body) noexcept;

/// 'D' 'S' 'C' 'O' read as a little-endian u32.
inline constexpr uint32_t kFrameMagic = 0x4F435344u;

/// The header as a struct, for its offsets and size; code reads and writes it byte-wise
/// (little-endian, any alignment), never by casting a buffer to FrameHeader.
struct FrameHeader {
  uint32_t magic;
  uint32_t body_length;
  uint64_t checksum;
};

static_assert(std::is_standard_layout_v<FrameHeader>, "FrameHeader must be standard layout");
static_assert(offsetof(FrameHeader, magic) == 0, "magic is at offset 0");
static_assert(offsetof(FrameHeader, body_length) == 4, "body_length is at offset 4");
static_assert(offsetof(FrameHeader, checksum) == 8, "checksum is at offset 8");
static_assert(sizeof(FrameHeader) == 16, "the frame header is 16 bytes");

/// Bytes before the FlatBuffers body.
inline constexpr size_t kFrameHeaderBytes = sizeof(FrameHeader);

/// A FlatBuffers body holds at least its root offset and the 4-byte file identifier.
inline constexpr size_t kMinBodyBytes = 8;

/// Smallest frame verify_frame() can accept.
inline constexpr size_t kMinFrameBytes = kFrameHeaderBytes + kMinBodyBytes;

/// Required alignment of a frame's first byte (and so of its body) in memory.
inline constexpr size_t kFrameAlignment = 8;
static_assert(kFrameHeaderBytes % kFrameAlignment == 0,
              "the header must keep the body as aligned as the frame");

/// Default body limit: one message may be up to 1 GiB (DESIGN §5), plus 1 MiB for the
/// envelope fields, headers and FlatBuffers bookkeeping around it.
inline constexpr uint64_t kDefaultMaxBodyBytes = (uint64_t{1} << 30) + (uint64_t{1} << 20);

/// The largest body the FlatBuffers verifier can be handed (its buffers are < 2 GiB).
inline constexpr uint64_t kMaxVerifiableBodyBytes = 0x7FFFFFFEu;

/// Limits for verify_frame(). The defaults accept batches of about 100k envelopes.
struct VerifyOptions {
  /// Compare the header checksum with the body. Byte streams (sockets, gRPC) keep it on: it
  /// catches torn or misframed bytes cheaply. Ring records turn it off (ring_verify_options()):
  /// the bytes sit in memory both ends mapped, where nothing tears them, and a hostile producer
  /// could write a matching checksum anyway; the FlatBuffers verifier and the record bounds
  /// checks are what keep a bad record from being read out of bounds. Off, the checksum field
  /// is not read at all.
  bool check_checksum = true;
  /// Bodies larger than this are kTooLarge; clamped to kMaxVerifiableBodyBytes.
  uint64_t max_body_bytes = kDefaultMaxBodyBytes;
  /// Nesting limit of tables in the verifier. Our schema nests Frame > Envelope > Header or
  /// Address, three levels; the slack is for fields added later.
  uint32_t max_depth = 16;
  /// Tables the verifier may visit. It visits a table once per reference, so this bounds the
  /// work a small hostile body can cause by referencing one table many times. A batch of
  /// 100k envelopes with a reply_to and up to 37 headers each stays under it.
  uint32_t max_tables = 4'000'000;
};

/// Checks one frame of exactly `len` bytes at `p`, in this order: length >= kMinFrameBytes
/// (kTooShort), magic (kBadMagic), body size <= max (kTooLarge), header body_length equals
/// len - 16 (kBadLength), alignment of `p` (kBadAlignment), checksum (kChecksumMismatch, only
/// with opts.check_checksum),
/// file identifier (kBadIdentifier), FlatBuffers verifier with `opts` limits (kVerifyFailed).
/// Never reads outside [p, p + len). `p` may be null only when `len` is 0.
[[nodiscard]] Status verify_frame(const uint8_t* p, size_t len, const VerifyOptions& opts) noexcept;

/// verify_frame() with the default limits.
[[nodiscard]] Status verify_frame(const uint8_t* p, size_t len) noexcept;

/// The options a ring consumer verifies its records with: the default limits, no checksum.
[[nodiscard]] VerifyOptions ring_verify_options() noexcept;

/// Seals a frame in place: `p[0..16)` is reserved for the header and `p[16..len)` already holds
/// a finished FlatBuffers body. Writes magic, body_length and the checksum of the body.
/// Returns kTooShort when len < kMinFrameBytes and kTooLarge when the body exceeds
/// kDefaultMaxBodyBytes. Does not look inside the body: verification is the reader's job.
[[nodiscard]] Status seal_frame(uint8_t* p, size_t len) noexcept;

/// seal_frame() for a frame that only travels through a ring (read with
/// ring_verify_options()): the checksum field is written as 0 and the body is not read, so
/// sealing costs the same for 64 bytes as for 64 MiB.
[[nodiscard]] Status seal_frame_unchecked(uint8_t* p, size_t len) noexcept;

/// XXH3_64bits of `len` bytes at `p` (seed 0): the header checksum of a body.
[[nodiscard]] uint64_t frame_checksum(const uint8_t* p, size_t len) noexcept;

/// Reads the little-endian u32 at `p` (any alignment).
[[nodiscard]] uint32_t load_le32(const uint8_t* p) noexcept;

/// Reads the little-endian u64 at `p` (any alignment).
[[nodiscard]] uint64_t load_le64(const uint8_t* p) noexcept;

/// Writes `v` little-endian at `p` (any alignment).
void store_le32(uint8_t* p, uint32_t v) noexcept;

/// Writes `v` little-endian at `p` (any alignment).
void store_le64(uint8_t* p, uint64_t v) noexcept;

}  // namespace disco

#endif  // DISCO_NATIVE_FRAME_H_
