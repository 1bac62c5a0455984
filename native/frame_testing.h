// Test support for frames: a fixed sample frame and a JSON description of any verified frame.
//
// These back `testing.buildSampleFrame()` and `testing.describeFrame()` of the addon, the C++
// unit tests, the fuzz seed generator and the cross-language round trip
// (test/native/roundtrip.test.ts), which proves that flatc 2.0.8, the C++ headers and the npm
// `flatbuffers` runtime agree on every field. They are not on any hot path and allocate freely.
//
// The sample frame, field by field (test/native/roundtrip.test.ts checks every one):
//
//   Frame      link_seq = 2^63 + 1 (9223372036854775809)   ack = 2^53 + 1 (9007199254740993)
//              lane = Event (1)
//   envelopes[0], every field set:
//              kind = Promise (1)         repid = 7
//              sender = "n1" / "physics"  target = "n7" / "chemistry"
//              epoch = 1234.5678          seqnr = 2^64 - 1     num_events = 2^32 - 1
//              headers = [ "trace-id": "4bf92f3577b34da6", "unicode": "grüße ✓ 日本" ]
//              data = 00 01 7f 80 fe ff 44 53 43 4f 00   data_format = Serialized (1)
//              hops = 3                   reply_to = "n2" / "ledger"
//   envelopes[1], the required head only, every number 0, no headers, data or reply_to:
//              sender = "n0" / "source"   target = "n1" / "sink"
//   names: the names the heads index, in order of first use.
//
// Threads: the functions are pure and reentrant.

#ifndef DISCO_NATIVE_FRAME_TESTING_H_
#define DISCO_NATIVE_FRAME_TESTING_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "status.h"

namespace disco::testing {

inline constexpr uint64_t kSampleLinkSeq = (uint64_t{1} << 63) + 1;
inline constexpr uint64_t kSampleAck = (uint64_t{1} << 53) + 1;
inline constexpr uint32_t kSampleRepid = 7;
inline constexpr double kSampleEpoch = 1234.5678;
inline constexpr uint64_t kSampleSeqnr = UINT64_MAX;
inline constexpr uint32_t kSampleNumEvents = UINT32_MAX;
inline constexpr uint8_t kSampleHops = 3;
inline constexpr size_t kSampleEnvelopeCount = 2;

/// The sealed sample frame described above (header included).
[[nodiscard]] std::vector<uint8_t> build_sample_frame() noexcept;

/// A sealed frame with `envelope_count` envelopes carrying `data_bytes` bytes of data each,
/// with deterministic contents derived from `link_seq`. For batches, seeds and size tests.
[[nodiscard]] std::vector<uint8_t> build_test_frame(uint64_t link_seq, uint32_t envelope_count,
                                                    uint32_t data_bytes) noexcept;

/// Copies `body` behind a reserved header and seals it: a frame whose header is right, whatever
/// the body holds. Lets tests and the fuzzer reach the FlatBuffers verifier past the checksum.
[[nodiscard]] std::vector<uint8_t> seal_body_copy(const uint8_t* body, size_t len) noexcept;

/// Verifies the frame at `p` (default limits) and, when it is OK, writes into `*out` a JSON
/// object with every field of the frame and of each envelope as C++ reads them:
///   {"linkSeq":"<u64>","ack":"<u64>","lane":<n>,"envelopes":[{"kind":<n>,"repid":<n>,
///    "senderNode":"..","senderSimproc":"..","targetNode":"..","targetSimproc":"..",
///    "epoch":<shortest round-trip double>,"seqnr":"<u64>","numEvents":<n>,
///    "headers":[{"key":"..","value":".."}]|null,"data":[<byte>,...]|null,"dataFormat":<n>,
///    "hops":<n>,"replyTo":{"node":"..","simproc":".."}|null}, ...]}
/// 64-bit integers are decimal strings (JSON numbers would lose precision); a non-finite
/// epoch is the string "NaN", "Infinity" or "-Infinity"; an absent vector is null.
/// Leaves `*out` untouched and returns the failing status otherwise.
[[nodiscard]] Status describe_frame(const uint8_t* p, size_t len, std::string* out) noexcept;

}  // namespace disco::testing

#endif  // DISCO_NATIVE_FRAME_TESTING_H_
