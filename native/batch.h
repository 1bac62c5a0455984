// Batches of envelopes between TypeScript and a frame: the staging layout TypeScript writes,
// the FlatBuffers `Frame` built from it in place, and the decoded layout TypeScript reads
// (DESIGN §4, §5; STYLE §2). src/native-batch.ts mirrors every constant here; a test compares
// them with the addon's `batchLayout`.
//
// One copy in. BatchEncoder::prepare() reads a staging buffer and computes a true upper bound
// of the frame it describes; the caller reserves a ring record of that size, and build()
// constructs the FlatBuffers Frame straight into it with an Allocator that hands out the
// record's memory and nothing else. FlatBuffers builds downward, so the frame ends at the end
// of the record; the record header says where it starts. Payload bytes are copied once, from
// the JS Uint8Array into the record. A frame larger than one record is built the same way
// into heap memory and then written as chunks (ring.h).
//
// Zero copies out. BatchDecoder reads verified frames where they lie in the ring and writes
// plain numbers into typed arrays that TypeScript preallocated: per envelope its fields, the
// string ids of its addresses and headers, and where its payload lies relative to the batch's
// one ArrayBuffer over the ring. Strings are interned on both sides (below).
//
// ---- staging layout (TypeScript BatchWriter -> BatchEncoder), little-endian ---------------
//
//   0      4       6       8            12              16           20            24
//   +------+-------+-------+------------+---------------+------------+-------------+
//   |magic |version| flags | used_bytes | envelope_count| strings_at | string_count|
//   +------+-------+-------+------------+---------------+------------+-------------+
//   24      28      32              40              48                strings_at  used_bytes
//   +-------+-------+---------------+---------------+------ - - ------+---- - - ---+
//   | lane  | 0     | link_seq u64  |  ack u64      | envelopes       | string     |
//   +-------+-------+---------------+---------------+------ - - ------+ definitions+
//
//   magic 'DSCB' (u32 0x42435344), version 1, flags bit 0 RESET_STRINGS (clear the producer's
//   string table before the definitions), used_bytes = bytes of the layout from offset 0,
//   lane a u32 holding 0 (promise) or 1 (event). Envelopes fill [48, strings_at) exactly and
//   string definitions [strings_at, used_bytes): definitions come last so that a writer can
//   append envelopes in place and add the (rare) new strings at the end, copying nothing.
//   The definitions are applied before any envelope is read.
//
//   string definition, 4-byte aligned:  u32 id | u32 byte_length | UTF-8 bytes | 0-pad to 4
//     Ids are dense: a new id equals the table size (0 after a reset). Redefining an existing
//     id with the same bytes is allowed (a batch retried after RING_FULL repeats them).
//
//   envelope, 4-byte aligned, 56 fixed bytes then the variable parts in this order:
//      0 u8 kind (0 event, 1 promise, 2 control)   1 u8 data_format (0 raw, 1 serialized)
//      2 u8 hops                                   3 u8 flags: 1 HAS_DATA, 2 DATA_EXTERNAL,
//                                                              4 HAS_REPLY_TO
//      4 u32 repid        8 u32 num_events
//     12 u32 sender node id    16 u32 sender simproc id
//     20 u32 target node id    24 u32 target simproc id
//     28 u32 header_count      32 f64 epoch      40 u64 seqnr
//     48 u32 data_length       52 u32 data_index (DATA_EXTERNAL: index into the payload array)
//     56 [u32 reply node id, u32 reply simproc id]      when HAS_REPLY_TO
//        header_count x (u32 key id, u32 value id)
//        data_length bytes, 0-pad to 4                  when HAS_DATA and not DATA_EXTERNAL
//
//   Small payloads travel inline; large ones (TypeScript's choice, 4 KiB and up) stay in their
//   own Uint8Array, passed in an array next to the staging buffer, and are copied once, from
//   there into the frame.
//
// ---- decoded layout (BatchDecoder -> TypeScript), u32 words unless noted -------------------
//
//   summary[kSummaryWords]: 0 frames, 1 envelopes, 2 header pairs, 3 new strings,
//     4 id of the first new string, 5 flags (1 STRINGS_RESET: clear the table before adding,
//     2 REASSEMBLED: the view is a heap copy of a chunked message), and when the status is
//     OUTPUT_TOO_SMALL: 6 envelopes, 7 header pairs, 8 new strings one frame needs.
//   frames[kFrameWords each]: 0 first envelope, 1 envelope count, 2 lane, 3 frame offset in
//     the view, 4 frame length, 5 link_seq low, 6 link_seq high, 7 ack low, 8 ack high.
//   envelopes[kEnvelopeWords each]:
//      0 kind | data_format << 8 | hops << 16 | flags << 24 (flags: 1 HAS_DATA, 4 HAS_REPLY_TO)
//      1 repid    2 seqnr low    3 seqnr high    4 num_events
//      5 sender node id    6 sender simproc id    7 target node id    8 target simproc id
//      9 data offset in the view    10 data length
//     11 first header pair    12 header count
//     13 reply node id    14 reply simproc id (kNoString without reply_to)
//     15 frame index in the batch
//   epochs: f64 per envelope, bit for bit as sent (-0.0, NaN and the infinities included).
//   headers: pairs (key id, value id).
//   strings: pairs (offset in the view, byte length) of the strings new to the consumer's
//     table, in id order; TypeScript decodes them from the view before releasing it.
//
// ---- strings --------------------------------------------------------------------------------
//
// Producer: BatchWriter assigns ids and sends each string once; ProducerStrings keeps them by
// id. TypeScript resets both (RESET_STRINGS) at the start of a batch once its table holds more
// than kStringSoftEntries strings or kStringSoftBytes bytes; within one batch the table may
// grow past that, up to the hard limits here (beyond them the batch is BAD_BATCH).
// Consumer: StringTable interns the strings of received frames and hands out dense ids. At the
// start of a batch, once over the same soft limits, it resets and says so (STRINGS_RESET).
// A batch stops before a frame when the table went over the soft limits during the batch, so
// that the next one resets; either table stays within the soft limit plus one batch.
//
// Threads: an encoder or decoder belongs to one ring end, used by one thread at a time.

#ifndef DISCO_NATIVE_BATCH_H_
#define DISCO_NATIVE_BATCH_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ring.h"
#include "status.h"

namespace disco {

inline constexpr uint32_t kBatchMagic = 0x42435344u;  // 'DSCB'
inline constexpr uint16_t kBatchVersion = 1;
inline constexpr size_t kBatchHeaderBytes = 48;
inline constexpr size_t kBatchLaneOffset = 24;  // u32 lane word of the header
inline constexpr uint16_t kBatchResetStrings = 1;
inline constexpr size_t kBatchEnvelopeFixedBytes = 56;
inline constexpr uint8_t kEnvelopeHasData = 1;
inline constexpr uint8_t kEnvelopeDataExternal = 2;
inline constexpr uint8_t kEnvelopeHasReplyTo = 4;

inline constexpr size_t kSummaryWords = 9;
inline constexpr size_t kFrameWords = 9;
inline constexpr size_t kEnvelopeWords = 16;
inline constexpr uint32_t kSummaryStringsReset = 1;
inline constexpr uint32_t kSummaryReassembled = 2;
inline constexpr uint32_t kNoString = 0xFFFFFFFFu;

inline constexpr uint32_t kStringSoftEntries = 1u << 16;
inline constexpr size_t kStringSoftBytes = size_t{16} << 20;
inline constexpr uint32_t kStringHardEntries = 1u << 22;
inline constexpr size_t kStringHardBytes = size_t{256} << 20;

/// A payload passed next to the staging buffer (DATA_EXTERNAL).
struct PayloadSpan {
  const uint8_t* data = nullptr;
  size_t length = 0;
};

/// The producer's strings, by id.
class ProducerStrings {
 public:
  /// Applies one definition (see the layout). kBadBatch when `id` is not the next id and not an
  /// existing one with the same bytes, or past the hard limits.
  [[nodiscard]] Status define(uint32_t id, const uint8_t* bytes, uint32_t length) noexcept;
  void clear() noexcept;
  [[nodiscard]] uint32_t size() const noexcept { return static_cast<uint32_t>(offsets_.size()); }
  [[nodiscard]] const char* data(uint32_t id) const noexcept {
    return arena_.data() + offsets_[id];
  }
  [[nodiscard]] uint32_t length(uint32_t id) const noexcept { return lengths_[id]; }

 private:
  std::string arena_;
  std::vector<size_t> offsets_;
  std::vector<uint32_t> lengths_;
};

/// One envelope of the staging layout, every part checked against the layout and the tables
/// (batch.cc read_envelope). Pointers point into the staging buffer or an external payload.
struct StagedEnvelope {
  uint8_t kind;
  uint8_t data_format;
  uint8_t hops;
  uint8_t flags;
  uint32_t repid;
  uint32_t num_events;
  uint32_t sender_node;
  uint32_t sender_simproc;
  uint32_t target_node;
  uint32_t target_simproc;
  uint32_t header_count;
  double epoch;
  uint64_t seqnr;
  uint32_t reply_node;
  uint32_t reply_simproc;
  const uint8_t* header_ids;  // header_count pairs of u32
  const uint8_t* data;        // data_length bytes (inline or external), or null
  uint32_t data_length;
};

/// What prepare() learned about a staging buffer.
struct PreparedBatch {
  const uint8_t* layout = nullptr;
  size_t used_bytes = 0;
  size_t strings_at = 0;  // end of the envelopes, start of the string definitions
  uint32_t envelope_count = 0;
  uint8_t lane = 0;
  uint64_t link_seq = 0;
  uint64_t ack = 0;
  /// Upper bound of the sealed frame's size plus the builder's scratch; a multiple of 8.
  uint64_t bound = 0;
};

/// A payload build() leaves for the producer to read from its owner (BatchEncoder::write), and
/// where build() placed its bytes.
struct BorrowSlot {
  PayloadSpan payload;
  uint8_t* slot = nullptr;
};

/// The lane word of a staging header (0 promise, 1 event; anything else as written), or 0 when
/// `bytes` cannot hold a header. Only picks a lane's encoder: BatchEncoder::prepare checks the
/// header whole.
[[nodiscard]] uint32_t staged_lane(const uint8_t* layout, size_t bytes) noexcept;

/// Turns staging buffers into sealed frames. One per string table: a ring producer keeps one per
/// lane (staged_lane picks it).
class BatchEncoder {
 public:
  /// Reads the staging buffer `layout[0..bytes)` and the external payloads, applies its string
  /// definitions, checks every length, id and index, and computes the frame's size bound.
  /// kBadBatch for a malformed layout (nothing but the string definitions before the bad part
  /// is applied).
  [[nodiscard]] Status prepare(const uint8_t* layout, size_t bytes, const PayloadSpan* payloads,
                               size_t payload_count, PreparedBatch* out) noexcept;

  /// Builds the sealed frame of `batch` into `region[0..region_bytes)`, 8-byte aligned, where
  /// region_bytes >= batch.bound and is a multiple of 8. The frame ends at the region's end;
  /// `*frame_offset` is where it starts (a multiple of 8). kBoundExceeded if the builder needed
  /// more than the region (a bug in the bound; the region's bytes are then garbage).
  /// For the batch of the last prepare() it builds the envelopes that call read, so the staging
  /// buffer and payloads must not change in between (callers run both in one native call);
  /// for any other batch it reads them again and returns kBadBatch for a malformed one.
  /// `checksum` false seals with seal_frame_unchecked() (frames that only travel in a ring).
  /// With `borrow`, the first envelope whose payload is borrow->payload gets its bytes left
  /// unwritten (only with `checksum` false), and borrow->slot says where in the region they
  /// belong (null when no envelope carries it).
  [[nodiscard]] Status build(const PreparedBatch& batch, const PayloadSpan* payloads,
                             size_t payload_count, uint8_t* region, size_t region_bytes,
                             size_t* frame_offset, size_t* frame_length, bool checksum = true,
                             BorrowSlot* borrow = nullptr) noexcept;

  /// prepare() + build() into `producer`: in place in one record when the bound fits a record,
  /// else into the heap and on as chunks. The frame is sealed without a checksum (frame.h
  /// ring_verify_options()). kOk, kWritePending (chunks still to go), kRingFull
  /// (nothing written; the strings are defined, a retry may repeat them), or a failure.
  /// A chunked frame borrows its largest external payload (RingProducer BorrowedRange): that
  /// payload goes from the caller's memory into the ring without a copy in the heap, so it must
  /// stay valid and unchanged while producer.borrowing(). `*borrowed` (when given) is its index
  /// in `payloads` when the producer is left borrowing it, else kNoPayload.
  [[nodiscard]] Status write(RingProducer& producer, const uint8_t* layout, size_t bytes,
                             const PayloadSpan* payloads, size_t payload_count,
                             size_t* borrowed = nullptr) noexcept;
  static constexpr size_t kNoPayload = ~size_t{0};

  [[nodiscard]] const ProducerStrings& strings() const noexcept { return strings_; }

 private:
  friend class BatchBuild;
  ProducerStrings strings_;
  std::vector<uint32_t> stamp_;             // per string id: generation that last saw it
  std::vector<uint32_t> offset_;            // per string id: its offset in the frame being built
  std::vector<uint32_t> extras_;            // offsets of the frame's extras, in order
  std::vector<uint32_t> headers_;           // offsets of one envelope's header tables
  std::vector<uint32_t> name_stamp_;        // per string id: generation that last named it
  std::vector<uint32_t> name_index_;        // per string id: its index in the frame's names
  std::vector<uint32_t> names_;             // offsets of the frame's names, in index order
  std::vector<uint32_t> head_names_;        // per envelope: its four name indices
  std::vector<StagedEnvelope> staged_;      // the envelopes the last prepare() read...
  const uint8_t* staged_layout_ = nullptr;  // ...from this staging buffer (null: none)
  uint32_t generation_ = 0;
};

/// The consumer's intern table: dense ids for byte strings, bounded by resets.
class StringTable {
 public:
  /// The id of `bytes`; a new string gets id size() and `*inserted` is set. kNoString when the
  /// hard limits are reached.
  [[nodiscard]] uint32_t intern(const uint8_t* bytes, uint32_t length, bool* inserted) noexcept;
  /// Drops the strings with ids >= `count` (the newest); lookups of the others still work.
  void truncate(uint32_t count) noexcept;
  void clear() noexcept;
  [[nodiscard]] uint32_t size() const noexcept { return static_cast<uint32_t>(entries_.size()); }
  [[nodiscard]] size_t bytes() const noexcept { return arena_.size(); }
  /// True once over kStringSoftEntries or kStringSoftBytes.
  [[nodiscard]] bool over_soft_limit() const noexcept;

 private:
  struct Entry {
    size_t offset;
    uint32_t length;
    uint32_t hash;
  };
  void grow() noexcept;
  [[nodiscard]] size_t slot_of(uint32_t id) const noexcept;
  std::string arena_;
  std::vector<Entry> entries_;
  std::vector<uint32_t> slots_;  // id + 1, 0 = empty; a power of two, at most half full
};

/// Where decode writes, with room for `*_capacity` items each (see the decoded layout).
struct DecodeTarget {
  uint32_t* summary = nullptr;  // kSummaryWords
  uint32_t* frames = nullptr;
  size_t frame_capacity = 0;
  uint32_t* envelopes = nullptr;
  double* epochs = nullptr;
  size_t envelope_capacity = 0;
  uint32_t* headers = nullptr;  // pairs
  size_t header_capacity = 0;
  uint32_t* strings = nullptr;  // pairs
  size_t string_capacity = 0;
};

/// Decodes verified frames into a DecodeTarget. One per consumer (it owns the consumer's
/// string table). Every offset and length is read once and bounds-checked against the frame
/// as it is used, so even a frame changed after verification (a hostile producer writing into
/// a record it has published) cannot make the decoder read outside it: the frame is then
/// kCorruptRecord.
class BatchDecoder {
 public:
  /// Starts a batch: resets the counters, and the string table when it is over its soft limit.
  void begin(const DecodeTarget& target) noexcept;

  /// The RecordVisitor of ring.h: decodes one frame whose batch view starts at `base`.
  /// kOk, kOutputTooSmall (nothing of the frame is kept; the summary says what it needs), or
  /// kCorruptRecord. Stops the batch (kOutputTooSmall) before a frame when the string table
  /// went over its soft limit, so that the next batch resets it.
  [[nodiscard]] Status decode(const RecordSpan& span, size_t index, const uint8_t* base) noexcept;

  /// ring.h RecordVisitor adapter; `context` is the BatchDecoder.
  [[nodiscard]] static Status visit(void* context, const RecordSpan& span, size_t index,
                                    const uint8_t* base) noexcept;

  /// Writes the summary of the batch decoded since begin() (call it only for a batch that is
  /// returned: it reports a pending string-table reset once); `reassembled` sets its flag.
  void finish(bool reassembled) noexcept;

  [[nodiscard]] const StringTable& strings() const noexcept { return strings_; }

 private:
  friend class FrameDecode;
  DecodeTarget target_;
  StringTable strings_;
  size_t frames_ = 0;
  size_t envelopes_ = 0;
  size_t headers_ = 0;
  size_t new_strings_ = 0;
  uint32_t first_string_ = 0;
  bool reset_unreported_ = false;
  uint32_t generation_ = 0;
  struct CacheEntry {
    uint32_t generation;
    uint32_t position;
    uint32_t id;
  };
  CacheEntry cache_[64] = {};    // string position in the frame -> id, for this frame
  std::vector<uint32_t> names_;  // the frame's names vector, index -> consumer id
};

}  // namespace disco

#endif  // DISCO_NATIVE_BATCH_H_
