// The one list of native outcomes (STYLE §2).
//
// Every core function that can fail returns a `disco::Status`; nothing in the core throws.
// The binding exports this list to JavaScript as `statusCodes` (names from the second column),
// and src/native.ts keeps a typed mirror that a test compares against the addon, so a change
// here that is not made there fails the build's tests.
//
// Rules that must stay true:
//   - values are stable once released: append new statuses, never renumber or reuse one;
//   - kOk is 0 and the only success value;
//   - names are UPPER_SNAKE and unique; messages say what was wrong in a few words.

#ifndef DISCO_NATIVE_STATUS_H_
#define DISCO_NATIVE_STATUS_H_

#include <cstdint>

namespace disco {

// X(enumerator, value, NAME, message)
#define DISCO_STATUS_LIST(X)                                                                       \
  X(kOk, 0, "OK", "ok")                                                                            \
  X(kTooShort, 1, "TOO_SHORT",                                                                     \
    "frame is shorter than its 16-byte header plus the 8-byte FlatBuffers root offset and "        \
    "identifier")                                                                                  \
  X(kBadLength, 2, "BAD_LENGTH",                                                                   \
    "body length in the frame header disagrees with the number of bytes received")                 \
  X(kBadMagic, 3, "BAD_MAGIC", "frame header does not start with the magic 'DSCO'")                \
  X(kChecksumMismatch, 4, "CHECKSUM_MISMATCH",                                                     \
    "XXH3-64 checksum of the body does not match the frame header")                                \
  X(kBadIdentifier, 5, "BAD_IDENTIFIER", "FlatBuffers file identifier of the body is not 'DSCO'")  \
  X(kVerifyFailed, 6, "VERIFY_FAILED",                                                             \
    "FlatBuffers verifier rejected the body (offsets, lengths, required fields or limits)")        \
  X(kTooLarge, 7, "TOO_LARGE", "frame body is larger than the configured maximum")                 \
  X(kBadAlignment, 8, "BAD_ALIGNMENT",                                                             \
    "frame does not start at an 8-byte aligned address; copy it into an aligned buffer")           \
  X(kInvalidArgument, 9, "INVALID_ARGUMENT",                                                       \
    "invalid argument (a span outside its buffer, or a buffer too small for the operation)")       \
  X(kRingFull, 10, "RING_FULL",                                                                    \
    "the ring has no room for the record now; retry when the consumer has released space")         \
  X(kRingEmpty, 11, "RING_EMPTY", "the ring holds no committed record")                            \
  X(kCorruptRecord, 12, "CORRUPT_RECORD",                                                          \
    "a position, record length, type or chunk in the ring is out of bounds or inconsistent")       \
  X(kPeerDead, 13, "PEER_DEAD", "the process at the other end of the ring is dead")                \
  X(kPeerClosed, 14, "PEER_CLOSED", "the other end closed the ring")                               \
  X(kSegmentExists, 15, "SEGMENT_EXISTS", "a shared-memory segment with this name exists already") \
  X(kSegmentNotFound, 16, "SEGMENT_NOT_FOUND", "no shared-memory segment with this name")          \
  X(kBadSegment, 17, "BAD_SEGMENT",                                                                \
    "the segment is not a ring of this layout (magic, version, header size or capacity differ "    \
    "from the file), or its creator has not finished initialising it")                             \
  X(kBadName, 18, "BAD_NAME",                                                                      \
    "segment names are 1 to 200 characters of A-Z a-z 0-9 _ . - and do not start with a dot")      \
  X(kRoleTaken, 19, "ROLE_TAKEN",                                                                  \
    "a live process already holds this end (producer or consumer) of the ring")                    \
  X(kRoleAbandoned, 20, "ROLE_ABANDONED",                                                          \
    "a process that died held this end of the ring; unlink and recreate the ring")                 \
  X(kSystemError, 21, "SYSTEM_ERROR", "a system call failed; see the errno reported with it")      \
  X(kBadBatch, 22, "BAD_BATCH",                                                                    \
    "the batch layout is malformed (a length, string id or payload index out of range)")           \
  X(kOutputTooSmall, 23, "OUTPUT_TOO_SMALL",                                                       \
    "the output arrays cannot hold one frame of the batch; grow them to the sizes reported")       \
  X(kWritePending, 24, "WRITE_PENDING",                                                            \
    "the message was accepted; its remaining chunks are written as the consumer frees space")      \
  X(kNoMemory, 25, "NO_MEMORY", "a heap allocation failed")                                        \
  X(kBoundExceeded, 26, "BOUND_EXCEEDED",                                                          \
    "a frame outgrew its computed size bound while being built (a bug); nothing was written")      \
  X(kClosed, 27, "CLOSED", "this end of the ring was closed")                                      \
  X(kPayloadDetached, 28, "PAYLOAD_DETACHED",                                                      \
    "a payload was detached or resized while its message was still being written in chunks; "      \
    "the message cannot be completed and this end of the ring was closed")

#define DISCO_STATUS_ENUMERATOR(name, value, js_name, message) name = value,

/// Outcome of a native operation. Fits an Int32Array slot, which is how batches report it.
enum class Status : int32_t { DISCO_STATUS_LIST(DISCO_STATUS_ENUMERATOR) };

#undef DISCO_STATUS_ENUMERATOR

/// Number of statuses in DISCO_STATUS_LIST; values run from 0 to kStatusCount - 1.
inline constexpr int32_t kStatusCount = 0
#define DISCO_STATUS_COUNT(name, value, js_name, message) +1
    DISCO_STATUS_LIST(DISCO_STATUS_COUNT);
#undef DISCO_STATUS_COUNT

/// Stable UPPER_SNAKE name of `s` ("BAD_MAGIC"), or "UNKNOWN" for a value not in the list.
[[nodiscard]] constexpr const char* status_name(Status s) noexcept {
  switch (s) {
#define DISCO_STATUS_NAME_CASE(name, value, js_name, message) \
  case Status::name:                                          \
    return js_name;
    DISCO_STATUS_LIST(DISCO_STATUS_NAME_CASE)
#undef DISCO_STATUS_NAME_CASE
  }
  return "UNKNOWN";
}

/// One-line human explanation of `s`, for error messages.
[[nodiscard]] constexpr const char* status_message(Status s) noexcept {
  switch (s) {
#define DISCO_STATUS_MESSAGE_CASE(name, value, js_name, message) \
  case Status::name:                                             \
    return message;
    DISCO_STATUS_LIST(DISCO_STATUS_MESSAGE_CASE)
#undef DISCO_STATUS_MESSAGE_CASE
  }
  return "unknown native status";
}

/// True when `value` is one of the listed statuses (for values coming back from JavaScript).
[[nodiscard]] constexpr bool is_known_status(int32_t value) noexcept {
  return value >= 0 && value < kStatusCount;
}

// The list must be dense from 0 so that is_known_status() and the JS mirror stay simple.
#define DISCO_STATUS_DENSE_CHECK(name, value, js_name, message)                          \
  static_assert(static_cast<int32_t>(Status::name) == (value) && (value) < kStatusCount, \
                "DISCO_STATUS_LIST must be numbered densely from 0");
DISCO_STATUS_LIST(DISCO_STATUS_DENSE_CHECK)
#undef DISCO_STATUS_DENSE_CHECK

}  // namespace disco

#endif  // DISCO_NATIVE_STATUS_H_
