// The single-producer/single-consumer ring in a shared-memory segment (DESIGN §5, STYLE §2).
//
// Threading and ownership: ONE producer process and ONE consumer process per ring. Each claims
// its end at open with a compare-and-swap of its identity (shm.h) into the header; inside a
// process, a RingProducer or RingConsumer object is used by one thread at a time (the JS
// thread). The doorbell thread of doorbell.h only reads the shared positions and flags and
// writes the doorbell words; of these objects' local state it only sets the producer's
// consumer-dead flag (an atomic, RingProducer::set_consumer_dead). The creator
// (usually the Application) makes the segment and unlinks it; producer and consumer only open.
//
// Segment layout (one 4096-byte header page, then `capacity` bytes of records):
//
//   offset  field                     written by      notes
//   ------  ------------------------  --------------  --------------------------------------
//        0  SegmentPrefix (shm.h)     creator         magic last; version, header bytes,
//                                                     capacity, creator identity
//       64  producer identity (u64)   producer (CAS)  0 = no producer yet
//       72  consumer identity (u64)   consumer (CAS)  0 = no consumer yet
//       80  producer_closed (u32)     producer        1 after close(): no more records
//       84  consumer_closed (u32)     consumer        1 after close(): nobody reads
//       88  consumer_bell_kind (u32)  consumer        0 futex thread, 1 pipe "<name>.bell"
//      128  tail (u64)                producer        own 128-byte block: position after the
//                                                     last committed record; only grows
//      256  head (u64)                consumer        own block: position after the last
//                                                     released record; only grows
//      384  consumer_bell (u32)       producer        futex word: +1 per wake-up
//      388  consumer_sleeping (u32)   consumer/prod.  1 while the consumer is (about to be)
//                                                     asleep; the producer swaps it to 0
//      512  producer_bell (u32)       consumer        futex word: +1 per space-freed wake-up
//      516  producer_waiting (u32)    producer/cons.  1 while the producer waits for space
//     4096  data area                 producer        `capacity` bytes, a power of two
//
// Positions (tail, head) are byte counts since the ring was created; the index of a position in
// the data area is `position & (capacity - 1)`. They are 64-bit and never wrap in practice
// (2^64 bytes is 584 years at 1 TB/s). head <= tail <= head + capacity always holds for honest
// peers; each side re-checks it on every load from the segment. Each hot index sits in its
// own 128-byte block: two 64-byte lines, because Intel's adjacent-line prefetcher pulls lines
// in pairs and would otherwise reintroduce the false sharing the separation removes.
//
// Records: 8-byte aligned, never split across the end of the data area.
//
//   0               4       6       8               12              16
//   +---------------+-------+-------+---------------+---------------+------------------ - -
//   | record_bytes  | type  | flags | content_offset| content_length| ... content ...
//   +---------------+-------+-------+---------------+---------------+------------------ - -
//
//   record_bytes     u32  the whole record, header included; a multiple of 8, >= 16, at most
//                         max_record_bytes() = capacity / 2 (so a record always fits once the
//                         ring has drained, wherever the tail is).
//   type             u16  1 FRAME: the content is one sealed frame (frame.h), verified by the
//                           consumer before anyone sees it, with ring_verify_options(): the
//                           frame's checksum is neither needed nor checked (the in-place
//                           builder writes 0), the FlatBuffers verifier and the bounds checks
//                           here are what make a hostile record harmless. It may sit
//                           anywhere in the record: the in-place builder (batch.h) builds
//                           downward from the record end.
//                         2 PADDING: fills the data area from here to its end; only the first
//                           8 bytes (record_bytes, type) are meaningful, since as few as 8
//                           bytes may remain before the end.
//                         3 CHUNK: a piece of a message larger than one record. The content
//                           starts with the u64 total message length, then the piece.
//   flags            u16  CHUNK: 1 first piece, 2 last piece (3 for a message of one piece,
//                         which write_frame() never makes but a reader accepts). 0 otherwise.
//   content_offset   u32  from the record start; >= 16 and a multiple of 8.
//   content_length   u32  content bytes; content_offset + content_length <= record_bytes.
//
// Publication: the producer writes the whole record (and a padding record before it at the
// wrap), then stores tail with release. The consumer loads tail with acquire and reads only
// below it, so a record of a producer that dies while writing it is never seen. The consumer
// releases by storing head with release after it is done with the bytes; the producer loads
// head with acquire before reusing them.
//
// Untrusted peer: every value loaded from the segment (tail, head, record fields, chunk
// totals) is read once into a local and checked before use; an inconsistent one makes the
// call return kCorruptRecord and the end becomes failed (every later call returns the same
// status) instead of reading out of bounds or spinning.
//
// Roles: an end whose holder died cannot be taken over; open returns kRoleAbandoned and the
// supervisor unlinks and recreates the ring. Taking over would need the new holder to agree
// with the survivor on a position nobody can vouch for (a dead producer's half-written
// record, a dead consumer's unreleased batch), so a fresh ring is the simple correct answer.

#ifndef DISCO_NATIVE_RING_H_
#define DISCO_NATIVE_RING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "shm.h"
#include "status.h"

namespace disco {

/// "DSCORNG1" read as a little-endian u64.
inline constexpr uint64_t kRingMagic = 0x31474E524F435344ull;
/// Version of the layout drawn above; bump on any change to it.
inline constexpr uint32_t kRingLayoutVersion = 1;
inline constexpr uint32_t kRingHeaderBytes = 4096;
inline constexpr uint64_t kMinRingCapacity = uint64_t{64} << 10;
inline constexpr uint64_t kMaxRingCapacity = uint64_t{4} << 30;

inline constexpr size_t kRecordAlignment = 8;
inline constexpr size_t kRecordHeaderBytes = 16;
/// Bytes of a CHUNK record's content before the piece: the u64 total message length.
inline constexpr size_t kChunkPrefixBytes = 8;

/// Largest piece of a message in one CHUNK record (smaller when half the ring is smaller).
/// Small pieces keep both ends copying at once: each piece is published as soon as it is in,
/// so the consumer copies it out while the producer copies the next one. With 256 KiB pieces
/// in a 4 MiB ring, 64 MiB messages went at 0.55-0.68x memcpy against 0.49-0.50x with pieces
/// of half the ring (bench/macro, paired runs). Producers still wait for more space than a
/// piece before they go on (ShmTransport: a record's worth), so that a wake-up writes several.
inline constexpr size_t kMaxChunkPieceBytes = size_t{256} << 10;

/// Largest heap block a ring end keeps for its next chunked message (one per end): a fresh
/// block costs far more than the copy into it (page faults and zeroing: about 5x the memcpy of
/// 64 MiB here), so the block of a message this size or smaller is reused.
inline constexpr size_t kSpareBlockMaxBytes = size_t{128} << 20;

/// Largest message accepted (sent chunked or reassembled): a sealed frame with the largest
/// body frame.h allows, 1 GiB of data plus envelope overhead.
inline constexpr uint64_t kMaxMessageBytes = (uint64_t{1} << 30) + (uint64_t{1} << 20) + 16;

enum class RecordType : uint16_t { kFrame = 1, kPadding = 2, kChunk = 3 };
inline constexpr uint16_t kChunkFirst = 1;
inline constexpr uint16_t kChunkLast = 2;

/// How the consumer is woken (written by the consumer, read by the producer).
enum class BellKind : uint32_t { kFutex = 0, kPipe = 1 };

/// The header page; see the table above. Access it only through a mapping of a segment made
/// by create_ring(), or a test buffer of the same layout.
struct RingHeader {
  SegmentPrefix prefix;
  uint8_t reserved0[32];
  std::atomic<uint64_t> producer;
  std::atomic<uint64_t> consumer;
  std::atomic<uint32_t> producer_closed;
  std::atomic<uint32_t> consumer_closed;
  std::atomic<uint32_t> consumer_bell_kind;
  alignas(128) std::atomic<uint64_t> tail;
  alignas(128) std::atomic<uint64_t> head;
  alignas(128) std::atomic<uint32_t> consumer_bell;
  std::atomic<uint32_t> consumer_sleeping;
  alignas(128) std::atomic<uint32_t> producer_bell;
  std::atomic<uint32_t> producer_waiting;
};

static_assert(std::atomic<uint32_t>::is_always_lock_free, "u32 atomics must be lock-free");
static_assert(sizeof(std::atomic<uint32_t>) == 4, "an atomic u32 must be a plain u32 in memory");
static_assert(std::is_standard_layout_v<RingHeader>, "RingHeader is a memory layout");
static_assert(offsetof(RingHeader, producer) == 64, "layout: producer identity");
static_assert(offsetof(RingHeader, consumer) == 72, "layout: consumer identity");
static_assert(offsetof(RingHeader, producer_closed) == 80, "layout: producer_closed");
static_assert(offsetof(RingHeader, consumer_closed) == 84, "layout: consumer_closed");
static_assert(offsetof(RingHeader, consumer_bell_kind) == 88, "layout: consumer_bell_kind");
static_assert(offsetof(RingHeader, tail) == 128, "layout: tail");
static_assert(offsetof(RingHeader, head) == 256, "layout: head");
static_assert(offsetof(RingHeader, consumer_bell) == 384, "layout: consumer_bell");
static_assert(offsetof(RingHeader, consumer_sleeping) == 388, "layout: consumer_sleeping");
static_assert(offsetof(RingHeader, producer_bell) == 512, "layout: producer_bell");
static_assert(offsetof(RingHeader, producer_waiting) == 516, "layout: producer_waiting");
static_assert(sizeof(RingHeader) <= kRingHeaderBytes, "the header fits its page");

/// True for a power of two in [kMinRingCapacity, kMaxRingCapacity].
[[nodiscard]] bool valid_ring_capacity(uint64_t capacity) noexcept;

/// The segment spec of a ring of `capacity` bytes (0 when opening: any valid capacity).
[[nodiscard]] SegmentSpec ring_segment_spec(uint64_t capacity) noexcept;

/// Largest record of a ring of `capacity` bytes: half the data area.
[[nodiscard]] constexpr uint64_t max_record_bytes(uint64_t capacity) noexcept {
  return capacity / 2;
}

/// Creates the segment of a ring (shm.h create_segment with the ring spec), then unmaps it:
/// the creator keeps no mapping, it only unlinks the name later. kInvalidArgument for a
/// capacity that is not a power of two in range.
[[nodiscard]] Status create_ring(std::string_view name, uint64_t capacity, int* err) noexcept;

/// The memory of one ring: its header and data area, kept alive by `owner`.
struct RingMemory {
  std::shared_ptr<SegmentMapping> owner;
  RingHeader* header = nullptr;
  uint8_t* data = nullptr;
  uint64_t capacity = 0;
};

/// Maps ring `name` and checks its prefix (shm.h open_segment).
[[nodiscard]] Status open_ring_memory(std::string_view name, RingMemory* out, int* err) noexcept;

/// Views `bytes` (kRingHeaderBytes + capacity, 8-byte aligned) as a ring without a segment, for
/// tests and the fuzzer. The prefix is not checked; capacity must be valid.
[[nodiscard]] Status ring_memory_over(uint8_t* bytes, uint64_t capacity, RingMemory* out) noexcept;

/// Ring positions as one end sees them, for tests and metrics.
struct RingState {
  uint64_t head = 0;
  uint64_t tail = 0;
  uint64_t capacity = 0;
};

/// Bytes of a chunked message that the producer reads from caller memory rather than from the
/// message's heap block: [at, at + length) of the frame are `data[0 .. length)`.
struct BorrowedRange {
  const uint8_t* data = nullptr;
  size_t at = 0;
  size_t length = 0;
};

/// The writing end. See the threading rule at the top of this file.
class RingProducer {
 public:
  /// Claims the producer end of `memory`: CAS of this process's identity into the header.
  /// kRoleTaken when a live process holds it, kRoleAbandoned when a dead one did, kPeerClosed
  /// when a producer closed the ring before. `bell_name` is the segment name, used to find a
  /// pipe doorbell; empty for rings without one.
  [[nodiscard]] static Status attach(RingMemory memory, std::string_view bell_name,
                                     std::unique_ptr<RingProducer>* out) noexcept;
  /// Maps ring `name` and attaches to it.
  [[nodiscard]] static Status open(std::string_view name, std::unique_ptr<RingProducer>* out,
                                   int* err) noexcept;
  ~RingProducer();
  RingProducer(const RingProducer&) = delete;
  RingProducer& operator=(const RingProducer&) = delete;

  /// Content bytes of the largest record.
  [[nodiscard]] size_t max_content_bytes() const noexcept;

  /// Reserves a record with room for `content_bytes` and points `*content` at its content area
  /// of align_record(content_bytes) bytes (8-byte aligned, inside the data area, not split by
  /// the wrap). Nothing is visible to the
  /// consumer until commit(). kRingFull when there is no room now; kTooLarge above
  /// max_content_bytes(); kPeerDead, kPeerClosed, kClosed or a failed status otherwise. A second
  /// reserve() replaces an uncommitted reservation.
  [[nodiscard]] Status reserve(size_t content_bytes, uint8_t** content) noexcept;

  /// Publishes the reserved record as a FRAME whose sealed frame sits at
  /// `content + offset` and is `length` bytes long; offset is a multiple of 8 and
  /// offset + length fits the reservation. When offset is 0 the record shrinks to fit the
  /// content, so a generous reservation costs no ring space. Wakes a sleeping consumer.
  [[nodiscard]] Status commit(size_t offset, size_t length) noexcept;

  /// Drops the current reservation; nothing is published.
  void abandon() noexcept;

  /// Copies a sealed frame into one record, or, when larger than one record, into the heap and
  /// on into CHUNK records (write_message_chunked). kOk, kWritePending or kRingFull (nothing
  /// taken; retry later), or a failure.
  [[nodiscard]] Status write_frame(const uint8_t* frame, size_t length) noexcept;

  /// Takes `block` (memory from std::malloc or take_block(), freed with std::free when written
  /// or on close, or kept for take_block() when `block_bytes`, its size, is known and at most
  /// kSpareBlockMaxBytes) holding a sealed frame of `length` bytes at `block + offset`, and
  /// writes the frame as CHUNK records, as many as fit now. kOk when every chunk is in the
  /// ring; kWritePending when the rest waits for space (flush() continues; later writes queue
  /// behind it); kRingFull when an earlier message is still pending; kTooLarge above
  /// kMaxMessageBytes. Only kOk and kWritePending take the block; otherwise it stays the
  /// caller's (give it back with give_block()).
  ///
  /// With `borrowed`, bytes [borrowed->at, borrowed->at + borrowed->length) of the frame are
  /// not read from the block (they may be left unwritten there) but from `borrowed->data`,
  /// caller memory that must stay valid and unchanged until borrowing() turns false or this
  /// end closes: a large payload then goes from its owner straight into the ring, one copy.
  [[nodiscard]] Status write_message_chunked(uint8_t* block, size_t offset, size_t length,
                                             size_t block_bytes = 0,
                                             const BorrowedRange* borrowed = nullptr) noexcept;

  /// An 8-byte aligned heap block of at least `bytes` (a multiple of 8) for a chunked message:
  /// the spare of an earlier message when it is large enough, else a new one. Null when out of
  /// memory. Hand it to write_message_chunked() with its size, or back with give_block().
  [[nodiscard]] uint8_t* take_block(size_t bytes) noexcept;

  /// Takes back a block of take_block() that was not written: kept as the spare or freed.
  void give_block(uint8_t* block, size_t bytes) noexcept;

  /// Writes more chunks of the pending message. kOk when nothing is pending any more,
  /// kWritePending when chunks remain, or a failure.
  [[nodiscard]] Status flush() noexcept;

  /// True while a chunked message is pending.
  [[nodiscard]] bool has_pending() const noexcept { return pending_ != nullptr; }

  /// True while a pending chunked message still has bytes to read from a BorrowedRange.
  [[nodiscard]] bool borrowing() const noexcept {
    return pending_ != nullptr && pending_done_ < borrowed_.at + borrowed_.length;
  }

  /// Free bytes in the ring now (from a fresh load of head).
  [[nodiscard]] uint64_t free_bytes() noexcept;

  /// kOk while the consumer end is usable: kPeerDead when its holder died (checked at most
  /// every 20 ms; the result is cached), kPeerClosed when it closed.
  [[nodiscard]] Status check_consumer() noexcept;

  /// Marks the consumer dead (the doorbell thread found it so); writes then fail kPeerDead.
  void set_consumer_dead() noexcept { consumer_dead_.store(true, std::memory_order_relaxed); }

  /// Sets producer_closed, wakes the consumer so it sees it, and stops this end. Records
  /// already committed stay readable. Idempotent. A pending message is dropped.
  void close() noexcept;

  [[nodiscard]] bool is_closed() const noexcept { return closed_; }
  [[nodiscard]] const RingMemory& memory() const noexcept { return memory_; }
  [[nodiscard]] RingState state() const noexcept;
  /// Position after the last committed record (the local copy of tail).
  [[nodiscard]] uint64_t tail() const noexcept { return tail_; }

 private:
  RingProducer(RingMemory memory, std::string_view bell_name) noexcept;
  [[nodiscard]] Status usable() noexcept;
  [[nodiscard]] Status reserve_record(uint64_t record_bytes, uint64_t* position) noexcept;
  [[nodiscard]] Status load_head(uint64_t* head) noexcept;
  [[nodiscard]] Status write_chunks() noexcept;
  void copy_pending(uint8_t* out, size_t from, size_t n) const noexcept;
  void publish(uint64_t new_tail) noexcept;
  void wake_consumer() noexcept;
  void fail(Status s) noexcept;

  RingMemory memory_;
  std::string bell_path_;
  int bell_fd_ = -1;
  uint64_t mask_;
  uint64_t tail_;         // local copy; the producer is the only writer of tail
  uint64_t head_cache_;   // last head loaded from the segment
  uint64_t reserved_at_;  // position of the reserved record, or ~0 when none
  uint64_t reserved_bytes_ = 0;
  uint64_t reserved_pad_ = 0;
  uint8_t* pending_block_ = nullptr;  // malloc'd block of the chunked message being written
  size_t pending_block_bytes_ = 0;    // its size, 0 when not known
  const uint8_t* pending_ = nullptr;  // the message inside it
  uint8_t* spare_ = nullptr;          // a written message's block, kept for the next one
  size_t spare_bytes_ = 0;
  size_t pending_length_ = 0;
  size_t pending_done_ = 0;
  BorrowedRange borrowed_;  // length 0 when the whole message is in the block
  uint64_t last_liveness_check_ns_ = 0;
  Status failed_ = Status::kOk;
  std::atomic<bool> consumer_dead_{false};
  bool closed_ = false;
};

/// One verified frame of a batch: a sealed frame of `length` bytes at `data`.
struct RecordSpan {
  const uint8_t* data = nullptr;
  uint32_t length = 0;
};

/// Called by read_batch() for each verified frame before it joins the batch; `index` is its
/// place in the batch and `base` the first byte of the batch region (RecordBatch::region).
/// kOk takes the record. kOutputTooSmall leaves it (and everything after it) in the ring for
/// the next call: the batch ends before it, and when it is the first record read_batch()
/// returns kOutputTooSmall. Any other status is a bad record: the end fails with it.
using RecordVisitor = Status (*)(void* context, const RecordSpan& span, size_t index,
                                 const uint8_t* base);

/// What read_batch() returned: `count` records, all inside [region, region + region_bytes).
/// For a reassembled chunked message the region is consumer-owned heap memory holding exactly
/// that one message; otherwise it is the data area from the first record's frame to the end
/// of the last record, one contiguous piece (a batch stops at the wrap).
struct RecordBatch {
  const uint8_t* region = nullptr;
  size_t region_bytes = 0;
  size_t count = 0;
  uint64_t end = 0;  // position that becomes head when the batch is released
  bool reassembled = false;
};

/// The reading end. See the threading rule at the top of this file.
class RingConsumer {
 public:
  /// Claims the consumer end of `memory` (see RingProducer::attach for the statuses).
  /// `bell_kind` is written to the header for the producer's wake path.
  [[nodiscard]] static Status attach(RingMemory memory, BellKind bell_kind,
                                     std::unique_ptr<RingConsumer>* out) noexcept;
  /// Maps ring `name` and attaches to it.
  [[nodiscard]] static Status open(std::string_view name, BellKind bell_kind,
                                   std::unique_ptr<RingConsumer>* out, int* err) noexcept;
  ~RingConsumer();
  RingConsumer(const RingConsumer&) = delete;
  RingConsumer& operator=(const RingConsumer&) = delete;

  /// Reads the next records: at most `max_records` (and `spans` must hold that many), and
  /// while their total stays within `max_bytes` (the first record always counts, however
  /// large). Each FRAME record is verified with verify_frame() before it is returned; chunks
  /// are copied into the reassembly buffer as they arrive (and released at once when no batch
  /// is outstanding), and a completed message comes back alone, verified, as a batch with
  /// `reassembled` set. Stops at the wrap, at an unverifiable record (returned as the status of
  /// the next call), and when records run out.
  ///
  /// `visitor` (may be null) sees each verified frame first and may refuse it (RecordVisitor).
  ///
  /// kOk with out->count >= 1; kRingEmpty (nothing now; also while a chunked message is
  /// incomplete); kPeerClosed when the producer closed and everything was read;
  /// kOutputTooSmall from the visitor; a verify_frame status or kCorruptRecord (the end is
  /// failed from then on); kNoMemory; kClosed; kInvalidArgument while a reassembled message
  /// is outstanding (release it first).
  [[nodiscard]] Status read_batch(size_t max_records, size_t max_bytes, RecordSpan* spans,
                                  RecordBatch* out, RecordVisitor visitor = nullptr,
                                  void* visitor_context = nullptr) noexcept;

  /// Releases `batch` (and every batch read before it): its bytes go back to the producer.
  /// Batches are released in the order they were read. kInvalidArgument for a batch that is
  /// not the oldest outstanding one.
  [[nodiscard]] Status release(const RecordBatch& batch) noexcept;

  /// Hands the reassembly buffer (std::malloc memory) to the caller, who frees it; the end
  /// forgets it. For a binding whose views of a reassembled batch may outlive this object.
  [[nodiscard]] uint8_t* take_message() noexcept;

  /// Position after the last record returned or consumed by read_batch().
  [[nodiscard]] uint64_t read_position() const noexcept { return read_pos_; }

  /// True when the producer has committed records not yet read (one acquire load of tail).
  [[nodiscard]] bool has_unread() const noexcept;

  /// kOk while the producer end is usable or not yet attached; kPeerDead when its holder died.
  [[nodiscard]] Status check_producer() noexcept;

  /// Sets consumer_closed, wakes a producer waiting for space, frees the reassembly buffer
  /// and the spare block.
  /// Batches already returned stay readable until the memory is unmapped. Idempotent.
  void close() noexcept;

  [[nodiscard]] bool is_closed() const noexcept { return closed_; }
  [[nodiscard]] const RingMemory& memory() const noexcept { return memory_; }
  [[nodiscard]] RingState state() const noexcept;

 private:
  RingConsumer(RingMemory memory) noexcept;
  [[nodiscard]] Status load_tail(uint64_t* tail) noexcept;
  [[nodiscard]] Status take_chunk(uint64_t position, uint16_t flags, uint32_t offset,
                                  uint32_t length, bool* complete) noexcept;
  [[nodiscard]] Status offer_message(RecordSpan* spans, RecordBatch* out, RecordVisitor visitor,
                                     void* visitor_context) noexcept;
  void consume(uint64_t new_read_pos) noexcept;
  void set_head(uint64_t head) noexcept;
  [[nodiscard]] Status fail(Status s) noexcept;
  void free_message() noexcept;

  RingMemory memory_;
  uint64_t mask_;
  uint64_t head_;        // local copy; the consumer is the only writer of head
  uint64_t read_pos_;    // next record to read; head_ <= read_pos_
  uint64_t tail_cache_;  // last tail loaded from the segment
  uint64_t batch_end_;   // end of the newest batch returned; == head_ when none is outstanding
  uint8_t* message_ = nullptr;   // reassembly buffer (malloc'd)
  size_t message_capacity_ = 0;  // its size; the message may be shorter (a reused block)
  uint8_t* spare_ = nullptr;     // a released message's block, kept for the next one
  size_t spare_bytes_ = 0;
  size_t message_length_ = 0;
  size_t message_filled_ = 0;
  uint64_t message_end_ = 0;       // read position after the message's last chunk
  bool message_complete_ = false;  // every chunk is in and verified; not yet taken
  bool message_ready_ = false;     // returned in a batch; freed on release
  Status failed_ = Status::kOk;
  bool closed_ = false;
};

/// The consumer's half of the sleep handshake (doorbell.h explains the lost-wake-up argument):
/// sets consumer_sleeping, then, after a seq_cst fence, checks whether the producer has
/// committed past `read_position`. True when nothing arrived: the caller may sleep until the
/// producer swaps consumer_sleeping back to 0 and rings. False when records arrived: the flag
/// is cleared again and the caller reads instead of sleeping.
[[nodiscard]] bool announce_consumer_sleep(RingHeader* header, uint64_t read_position) noexcept;

/// The producer's half of the space handshake: sets producer_waiting, then, after a seq_cst
/// fence, checks whether at least `want` bytes are free behind `tail`. True when they are not
/// (the caller may sleep until the consumer releases and rings), false when they are (the flag
/// is cleared again).
[[nodiscard]] bool announce_producer_wait(RingHeader* header, uint64_t tail, uint64_t want,
                                          uint64_t capacity) noexcept;

/// Rounds `n` up to a multiple of kRecordAlignment.
[[nodiscard]] constexpr uint64_t align_record(uint64_t n) noexcept {
  return (n + (kRecordAlignment - 1)) & ~uint64_t{kRecordAlignment - 1};
}

}  // namespace disco

#endif  // DISCO_NATIVE_RING_H_
