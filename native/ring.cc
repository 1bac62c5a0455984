// The shared-memory SPSC ring; layout, protocol and contracts are in ring.h.

#include "ring.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "doorbell.h"
#include "frame.h"

// Each side keeps the other's index in process-local memory (head_cache_, tail_cache_) and
// reloads it from the segment only when the cached value says "full" or "empty". Measured with
// ring_threads_test (10 M frames of 216 bytes, 1 MiB ring, 2 cores shared with other work,
// three alternating runs each, twice): under load 4.0-5.6 s with the cache, 5.3-7.1 s without;
// quieter, 1.24-1.70 s with, 1.70-2.70 s without. Without it every reserve and every read
// loads the other side's line, which then moves between the cores. The cache stays.
// DISCO_RING_NO_INDEX_CACHE=1 turns it off to measure again.
#ifndef DISCO_RING_NO_INDEX_CACHE
#define DISCO_RING_NO_INDEX_CACHE 0
#endif

namespace disco {

namespace {

constexpr uint64_t kNoReservation = ~uint64_t{0};

/// A chunk is not worth a record below this (unless it is the message's last piece): the
/// producer waits for more space instead of cutting slivers.
constexpr size_t kMinChunkPiece = 4096;

/// How often the write path may look at the consumer's /proc entry when the ring is full.
constexpr uint64_t kLivenessIntervalNs = 20'000'000;

uint64_t monotonic_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

/// The fields of a record header, read once from the segment.
struct RecordFields {
  uint32_t record_bytes;
  uint16_t type;
  uint16_t flags;
  uint32_t content_offset;
  uint32_t content_length;
};

/// Reads the first 8 bytes of the record at `p` (all a padding record is sure to have).
void read_record_start(const uint8_t* p, RecordFields* f) noexcept {
  std::memcpy(&f->record_bytes, p, 4);
  std::memcpy(&f->type, p + 4, 2);
  std::memcpy(&f->flags, p + 6, 2);
}

void read_record_rest(const uint8_t* p, RecordFields* f) noexcept {
  std::memcpy(&f->content_offset, p + 8, 4);
  std::memcpy(&f->content_length, p + 12, 4);
}

void write_record_header(uint8_t* p, uint32_t record_bytes, RecordType type, uint16_t flags,
                         uint32_t content_offset, uint32_t content_length) noexcept {
  const auto t = static_cast<uint16_t>(type);
  std::memcpy(p, &record_bytes, 4);
  std::memcpy(p + 4, &t, 2);
  std::memcpy(p + 6, &flags, 2);
  std::memcpy(p + 8, &content_offset, 4);
  std::memcpy(p + 12, &content_length, 4);
}

void write_padding(uint8_t* p, uint32_t bytes) noexcept {
  const auto t = static_cast<uint16_t>(RecordType::kPadding);
  const uint16_t flags = 0;
  std::memcpy(p, &bytes, 4);
  std::memcpy(p + 4, &t, 2);
  std::memcpy(p + 6, &flags, 2);
}

/// Claims `slot` for this process (see RingProducer::attach).
Status claim_role(std::atomic<uint64_t>* slot) noexcept {
  const uint64_t self = self_identity();
  if (self == 0) return Status::kSystemError;
  uint64_t holder = 0;
  // acq_rel on success: our later writes to the ring are ordered after the claim, and we see
  // whatever the creator wrote. acquire on failure: we read the holder's identity.
  if (slot->compare_exchange_strong(holder, self, std::memory_order_acq_rel,
                                    std::memory_order_acquire)) {
    return Status::kOk;
  }
  if (holder == self || is_alive(holder)) return Status::kRoleTaken;
  return Status::kRoleAbandoned;
}

}  // namespace

// ---- segment -------------------------------------------------------------------------------

bool valid_ring_capacity(uint64_t capacity) noexcept {
  return capacity >= kMinRingCapacity && capacity <= kMaxRingCapacity &&
         (capacity & (capacity - 1)) == 0;
}

SegmentSpec ring_segment_spec(uint64_t capacity) noexcept {
  SegmentSpec spec;
  spec.magic = kRingMagic;
  spec.layout_version = kRingLayoutVersion;
  spec.header_bytes = kRingHeaderBytes;
  spec.capacity = capacity;
  spec.valid_capacity = valid_ring_capacity;
  return spec;
}

Status create_ring(std::string_view name, uint64_t capacity, int* err) noexcept {
  if (!valid_ring_capacity(capacity)) return Status::kInvalidArgument;
  std::unique_ptr<SegmentMapping> mapping;
  // Every ring field starts at zero, which is what ftruncate gave us: positions 0, no roles,
  // nobody closed or sleeping, a futex doorbell.
  return create_segment(name, ring_segment_spec(capacity), &mapping, err);
}

namespace {

Status memory_from_mapping(std::shared_ptr<SegmentMapping> mapping, RingMemory* out) noexcept {
  uint8_t* base = mapping->data();
  out->header = reinterpret_cast<RingHeader*>(base);
  out->capacity = out->header->prefix.capacity;
  out->data = base + kRingHeaderBytes;
  out->owner = std::move(mapping);
  return Status::kOk;
}

}  // namespace

Status open_ring_memory(std::string_view name, RingMemory* out, int* err) noexcept {
  std::unique_ptr<SegmentMapping> mapping;
  const Status s = open_segment(name, ring_segment_spec(0), &mapping, err);
  if (s != Status::kOk) return s;
  // shared_ptr's control block is allocated; with -fno-exceptions a failure aborts, which is
  // the one allocation here we accept that for (it is 24 bytes, once per ring end).
  return memory_from_mapping(std::shared_ptr<SegmentMapping>(std::move(mapping)), out);
}

Status ring_memory_over(uint8_t* bytes, uint64_t capacity, RingMemory* out) noexcept {
  if (bytes == nullptr || !valid_ring_capacity(capacity) ||
      reinterpret_cast<uintptr_t>(bytes) % kRecordAlignment != 0) {
    return Status::kInvalidArgument;
  }
  out->owner = nullptr;
  out->header = reinterpret_cast<RingHeader*>(bytes);
  out->data = bytes + kRingHeaderBytes;
  out->capacity = capacity;
  return Status::kOk;
}

bool announce_consumer_sleep(RingHeader* header, uint64_t read_position) noexcept {
  header->consumer_sleeping.store(1, std::memory_order_relaxed);
  // Pairs with the fence in RingProducer::wake_consumer(); see doorbell.h.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const bool idle = header->tail.load(std::memory_order_relaxed) == read_position &&
                    header->producer_closed.load(std::memory_order_relaxed) == 0;
  if (!idle) header->consumer_sleeping.store(0, std::memory_order_relaxed);
  return idle;
}

bool announce_producer_wait(RingHeader* header, uint64_t tail, uint64_t want,
                            uint64_t capacity) noexcept {
  header->producer_waiting.store(1, std::memory_order_relaxed);
  // Pairs with the fence in RingConsumer::set_head(); see doorbell.h.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint64_t head = header->head.load(std::memory_order_relaxed);
  const bool full =
      head + capacity - tail < want && header->consumer_closed.load(std::memory_order_relaxed) == 0;
  if (!full) header->producer_waiting.store(0, std::memory_order_relaxed);
  return full;
}

// ---- producer ------------------------------------------------------------------------------

RingProducer::RingProducer(RingMemory memory, std::string_view bell_name) noexcept
    : memory_(std::move(memory)),
      mask_(memory_.capacity - 1),
      tail_(0),
      head_cache_(0),
      reserved_at_(kNoReservation) {
  if (!bell_name.empty()) bell_path_ = pipe_bell_path(bell_name);
}

RingProducer::~RingProducer() { close(); }

Status RingProducer::attach(RingMemory memory, std::string_view bell_name,
                            std::unique_ptr<RingProducer>* out) noexcept {
  RingHeader* h = memory.header;
  if (h == nullptr || !valid_ring_capacity(memory.capacity)) return Status::kInvalidArgument;
  if (h->producer_closed.load(std::memory_order_acquire) != 0) return Status::kPeerClosed;
  const Status claimed = claim_role(&h->producer);
  if (claimed != Status::kOk) return claimed;
  std::unique_ptr<RingProducer> p(new (std::nothrow) RingProducer(std::move(memory), bell_name));
  if (!p) {
    h->producer.store(0, std::memory_order_release);
    return Status::kNoMemory;
  }
  // Only a producer writes tail and roles are never taken over, so tail is where the creator
  // left it (0); the checks catch a segment scribbled on before we came.
  const uint64_t tail = h->tail.load(std::memory_order_relaxed);
  const uint64_t head = h->head.load(std::memory_order_acquire);
  if (tail % kRecordAlignment != 0 || head % kRecordAlignment != 0 || head > tail ||
      tail - head > p->memory_.capacity) {
    p->fail(Status::kCorruptRecord);
    p->closed_ = true;  // do not mark the shared ring closed on the way out
    return Status::kCorruptRecord;
  }
  p->tail_ = tail;
  p->head_cache_ = head;
  *out = std::move(p);
  return Status::kOk;
}

Status RingProducer::open(std::string_view name, std::unique_ptr<RingProducer>* out,
                          int* err) noexcept {
  RingMemory memory;
  const Status s = open_ring_memory(name, &memory, err);
  if (s != Status::kOk) return s;
  return attach(std::move(memory), name, out);
}

size_t RingProducer::max_content_bytes() const noexcept {
  return static_cast<size_t>(max_record_bytes(memory_.capacity) - kRecordHeaderBytes);
}

void RingProducer::fail(Status s) noexcept {
  if (failed_ == Status::kOk) failed_ = s;
}

Status RingProducer::usable() noexcept {
  if (closed_) return Status::kClosed;
  if (failed_ != Status::kOk) return failed_;
  if (consumer_dead_.load(std::memory_order_relaxed)) return Status::kPeerDead;
  if (memory_.header->consumer_closed.load(std::memory_order_relaxed) != 0) {
    return Status::kPeerClosed;
  }
  return Status::kOk;
}

Status RingProducer::load_head(uint64_t* head) noexcept {
  // Acquire pairs with the consumer's release store of head: its reads of the bytes below
  // head are done before we overwrite them.
  const uint64_t h = memory_.header->head.load(std::memory_order_acquire);
  if (h % kRecordAlignment != 0 || h > tail_ || tail_ - h > memory_.capacity || h < head_cache_) {
    fail(Status::kCorruptRecord);
    return Status::kCorruptRecord;
  }
  *head = h;
  return Status::kOk;
}

Status RingProducer::check_consumer() noexcept {
  if (consumer_dead_.load(std::memory_order_relaxed)) return Status::kPeerDead;
  const RingHeader* h = memory_.header;
  if (h->consumer_closed.load(std::memory_order_acquire) != 0) return Status::kPeerClosed;
  const uint64_t now = monotonic_ns();
  if (now - last_liveness_check_ns_ < kLivenessIntervalNs) return Status::kOk;
  last_liveness_check_ns_ = now;
  const uint64_t consumer = h->consumer.load(std::memory_order_acquire);
  if (consumer != 0 && !is_alive(consumer)) {
    consumer_dead_.store(true, std::memory_order_relaxed);
    return Status::kPeerDead;
  }
  return Status::kOk;
}

uint64_t RingProducer::free_bytes() noexcept {
  uint64_t head = head_cache_;
  if (load_head(&head) == Status::kOk) head_cache_ = head;
  return memory_.capacity - (tail_ - head_cache_);
}

Status RingProducer::reserve_record(uint64_t record_bytes, uint64_t* position) noexcept {
  const uint64_t capacity = memory_.capacity;
  const uint64_t to_end = capacity - (tail_ & mask_);
  const uint64_t pad = record_bytes > to_end ? to_end : 0;
  const uint64_t need = pad + record_bytes;
  if (DISCO_RING_NO_INDEX_CACHE || capacity - (tail_ - head_cache_) < need) {
    uint64_t head = 0;
    if (Status s = load_head(&head); s != Status::kOk) return s;
    head_cache_ = head;
    if (capacity - (tail_ - head_cache_) < need) {
      const Status c = check_consumer();
      return c == Status::kOk ? Status::kRingFull : c;
    }
  }
  reserved_at_ = tail_ + pad;
  reserved_bytes_ = record_bytes;
  reserved_pad_ = pad;
  *position = reserved_at_;
  return Status::kOk;
}

Status RingProducer::reserve(size_t content_bytes, uint8_t** content) noexcept {
  reserved_at_ = kNoReservation;
  if (Status s = usable(); s != Status::kOk) return s;
  if (content_bytes > max_content_bytes()) return Status::kTooLarge;
  if (pending_ != nullptr) {
    // FIFO: a record may not overtake the rest of a chunked message.
    const Status s = flush();
    if (s == Status::kWritePending) return Status::kRingFull;
    if (s != Status::kOk) return s;
  }
  uint64_t position = 0;
  const Status s = reserve_record(align_record(kRecordHeaderBytes + content_bytes), &position);
  if (s != Status::kOk) return s;
  *content = memory_.data + (position & mask_) + kRecordHeaderBytes;
  return Status::kOk;
}

void RingProducer::abandon() noexcept { reserved_at_ = kNoReservation; }

Status RingProducer::commit(size_t offset, size_t length) noexcept {
  if (reserved_at_ == kNoReservation) return Status::kInvalidArgument;
  const uint64_t content_capacity = reserved_bytes_ - kRecordHeaderBytes;
  if (offset % kRecordAlignment != 0 || length == 0 || offset > content_capacity ||
      length > content_capacity - offset) {
    return Status::kInvalidArgument;
  }
  const uint64_t record_bytes =
      offset == 0 ? align_record(kRecordHeaderBytes + length) : reserved_bytes_;
  uint8_t* record = memory_.data + (reserved_at_ & mask_);
  write_record_header(record, static_cast<uint32_t>(record_bytes), RecordType::kFrame, 0,
                      static_cast<uint32_t>(kRecordHeaderBytes + offset),
                      static_cast<uint32_t>(length));
  if (reserved_pad_ != 0) {
    write_padding(memory_.data + (tail_ & mask_), static_cast<uint32_t>(reserved_pad_));
  }
  const uint64_t new_tail = reserved_at_ + record_bytes;
  reserved_at_ = kNoReservation;
  publish(new_tail);
  return Status::kOk;
}

void RingProducer::publish(uint64_t new_tail) noexcept {
  tail_ = new_tail;
  // Release pairs with the consumer's acquire load of tail: every byte of the records below
  // new_tail, padding included, is visible to it before the new tail is.
  memory_.header->tail.store(new_tail, std::memory_order_release);
  wake_consumer();
}

void RingProducer::wake_consumer() noexcept {
  RingHeader* h = memory_.header;
  // Pairs with the fence in announce_consumer_sleep(); the argument is in doorbell.h.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (h->consumer_sleeping.load(std::memory_order_relaxed) == 0) return;
  // Only the exchange that takes 1 to 0 rings: one wake-up per sleep.
  if (h->consumer_sleeping.exchange(0, std::memory_order_acq_rel) == 0) return;
  if (static_cast<BellKind>(h->consumer_bell_kind.load(std::memory_order_relaxed)) ==
      BellKind::kPipe) {
    if (bell_fd_ < 0 && !bell_path_.empty()) {
      bell_fd_ = ::open(bell_path_.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    }
    if (bell_fd_ >= 0) {
      const uint8_t byte = 1;
      // EAGAIN: the pipe is full of unread wake-ups, which is as good as one more.
      (void)!::write(bell_fd_, &byte, 1);
    }
    return;
  }
  // Release: the consumer that sees the new bell value also sees the tail stored above.
  h->consumer_bell.fetch_add(1, std::memory_order_release);
  futex_wake_shared(&h->consumer_bell, 1);
}

Status RingProducer::write_frame(const uint8_t* frame, size_t length) noexcept {
  if (frame == nullptr || length == 0) return Status::kInvalidArgument;
  if (length <= max_content_bytes()) {
    uint8_t* content = nullptr;
    const Status s = reserve(length, &content);
    if (s != Status::kOk) return s;
    std::memcpy(content, frame, length);
    return commit(0, length);
  }
  if (Status s = usable(); s != Status::kOk) return s;
  if (length > kMaxMessageBytes) return Status::kTooLarge;
  if (pending_ != nullptr) {
    const Status s = flush();
    if (s == Status::kWritePending) return Status::kRingFull;
    if (s != Status::kOk) return s;
  }
  const size_t bytes = align_record(length);
  uint8_t* copy = take_block(bytes);
  if (copy == nullptr) return Status::kNoMemory;
  std::memcpy(copy, frame, length);
  const Status s = write_message_chunked(copy, 0, length, bytes);
  if (s != Status::kOk && s != Status::kWritePending) give_block(copy, bytes);
  return s;
}

uint8_t* RingProducer::take_block(size_t bytes) noexcept {
  if (spare_ != nullptr && spare_bytes_ >= bytes) {
    uint8_t* block = spare_;
    spare_ = nullptr;
    spare_bytes_ = 0;
    return block;
  }
  std::free(spare_);
  spare_ = nullptr;
  spare_bytes_ = 0;
  return static_cast<uint8_t*>(std::aligned_alloc(kRecordAlignment, align_record(bytes)));
}

void RingProducer::give_block(uint8_t* block, size_t bytes) noexcept {
  if (block == nullptr) return;
  if (closed_ || bytes == 0 || bytes > kSpareBlockMaxBytes || bytes <= spare_bytes_) {
    std::free(block);
    return;
  }
  std::free(spare_);
  spare_ = block;
  spare_bytes_ = bytes;
}

Status RingProducer::write_message_chunked(uint8_t* block, size_t offset, size_t length,
                                           size_t block_bytes,
                                           const BorrowedRange* borrowed) noexcept {
  if (block == nullptr || length == 0) return Status::kInvalidArgument;
  if (borrowed != nullptr && borrowed->length != 0 &&
      (borrowed->data == nullptr || borrowed->at > length ||
       borrowed->length > length - borrowed->at)) {
    return Status::kInvalidArgument;
  }
  if (Status s = usable(); s != Status::kOk) return s;
  if (length > kMaxMessageBytes) return Status::kTooLarge;
  if (pending_ != nullptr) {
    const Status s = flush();
    if (s == Status::kWritePending) return Status::kRingFull;
    if (s != Status::kOk) return s;
  }
  reserved_at_ = kNoReservation;
  pending_block_ = block;
  pending_block_bytes_ = block_bytes;
  pending_ = block + offset;
  pending_length_ = length;
  pending_done_ = 0;
  borrowed_ = borrowed != nullptr ? *borrowed : BorrowedRange{};
  return write_chunks();
}

void RingProducer::copy_pending(uint8_t* out, size_t from, size_t n) const noexcept {
  // Up to three runs: block bytes before the borrowed range, borrowed bytes, block bytes after.
  const size_t borrow_begin = borrowed_.at;
  const size_t borrow_end = borrowed_.at + borrowed_.length;
  const size_t end = from + n;
  while (from < end) {
    size_t run_end;
    const uint8_t* src;
    if (from >= borrow_begin && from < borrow_end) {
      run_end = end < borrow_end ? end : borrow_end;
      src = borrowed_.data + (from - borrow_begin);
    } else {
      run_end = from < borrow_begin && end > borrow_begin ? borrow_begin : end;
      src = pending_ + from;
    }
    std::memcpy(out, src, run_end - from);
    out += run_end - from;
    from = run_end;
  }
}

Status RingProducer::flush() noexcept {
  if (pending_ == nullptr) return Status::kOk;
  if (Status s = usable(); s != Status::kOk) return s;
  return write_chunks();
}

Status RingProducer::write_chunks() noexcept {
  const uint64_t capacity = memory_.capacity;
  constexpr uint64_t kOverhead = kRecordHeaderBytes + kChunkPrefixBytes;
  const uint64_t record_piece = (max_record_bytes(capacity) - kOverhead) & ~uint64_t{7};
  const uint64_t max_piece =
      record_piece < kMaxChunkPieceBytes ? record_piece : uint64_t{kMaxChunkPieceBytes};
  bool wrote = false;
  while (pending_done_ < pending_length_) {
    const uint64_t remaining = pending_length_ - pending_done_;
    uint64_t head = head_cache_;
    if (Status s = load_head(&head); s != Status::kOk) return s;
    head_cache_ = head;
    const uint64_t free = capacity - (tail_ - head);
    const uint64_t to_end = capacity - (tail_ & mask_);
    // Prefer the space before the end of the data area; pad to the start only when what is
    // left there is too small to be worth a chunk.
    const uint64_t wanted = remaining < kMinChunkPiece ? remaining : kMinChunkPiece;
    uint64_t pad = 0;
    uint64_t room = free < to_end ? free : to_end;
    if (room < kOverhead + wanted && free > to_end) {
      pad = to_end;
      room = free - to_end;
    }
    const uint64_t usable_piece = room > kOverhead ? (room - kOverhead) & ~uint64_t{7} : 0;
    uint64_t piece = remaining < max_piece ? remaining : max_piece;
    if (piece > usable_piece) piece = usable_piece;
    if (piece < wanted) break;

    uint16_t flags = 0;
    if (pending_done_ == 0) flags |= kChunkFirst;
    if (piece == remaining) flags |= kChunkLast;
    if (pad != 0) write_padding(memory_.data + (tail_ & mask_), static_cast<uint32_t>(pad));
    const uint64_t position = tail_ + pad;
    uint8_t* record = memory_.data + (position & mask_);
    const uint64_t record_bytes = align_record(kOverhead + piece);
    write_record_header(record, static_cast<uint32_t>(record_bytes), RecordType::kChunk, flags,
                        static_cast<uint32_t>(kRecordHeaderBytes),
                        static_cast<uint32_t>(kChunkPrefixBytes + piece));
    const uint64_t total = pending_length_;
    std::memcpy(record + kRecordHeaderBytes, &total, sizeof(total));
    copy_pending(record + kOverhead, pending_done_, piece);
    pending_done_ += piece;
    // Publish each chunk at once so that the consumer copies it out while we write the next.
    publish(position + record_bytes);
    wrote = true;
  }
  if (pending_done_ == pending_length_) {
    give_block(pending_block_, pending_block_bytes_);
    pending_block_ = nullptr;
    pending_block_bytes_ = 0;
    pending_ = nullptr;
    borrowed_ = BorrowedRange{};
    return Status::kOk;
  }
  if (!wrote) {
    const Status c = check_consumer();
    if (c != Status::kOk) return c;
  }
  return Status::kWritePending;
}

void RingProducer::close() noexcept {
  if (closed_) return;
  closed_ = true;
  reserved_at_ = kNoReservation;
  std::free(pending_block_);
  pending_block_ = nullptr;
  pending_block_bytes_ = 0;
  pending_ = nullptr;
  borrowed_ = BorrowedRange{};
  std::free(spare_);
  spare_ = nullptr;
  spare_bytes_ = 0;
  RingHeader* h = memory_.header;
  // Release: a consumer that sees the flag sees every record committed before it.
  h->producer_closed.store(1, std::memory_order_release);
  wake_consumer();
  if (bell_fd_ >= 0) ::close(bell_fd_);
  bell_fd_ = -1;
}

RingState RingProducer::state() const noexcept {
  return RingState{memory_.header->head.load(std::memory_order_acquire), tail_, memory_.capacity};
}

// ---- consumer ------------------------------------------------------------------------------

RingConsumer::RingConsumer(RingMemory memory) noexcept
    : memory_(std::move(memory)),
      mask_(memory_.capacity - 1),
      head_(0),
      read_pos_(0),
      tail_cache_(0),
      batch_end_(0) {}

RingConsumer::~RingConsumer() { close(); }

Status RingConsumer::attach(RingMemory memory, BellKind bell_kind,
                            std::unique_ptr<RingConsumer>* out) noexcept {
  RingHeader* h = memory.header;
  if (h == nullptr || !valid_ring_capacity(memory.capacity)) return Status::kInvalidArgument;
  if (h->consumer_closed.load(std::memory_order_acquire) != 0) return Status::kPeerClosed;
  const Status claimed = claim_role(&h->consumer);
  if (claimed != Status::kOk) return claimed;
  std::unique_ptr<RingConsumer> c(new (std::nothrow) RingConsumer(std::move(memory)));
  if (!c) {
    h->consumer.store(0, std::memory_order_release);
    return Status::kNoMemory;
  }
  h->consumer_bell_kind.store(static_cast<uint32_t>(bell_kind), std::memory_order_relaxed);
  const uint64_t head = h->head.load(std::memory_order_relaxed);
  if (head % kRecordAlignment != 0) {
    c->failed_ = Status::kCorruptRecord;
    c->closed_ = true;  // do not mark the shared ring closed on the way out
    return Status::kCorruptRecord;
  }
  c->head_ = c->read_pos_ = c->tail_cache_ = c->batch_end_ = head;
  *out = std::move(c);
  return Status::kOk;
}

Status RingConsumer::open(std::string_view name, BellKind bell_kind,
                          std::unique_ptr<RingConsumer>* out, int* err) noexcept {
  RingMemory memory;
  const Status s = open_ring_memory(name, &memory, err);
  if (s != Status::kOk) return s;
  return attach(std::move(memory), bell_kind, out);
}

Status RingConsumer::fail(Status s) noexcept {
  if (failed_ == Status::kOk) failed_ = s;
  return failed_;
}

Status RingConsumer::load_tail(uint64_t* tail) noexcept {
  // Acquire pairs with the producer's release store in publish(): the records below the
  // loaded tail are completely written.
  const uint64_t t = memory_.header->tail.load(std::memory_order_acquire);
  if (t % kRecordAlignment != 0 || t < tail_cache_ || t - head_ > memory_.capacity) {
    return fail(Status::kCorruptRecord);
  }
  *tail = t;
  return Status::kOk;
}

bool RingConsumer::has_unread() const noexcept {
  return memory_.header->tail.load(std::memory_order_acquire) != read_pos_;
}

Status RingConsumer::check_producer() noexcept {
  const uint64_t producer = memory_.header->producer.load(std::memory_order_acquire);
  if (producer != 0 && !is_alive(producer)) return Status::kPeerDead;
  return Status::kOk;
}

void RingConsumer::set_head(uint64_t head) noexcept {
  head_ = head;
  RingHeader* h = memory_.header;
  // Release pairs with the producer's acquire load of head: we are done with the bytes below.
  h->head.store(head, std::memory_order_release);
  // Pairs with the fence in announce_producer_wait(); the argument is in doorbell.h.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (h->producer_waiting.load(std::memory_order_relaxed) != 0 &&
      h->producer_waiting.exchange(0, std::memory_order_acq_rel) != 0) {
    h->producer_bell.fetch_add(1, std::memory_order_release);
    futex_wake_shared(&h->producer_bell, 1);
  }
}

void RingConsumer::consume(uint64_t new_read_pos) noexcept {
  // Records that never reach a caller (padding, chunks already copied) are released at once
  // unless a batch is outstanding: head only moves in order, release() catches up then.
  const bool idle = batch_end_ == head_;
  read_pos_ = new_read_pos;
  if (idle) {
    batch_end_ = new_read_pos;
    set_head(new_read_pos);
  }
}

uint8_t* RingConsumer::take_message() noexcept {
  uint8_t* message = message_;
  message_ = nullptr;
  message_capacity_ = 0;
  message_length_ = 0;
  message_filled_ = 0;
  message_complete_ = false;
  message_ready_ = false;
  return message;
}

void RingConsumer::free_message() noexcept {
  // Keep the block for the next chunked message (kSpareBlockMaxBytes) unless closing.
  if (message_ != nullptr && !closed_ && message_capacity_ <= kSpareBlockMaxBytes &&
      message_capacity_ > spare_bytes_) {
    std::free(spare_);
    spare_ = message_;
    spare_bytes_ = message_capacity_;
  } else {
    std::free(message_);
  }
  message_ = nullptr;
  message_capacity_ = 0;
  message_length_ = 0;
  message_filled_ = 0;
}

Status RingConsumer::take_chunk(uint64_t position, uint16_t flags, uint32_t offset, uint32_t length,
                                bool* complete) noexcept {
  // The caller checked offset + length against the record.
  *complete = false;
  if (length < kChunkPrefixBytes || (flags & ~(kChunkFirst | kChunkLast)) != 0) {
    return fail(Status::kCorruptRecord);
  }
  const uint8_t* content = memory_.data + (position & mask_) + offset;
  uint64_t total = 0;
  std::memcpy(&total, content, sizeof(total));
  const uint64_t piece = length - kChunkPrefixBytes;
  if ((flags & kChunkFirst) != 0) {
    if (message_ != nullptr || total == 0 || total > kMaxMessageBytes) {
      return fail(Status::kCorruptRecord);
    }
    if (spare_ != nullptr && spare_bytes_ >= total) {
      message_ = spare_;
      message_capacity_ = spare_bytes_;
    } else {
      std::free(spare_);
      message_ = static_cast<uint8_t*>(std::malloc(static_cast<size_t>(total)));
      message_capacity_ = static_cast<size_t>(total);
    }
    spare_ = nullptr;
    spare_bytes_ = 0;
    if (message_ == nullptr) return fail(Status::kNoMemory);
    message_length_ = static_cast<size_t>(total);
    message_filled_ = 0;
  } else if (message_ == nullptr || total != message_length_) {
    return fail(Status::kCorruptRecord);
  }
  if (piece > message_length_ - message_filled_) return fail(Status::kCorruptRecord);
  std::memcpy(message_ + message_filled_, content + kChunkPrefixBytes, static_cast<size_t>(piece));
  message_filled_ += static_cast<size_t>(piece);
  const bool last = (flags & kChunkLast) != 0;
  if (last != (message_filled_ == message_length_)) return fail(Status::kCorruptRecord);
  *complete = last;
  return Status::kOk;
}

Status RingConsumer::offer_message(RecordSpan* spans, RecordBatch* out, RecordVisitor visitor,
                                   void* visitor_context) noexcept {
  const RecordSpan span{message_, static_cast<uint32_t>(message_length_)};
  if (visitor != nullptr) {
    const Status taken = visitor(visitor_context, span, 0, message_);
    // Refused for lack of room: keep the message for the next call.
    if (taken == Status::kOutputTooSmall) return taken;
    if (taken != Status::kOk) {
      message_complete_ = false;
      free_message();
      return fail(taken);
    }
  }
  message_complete_ = false;
  message_ready_ = true;
  spans[0] = span;
  out->region = message_;
  out->region_bytes = message_length_;
  out->count = 1;
  out->end = message_end_;
  out->reassembled = true;
  if (message_end_ > batch_end_) batch_end_ = message_end_;
  return Status::kOk;
}

Status RingConsumer::read_batch(size_t max_records, size_t max_bytes, RecordSpan* spans,
                                RecordBatch* out, RecordVisitor visitor,
                                void* visitor_context) noexcept {
  *out = RecordBatch{};
  if (closed_) return Status::kClosed;
  if (failed_ != Status::kOk) return failed_;
  if (message_ready_ || max_records == 0 || spans == nullptr) return Status::kInvalidArgument;
  if (message_complete_) return offer_message(spans, out, visitor, visitor_context);

  const uint64_t capacity = memory_.capacity;
  const uint64_t max_record = max_record_bytes(capacity);
  uint64_t pos = read_pos_;
  const uint8_t* base = nullptr;  // first frame of the batch: the start of its region
  size_t count = 0;
  uint64_t bytes = 0;
  Status stop_status = Status::kOk;  // a bad record after good ones: reported next call

  for (;;) {
    if (DISCO_RING_NO_INDEX_CACHE || pos == tail_cache_) {
      if (Status s = load_tail(&tail_cache_); s != Status::kOk) {
        if (count == 0) return s;
        break;
      }
      if (pos == tail_cache_) break;
    }
    const uint64_t index = pos & mask_;
    const uint64_t to_end = capacity - index;
    const uint64_t available = tail_cache_ - pos;
    const uint8_t* record = memory_.data + index;
    RecordFields f;
    read_record_start(record, &f);
    if (f.record_bytes < 8 || f.record_bytes % kRecordAlignment != 0 || f.record_bytes > to_end ||
        f.record_bytes > available) {
      stop_status = Status::kCorruptRecord;
      break;
    }
    if (f.type == static_cast<uint16_t>(RecordType::kPadding)) {
      if (f.record_bytes != to_end) {
        stop_status = Status::kCorruptRecord;
        break;
      }
      pos += f.record_bytes;
      if (count > 0) break;  // the batch ends at the wrap; release() consumes the padding too
      consume(pos);
      continue;
    }
    if (f.record_bytes < kRecordHeaderBytes || f.record_bytes > max_record) {
      stop_status = Status::kCorruptRecord;
      break;
    }
    read_record_rest(record, &f);
    if (f.content_offset < kRecordHeaderBytes || f.content_offset % kRecordAlignment != 0 ||
        f.content_offset > f.record_bytes || f.content_length > f.record_bytes - f.content_offset) {
      stop_status = Status::kCorruptRecord;
      break;
    }
    if (f.type == static_cast<uint16_t>(RecordType::kChunk)) {
      if (count > 0) break;  // a chunked message is never part of a batch of records
      bool complete = false;
      const Status s = take_chunk(pos, f.flags, f.content_offset, f.content_length, &complete);
      if (s != Status::kOk) return s;
      pos += f.record_bytes;
      consume(pos);
      if (!complete) continue;
      const Status verified = verify_frame(message_, message_length_, ring_verify_options());
      if (verified != Status::kOk) {
        free_message();
        return fail(verified);
      }
      message_complete_ = true;
      message_end_ = read_pos_;
      return offer_message(spans, out, visitor, visitor_context);
    }
    if (f.type != static_cast<uint16_t>(RecordType::kFrame) || f.flags != 0) {
      stop_status = Status::kCorruptRecord;
      break;
    }
    if (count == max_records || (count > 0 && bytes + f.content_length > max_bytes)) break;
    const uint8_t* frame = record + f.content_offset;
    const Status verified = verify_frame(frame, f.content_length, ring_verify_options());
    if (verified != Status::kOk) {
      stop_status = verified;
      break;
    }
    const RecordSpan span{frame, f.content_length};
    if (visitor != nullptr) {
      const Status taken = visitor(visitor_context, span, count, count == 0 ? frame : base);
      if (taken == Status::kOutputTooSmall) {
        if (count == 0) return taken;
        break;
      }
      if (taken != Status::kOk) {
        stop_status = taken;
        break;
      }
    }
    if (count == 0) base = frame;
    spans[count++] = span;
    bytes += f.content_length;
    pos += f.record_bytes;
  }

  if (stop_status != Status::kOk) {
    // The end fails now; with good records before the bad one, the caller gets those first
    // and the status on its next call.
    const Status failed = fail(stop_status);
    if (count == 0) return failed;
  }
  if (count == 0) {
    // Every record up to pos was padding; nothing to return.
    read_pos_ = pos;
    const RingHeader* h = memory_.header;
    // Acquire pairs with the producer's release store in close(): if it closed, the tail it
    // stored before is visible to the reload below, so "empty and closed" is final.
    if (h->producer_closed.load(std::memory_order_acquire) != 0) {
      uint64_t tail = 0;
      if (Status s = load_tail(&tail); s != Status::kOk) return s;
      tail_cache_ = tail;
      if (tail == pos) return Status::kPeerClosed;
    }
    return Status::kRingEmpty;
  }
  // The batch does not wrap, so its last record ends at data + ((pos - 1) & mask) + 1.
  out->region = base;
  out->region_bytes = static_cast<size_t>(memory_.data + ((pos - 1) & mask_) + 1 - base);
  out->count = count;
  out->end = pos;
  read_pos_ = pos;
  batch_end_ = pos;
  return Status::kOk;
}

Status RingConsumer::release(const RecordBatch& batch) noexcept {
  if (batch.reassembled) {
    if (!message_ready_ || batch.region != message_) return Status::kInvalidArgument;
    message_ready_ = false;
    free_message();
  }
  if (closed_) return Status::kOk;
  if (batch.end <= head_) return Status::kOk;  // released already (chunks go at once)
  if (batch.end > read_pos_ || batch.end > batch_end_) return Status::kInvalidArgument;
  // The newest batch takes head to the read position, past any padding or copied chunks
  // read after it; an older one only to its own end.
  const uint64_t head = batch.end == batch_end_ ? read_pos_ : batch.end;
  if (batch.end == batch_end_) batch_end_ = head;
  set_head(head);
  return Status::kOk;
}

void RingConsumer::close() noexcept {
  if (closed_) return;
  closed_ = true;
  message_ready_ = false;
  message_complete_ = false;
  free_message();
  std::free(spare_);
  spare_ = nullptr;
  spare_bytes_ = 0;
  RingHeader* h = memory_.header;
  h->consumer_closed.store(1, std::memory_order_release);
  // Wake a producer waiting for space so that it sees the flag.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (h->producer_waiting.exchange(0, std::memory_order_acq_rel) != 0) {
    h->producer_bell.fetch_add(1, std::memory_order_release);
    futex_wake_shared(&h->producer_bell, 1);
  }
}

RingState RingConsumer::state() const noexcept {
  return RingState{head_, memory_.header->tail.load(std::memory_order_acquire), memory_.capacity};
}

}  // namespace disco
