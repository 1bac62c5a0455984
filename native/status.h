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
#define DISCO_STATUS_LIST(X)                                                                      \
  X(kOk, 0, "OK", "ok")                                                                           \
  X(kTooShort, 1, "TOO_SHORT",                                                                    \
    "frame is shorter than its 16-byte header plus the 8-byte FlatBuffers root offset and "       \
    "identifier")                                                                                 \
  X(kBadLength, 2, "BAD_LENGTH",                                                                  \
    "body length in the frame header disagrees with the number of bytes received")                \
  X(kBadMagic, 3, "BAD_MAGIC", "frame header does not start with the magic 'DSCO'")               \
  X(kChecksumMismatch, 4, "CHECKSUM_MISMATCH",                                                    \
    "XXH3-64 checksum of the body does not match the frame header")                               \
  X(kBadIdentifier, 5, "BAD_IDENTIFIER", "FlatBuffers file identifier of the body is not 'DSCO'") \
  X(kVerifyFailed, 6, "VERIFY_FAILED",                                                            \
    "FlatBuffers verifier rejected the body (offsets, lengths, required fields or limits)")       \
  X(kTooLarge, 7, "TOO_LARGE", "frame body is larger than the configured maximum")                \
  X(kBadAlignment, 8, "BAD_ALIGNMENT",                                                            \
    "frame does not start at an 8-byte aligned address; copy it into an aligned buffer")          \
  X(kInvalidArgument, 9, "INVALID_ARGUMENT",                                                      \
    "invalid argument (a span outside its buffer, or a buffer too small for the operation)")

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
