// Ring invariants in one thread over heap memory: wrap-around with padding records, full and
// empty rings, chunking and reassembly around every size boundary, and corrupt positions and
// records from an untrusted peer giving statuses instead of crashes.

#include <cstring>
#include <memory>
#include <vector>

#include "check.h"
#include "frame.h"
#include "ring.h"
#include "ring_support.h"

namespace {

using disco::RecordBatch;
using disco::RecordSpan;
using disco::RingConsumer;
using disco::RingProducer;
using disco::Status;
using disco::test::frame_with;
using disco::test::HeapRing;
using disco::test::link_seq_of;

constexpr uint64_t kSmall = 64 << 10;

struct Ends {
  std::unique_ptr<RingProducer> producer;
  std::unique_ptr<RingConsumer> consumer;
};

Ends attach(HeapRing& ring) {
  Ends e;
  CHECK_EQ(RingProducer::attach(ring.memory(), "", &e.producer), Status::kOk);
  CHECK_EQ(RingConsumer::attach(ring.memory(), disco::BellKind::kFutex, &e.consumer), Status::kOk);
  return e;
}

/// Reads one batch, checks each link_seq continues `*next`, releases it. Returns the status.
Status drain_one(RingConsumer& c, uint64_t* next, size_t* records = nullptr) {
  RecordSpan spans[64];
  RecordBatch batch;
  const Status s = c.read_batch(64, SIZE_MAX, spans, &batch);
  if (s != Status::kOk) return s;
  for (size_t i = 0; i < batch.count; ++i) {
    CHECK_EQ(link_seq_of(spans[i].data), *next);
    ++*next;
  }
  if (records != nullptr) *records += batch.count;
  CHECK_EQ(c.release(batch), Status::kOk);
  return Status::kOk;
}

void starts_empty_and_reads_back_one_frame() {
  HeapRing ring(kSmall);
  Ends e = attach(ring);
  RecordSpan spans[4];
  RecordBatch batch;
  CHECK_EQ(e.consumer->read_batch(4, SIZE_MAX, spans, &batch), Status::kRingEmpty);
  const auto frame = frame_with(7, 100);
  CHECK_EQ(e.producer->write_frame(frame.data(), frame.size()), Status::kOk);
  CHECK(e.consumer->has_unread());
  CHECK_EQ(e.consumer->read_batch(4, SIZE_MAX, spans, &batch), Status::kOk);
  CHECK_EQ(batch.count, 1u);
  CHECK_EQ(spans[0].length, frame.size());
  CHECK(std::memcmp(spans[0].data, frame.data(), frame.size()) == 0);
  CHECK_EQ(reinterpret_cast<uintptr_t>(spans[0].data) % 8, 0u);
  CHECK(batch.region == spans[0].data);
  CHECK_EQ(batch.end, disco::align_record(16 + frame.size()));
  // Not released yet: the head stays, the read position moves.
  CHECK_EQ(ring.header()->head.load(), 0u);
  CHECK_EQ(e.consumer->read_batch(4, SIZE_MAX, spans, &batch), Status::kRingEmpty);
  RecordBatch first;
  first.end = disco::align_record(16 + frame.size());
  CHECK_EQ(e.consumer->release(first), Status::kOk);
  CHECK_EQ(ring.header()->head.load(), first.end);
}

void wraps_with_a_padding_record_and_never_splits_a_record() {
  HeapRing ring(kSmall);
  Ends e = attach(ring);
  uint64_t written = 0;
  uint64_t next = 0;
  bool saw_padding = false;
  // Frames of odd sizes so that the tail lands at every offset near the end several times.
  for (int round = 0; round < 400; ++round) {
    const auto frame = frame_with(written, static_cast<uint32_t>(1000 + 37 * (round % 50)));
    const uint64_t before = ring.header()->tail.load();
    Status s = e.producer->write_frame(frame.data(), frame.size());
    if (s == Status::kRingFull) {
      while (drain_one(*e.consumer, &next) == Status::kOk) {
      }
      s = e.producer->write_frame(frame.data(), frame.size());
    }
    CHECK_EQ(s, Status::kOk);
    const uint64_t index = before & (kSmall - 1);
    const uint64_t record = disco::align_record(16 + frame.size());
    if (index + record > kSmall) {
      // A padding record from the old tail to the end, then the record at index 0.
      uint32_t pad = 0;
      uint16_t type = 0;
      std::memcpy(&pad, ring.data() + index, 4);
      std::memcpy(&type, ring.data() + index + 4, 2);
      CHECK_EQ(pad, kSmall - index);
      CHECK_EQ(type, static_cast<uint16_t>(disco::RecordType::kPadding));
      CHECK_EQ(ring.header()->tail.load(), before + (kSmall - index) + record);
      saw_padding = true;
    }
    ++written;
  }
  while (drain_one(*e.consumer, &next) == Status::kOk) {
  }
  CHECK(saw_padding);
  CHECK_EQ(next, written);
  CHECK_EQ(ring.header()->head.load(), ring.header()->tail.load());
}

void stops_a_batch_at_the_wrap() {
  HeapRing ring(kSmall);
  Ends e = attach(ring);
  uint64_t next = 0;
  uint64_t seq = 0;
  // Fill to near the end, drain, then write across the end: the batch returns the records
  // before the padding only; the next batch starts at index 0.
  while (ring.header()->tail.load() < kSmall - 3000) {
    const auto f = frame_with(seq++, 900);
    CHECK_EQ(e.producer->write_frame(f.data(), f.size()), Status::kOk);
  }
  while (drain_one(*e.consumer, &next) == Status::kOk) {
  }
  for (int i = 0; i < 6; ++i) {
    const auto f = frame_with(seq++, 900);
    CHECK_EQ(e.producer->write_frame(f.data(), f.size()), Status::kOk);
  }
  RecordSpan spans[16];
  RecordBatch batch;
  CHECK_EQ(e.consumer->read_batch(16, SIZE_MAX, spans, &batch), Status::kOk);
  CHECK(batch.count < 6);
  CHECK(batch.region + batch.region_bytes <= ring.data() + kSmall);
  const uint8_t* last_end = spans[batch.count - 1].data + spans[batch.count - 1].length;
  CHECK(last_end <= batch.region + batch.region_bytes);
  const size_t first_part = batch.count;
  next += first_part;
  CHECK_EQ(e.consumer->release(batch), Status::kOk);
  CHECK_EQ(e.consumer->read_batch(16, SIZE_MAX, spans, &batch), Status::kOk);
  CHECK_EQ(first_part + batch.count, 6u);
  CHECK(batch.region == ring.data() + 16);
  CHECK_EQ(link_seq_of(spans[0].data), next);
  CHECK_EQ(e.consumer->release(batch), Status::kOk);
}

void reports_full_and_frees_space_on_release() {
  HeapRing ring(kSmall);
  Ends e = attach(ring);
  uint64_t seq = 0;
  Status s = Status::kOk;
  while ((s = [&] {
           const auto f = frame_with(seq, 2000);
           return e.producer->write_frame(f.data(), f.size());
         }()) == Status::kOk) {
    ++seq;
  }
  CHECK_EQ(s, Status::kRingFull);
  CHECK(e.producer->free_bytes() < 2100);
  uint8_t* content = nullptr;
  CHECK_EQ(e.producer->reserve(4000, &content), Status::kRingFull);
  CHECK_EQ(e.producer->reserve(e.producer->max_content_bytes() + 1, &content), Status::kTooLarge);
  // One release makes room again.
  uint64_t next = 0;
  CHECK_EQ(drain_one(*e.consumer, &next), Status::kOk);
  const auto f = frame_with(seq, 2000);
  CHECK_EQ(e.producer->write_frame(f.data(), f.size()), Status::kOk);
}

void batches_respect_record_and_byte_limits() {
  HeapRing ring(kSmall);
  Ends e = attach(ring);
  // Sequence numbers from 100: frames of equal size (a 0 link_seq is left out of the buffer).
  for (uint64_t i = 100; i < 110; ++i) {
    const auto f = frame_with(i, 200);
    CHECK_EQ(e.producer->write_frame(f.data(), f.size()), Status::kOk);
  }
  RecordSpan spans[16];
  RecordBatch batch;
  CHECK_EQ(e.consumer->read_batch(3, SIZE_MAX, spans, &batch), Status::kOk);
  CHECK_EQ(batch.count, 3u);
  CHECK_EQ(e.consumer->release(batch), Status::kOk);
  const size_t one = spans[0].length;
  CHECK_EQ(e.consumer->read_batch(16, 2 * one, spans, &batch), Status::kOk);
  CHECK_EQ(batch.count, 2u);
  CHECK_EQ(link_seq_of(spans[0].data), 103u);
  CHECK_EQ(e.consumer->release(batch), Status::kOk);
  // The first record always comes, even above max_bytes.
  CHECK_EQ(e.consumer->read_batch(16, 1, spans, &batch), Status::kOk);
  CHECK_EQ(batch.count, 1u);
  CHECK_EQ(e.consumer->release(batch), Status::kOk);
  CHECK_EQ(e.consumer->read_batch(0, SIZE_MAX, spans, &batch), Status::kInvalidArgument);
}

void commits_a_reservation_in_place() {
  HeapRing ring(kSmall);
  Ends e = attach(ring);
  const auto f = frame_with(42, 300);
  uint8_t* content = nullptr;
  // Reserve generously, place the frame at the end like the in-place builder does.
  CHECK_EQ(e.producer->reserve(f.size() + 64, &content), Status::kOk);
  CHECK_EQ(reinterpret_cast<uintptr_t>(content) % 8, 0u);
  const size_t area = disco::align_record(f.size() + 64);
  std::memcpy(content + area - f.size(), f.data(), f.size());
  CHECK_EQ(e.producer->commit(area - f.size() + 1, f.size()), Status::kInvalidArgument);
  CHECK_EQ(e.producer->commit(area - f.size() + 8, f.size()), Status::kInvalidArgument);
  CHECK_EQ(e.producer->commit(area - f.size(), f.size()), Status::kOk);
  CHECK_EQ(e.producer->commit(0, f.size()), Status::kInvalidArgument);  // nothing reserved
  RecordSpan spans[2];
  RecordBatch batch;
  CHECK_EQ(e.consumer->read_batch(2, SIZE_MAX, spans, &batch), Status::kOk);
  CHECK_EQ(link_seq_of(spans[0].data), 42u);
  CHECK(batch.region == spans[0].data);
  CHECK_EQ(e.consumer->release(batch), Status::kOk);
  // An abandoned reservation publishes nothing.
  CHECK_EQ(e.producer->reserve(100, &content), Status::kOk);
  e.producer->abandon();
  CHECK_EQ(e.producer->commit(0, 50), Status::kInvalidArgument);
  CHECK_EQ(e.consumer->read_batch(2, SIZE_MAX, spans, &batch), Status::kRingEmpty);
}

/// Reads and flushes until the pending chunked message arrives; returns the reassembly.
std::vector<uint8_t> pump_until_message(RingProducer& p, RingConsumer& c, size_t* chunks) {
  std::vector<uint8_t> got;
  Status s = Status::kOk;
  RecordSpan spans[4];
  RecordBatch batch;
  for (int spins = 0; spins < 1'000'000; ++spins) {
    const uint64_t before = c.read_position();
    const Status r = c.read_batch(4, SIZE_MAX, spans, &batch);
    if (c.read_position() != before) ++*chunks;
    if (r == Status::kOk) {
      CHECK(batch.reassembled);
      CHECK_EQ(batch.count, 1u);
      got.assign(spans[0].data, spans[0].data + spans[0].length);
      CHECK_EQ(c.release(batch), Status::kOk);
      break;
    }
    CHECK_EQ(r, Status::kRingEmpty);
    if (p.has_pending()) {
      s = p.flush();
      CHECK(s == Status::kOk || s == Status::kWritePending);
    }
  }
  CHECK(!p.has_pending());
  return got;
}

/// Writes `message` through the chunked path, reading as it goes; returns the reassembly.
std::vector<uint8_t> send_chunked(RingProducer& p, RingConsumer& c,
                                  const std::vector<uint8_t>& message, size_t* chunks) {
  const Status s = p.write_frame(message.data(), message.size());
  CHECK(s == Status::kOk || s == Status::kWritePending);
  return pump_until_message(p, c, chunks);
}

void chunks_and_reassembles_around_every_boundary() {
  HeapRing ring(kSmall);
  Ends e = attach(ring);
  const size_t max_content = e.producer->max_content_bytes();
  // test frames have about 200 bytes of overhead; aim the total sizes around the limits.
  const size_t overhead = frame_with(0, 0).size();
  std::vector<size_t> totals;
  for (const size_t target : {max_content, 2 * max_content, 3 * max_content + 5, kSmall,
                              kSmall + 4096, size_t{1} << 20}) {
    for (const long delta : {-9L, -8L, -1L, 0L, 1L, 8L, 9L}) {
      totals.push_back(static_cast<size_t>(static_cast<long>(target) + delta));
    }
  }
  uint64_t seq = 0;
  for (const size_t total : totals) {
    const auto message = frame_with(seq, static_cast<uint32_t>(total - overhead));
    size_t chunks = 0;
    if (message.size() <= max_content) {
      CHECK_EQ(e.producer->write_frame(message.data(), message.size()), Status::kOk);
      uint64_t next = seq;
      CHECK_EQ(drain_one(*e.consumer, &next), Status::kOk);
    } else {
      const auto got = send_chunked(*e.producer, *e.consumer, message, &chunks);
      CHECK(got == message);
      CHECK(chunks >= 1);
    }
    ++seq;
  }
  // A frame after the chunks comes through as a plain record.
  const auto f = frame_with(seq, 10);
  CHECK_EQ(e.producer->write_frame(f.data(), f.size()), Status::kOk);
  uint64_t next = seq;
  CHECK_EQ(drain_one(*e.consumer, &next), Status::kOk);
}

void keeps_fifo_behind_a_pending_chunked_message() {
  HeapRing ring(kSmall);
  Ends e = attach(ring);
  const auto big = frame_with(1, 200'000);
  CHECK_EQ(e.producer->write_frame(big.data(), big.size()), Status::kWritePending);
  CHECK(e.producer->has_pending());
  const auto small = frame_with(2, 10);
  CHECK_EQ(e.producer->write_frame(small.data(), small.size()), Status::kRingFull);
  uint8_t* content = nullptr;
  CHECK_EQ(e.producer->reserve(100, &content), Status::kRingFull);
  size_t chunks = 0;
  CHECK(pump_until_message(*e.producer, *e.consumer, &chunks) == big);
  CHECK_EQ(e.producer->write_frame(small.data(), small.size()), Status::kOk);
  uint64_t next = 2;
  CHECK_EQ(drain_one(*e.consumer, &next), Status::kOk);
}

void copies_a_borrowed_range_from_caller_memory() {
  HeapRing ring(kSmall);
  Ends e = attach(ring);
  const size_t max_content = e.producer->max_content_bytes();
  const auto message = frame_with(1, static_cast<uint32_t>(3 * max_content + 1000));
  const size_t n = message.size();
  // Ranges at the start, across chunk boundaries, in the middle, at the end, and all of it.
  const std::pair<size_t, size_t> ranges[] = {{0, 100},
                                              {0, max_content + 3},
                                              {max_content - 7, 20},
                                              {1001, n - 2002},
                                              {n - 64, 64},
                                              {n - max_content, max_content},
                                              {0, n},
                                              {n / 2, 0}};
  for (const auto& [at, length] : ranges) {
    auto* block = static_cast<uint8_t*>(std::malloc(n));
    std::memcpy(block, message.data(), n);
    // What the producer must not read: the block's bytes of the borrowed range.
    std::memset(block + at, 0xEE, length);
    const disco::BorrowedRange borrowed{message.data() + at, at, length};
    const Status s = e.producer->write_message_chunked(block, 0, n, 0, &borrowed);
    CHECK(s == Status::kOk || s == Status::kWritePending);
    if (s == Status::kOk) CHECK(!e.producer->borrowing());
    size_t chunks = 0;
    CHECK(pump_until_message(*e.producer, *e.consumer, &chunks) == message);
    CHECK(!e.producer->borrowing());
  }
  // A range outside the message is refused, and the block stays the caller's.
  auto* block = static_cast<uint8_t*>(std::malloc(n));
  const disco::BorrowedRange outside{message.data(), n - 10, 11};
  CHECK_EQ(e.producer->write_message_chunked(block, 0, n, 0, &outside), Status::kInvalidArgument);
  const disco::BorrowedRange no_data{nullptr, 0, 1};
  CHECK_EQ(e.producer->write_message_chunked(block, 0, n, 0, &no_data), Status::kInvalidArgument);
  std::free(block);
}

void refuses_a_message_above_the_maximum() {
  HeapRing ring(kSmall);
  Ends e = attach(ring);
  auto* block = static_cast<uint8_t*>(std::malloc(16));
  CHECK_EQ(e.producer->write_message_chunked(block, 0, disco::kMaxMessageBytes + 1),
           Status::kTooLarge);
  std::free(block);
}

// ---- an untrusted producer -------------------------------------------------------------

/// A ring with one good frame written, then `corrupt` applied to the raw memory.
template <typename Corrupt>
Status read_after(Corrupt corrupt) {
  HeapRing ring(kSmall);
  Ends e = attach(ring);
  const auto f = frame_with(5, 64);
  CHECK_EQ(e.producer->write_frame(f.data(), f.size()), Status::kOk);
  corrupt(ring);
  RecordSpan spans[4];
  RecordBatch batch;
  const Status first = e.consumer->read_batch(4, SIZE_MAX, spans, &batch);
  // A failed end stays failed.
  if (first != Status::kOk && first != Status::kRingEmpty) {
    CHECK_EQ(e.consumer->read_batch(4, SIZE_MAX, spans, &batch), first);
  }
  return first;
}

void store32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void store16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

void rejects_corrupt_positions_and_records() {
  // tail: beyond head + capacity, misaligned, going backwards.
  CHECK_EQ(read_after([](HeapRing& r) { r.header()->tail.store(kSmall + 8); }),
           Status::kCorruptRecord);
  CHECK_EQ(read_after([](HeapRing& r) { r.header()->tail.store(r.header()->tail.load() + 3); }),
           Status::kCorruptRecord);
  CHECK_EQ(read_after([](HeapRing& r) { r.header()->tail.store(~uint64_t{0} & ~uint64_t{7}); }),
           Status::kCorruptRecord);
  // record_bytes: 0, not a multiple of 8, past the tail, past the end of the data area, above
  // the largest record.
  for (const uint32_t bad : {0u, 4u, 12u, 7u, 4096u, 1u << 20, 0xFFFFFFF8u}) {
    CHECK_EQ(read_after([bad](HeapRing& r) { store32(r.data(), bad); }), Status::kCorruptRecord);
  }
  // content offset and length running past the record.
  CHECK_EQ(read_after([](HeapRing& r) { store32(r.data() + 8, 8); }), Status::kCorruptRecord);
  CHECK_EQ(read_after([](HeapRing& r) { store32(r.data() + 8, 20); }), Status::kCorruptRecord);
  CHECK_EQ(read_after([](HeapRing& r) { store32(r.data() + 8, 0xFFFFFFF8u); }),
           Status::kCorruptRecord);
  CHECK_EQ(read_after([](HeapRing& r) { store32(r.data() + 12, 0xFFFFFFFFu); }),
           Status::kCorruptRecord);
  // unknown type, flags on a frame, padding that does not reach the end.
  CHECK_EQ(read_after([](HeapRing& r) { store16(r.data() + 4, 9); }), Status::kCorruptRecord);
  CHECK_EQ(read_after([](HeapRing& r) { store16(r.data() + 6, 1); }), Status::kCorruptRecord);
  CHECK_EQ(read_after([](HeapRing& r) { store16(r.data() + 4, 2); }), Status::kCorruptRecord);
  // a frame byte flipped: the verifier's status. Ring records carry no checksum (frame.h
  // ring_verify_options): a changed checksum field is ignored, a changed structure is caught by
  // the FlatBuffers verifier (here the root offset's top byte sends it out of the body).
  CHECK_EQ(read_after([](HeapRing& r) { r.data()[16 + 8] ^= 0x10; }), Status::kOk);
  CHECK_EQ(read_after([](HeapRing& r) { r.data()[16 + 16 + 3] ^= 0x10; }), Status::kVerifyFailed);
  CHECK_EQ(read_after([](HeapRing& r) { r.data()[16] ^= 1; }), Status::kBadMagic);
  // a shorter content length: the frame header disagrees.
  CHECK_EQ(read_after([](HeapRing& r) {
             uint32_t len = 0;
             std::memcpy(&len, r.data() + 12, 4);
             store32(r.data() + 12, len - 8);
           }),
           Status::kBadLength);
}

void returns_good_records_before_a_bad_one() {
  HeapRing ring(kSmall);
  Ends e = attach(ring);
  const auto f = frame_with(1, 64);
  CHECK_EQ(e.producer->write_frame(f.data(), f.size()), Status::kOk);
  CHECK_EQ(e.producer->write_frame(f.data(), f.size()), Status::kOk);
  const uint64_t second = disco::align_record(16 + f.size());
  ring.data()[second + 16 + 16 + 3] ^= 0xFF;  // the root offset's top byte
  RecordSpan spans[4];
  RecordBatch batch;
  CHECK_EQ(e.consumer->read_batch(4, SIZE_MAX, spans, &batch), Status::kOk);
  CHECK_EQ(batch.count, 1u);
  CHECK_EQ(e.consumer->release(batch), Status::kOk);
  CHECK_EQ(e.consumer->read_batch(4, SIZE_MAX, spans, &batch), Status::kVerifyFailed);
}

/// Writes a raw CHUNK record at the tail and publishes it.
void raw_chunk(HeapRing& r, uint16_t flags, uint64_t total, uint32_t piece) {
  const uint64_t tail = r.header()->tail.load();
  uint8_t* rec = r.data() + (tail & (kSmall - 1));
  const uint32_t bytes = static_cast<uint32_t>(disco::align_record(24 + piece));
  store32(rec, bytes);
  store16(rec + 4, 3);
  store16(rec + 6, flags);
  store32(rec + 8, 16);
  store32(rec + 12, 8 + piece);
  std::memcpy(rec + 16, &total, 8);
  std::memset(rec + 24, 0xAB, piece);
  r.header()->tail.store(tail + bytes);
}

template <typename Write>
Status read_chunks(Write write) {
  HeapRing ring(kSmall);
  Ends e = attach(ring);
  write(ring);
  RecordSpan spans[4];
  RecordBatch batch;
  return e.consumer->read_batch(4, SIZE_MAX, spans, &batch);
}

void rejects_inconsistent_chunks() {
  using disco::kChunkFirst;
  using disco::kChunkLast;
  // A middle or last piece with no first one.
  CHECK_EQ(read_chunks([](HeapRing& r) { raw_chunk(r, 0, 100, 50); }), Status::kCorruptRecord);
  CHECK_EQ(read_chunks([](HeapRing& r) { raw_chunk(r, kChunkLast, 100, 50); }),
           Status::kCorruptRecord);
  // A total that changes, a piece past the total, a total above the maximum or zero.
  CHECK_EQ(read_chunks([](HeapRing& r) {
             raw_chunk(r, kChunkFirst, 100, 50);
             raw_chunk(r, kChunkLast, 101, 50);
           }),
           Status::kCorruptRecord);
  CHECK_EQ(read_chunks([](HeapRing& r) {
             raw_chunk(r, kChunkFirst, 100, 50);
             raw_chunk(r, kChunkLast, 100, 60);
           }),
           Status::kCorruptRecord);
  CHECK_EQ(
      read_chunks([](HeapRing& r) { raw_chunk(r, kChunkFirst, disco::kMaxMessageBytes + 1, 8); }),
      Status::kCorruptRecord);
  CHECK_EQ(read_chunks([](HeapRing& r) { raw_chunk(r, kChunkFirst, 0, 0); }),
           Status::kCorruptRecord);
  // A second first piece, a last piece that does not complete, a complete one without last.
  CHECK_EQ(read_chunks([](HeapRing& r) {
             raw_chunk(r, kChunkFirst, 100, 50);
             raw_chunk(r, kChunkFirst, 100, 50);
           }),
           Status::kCorruptRecord);
  CHECK_EQ(read_chunks([](HeapRing& r) {
             raw_chunk(r, kChunkFirst, 100, 50);
             raw_chunk(r, kChunkLast, 100, 40);
           }),
           Status::kCorruptRecord);
  CHECK_EQ(read_chunks([](HeapRing& r) {
             raw_chunk(r, kChunkFirst, 100, 50);
             raw_chunk(r, 0, 100, 50);
           }),
           Status::kCorruptRecord);
  // Unknown chunk flags.
  CHECK_EQ(read_chunks([](HeapRing& r) { raw_chunk(r, 4 | kChunkFirst, 100, 50); }),
           Status::kCorruptRecord);
  // Complete, but not a frame: the verifier's status.
  CHECK_EQ(read_chunks([](HeapRing& r) { raw_chunk(r, kChunkFirst | kChunkLast, 100, 100); }),
           Status::kBadMagic);
  // Incomplete: nothing to read yet.
  CHECK_EQ(read_chunks([](HeapRing& r) { raw_chunk(r, kChunkFirst, 100, 50); }),
           Status::kRingEmpty);
}

void refuses_a_head_the_consumer_could_not_have_written() {
  // Far ahead of the tail, misaligned, and behind the last head seen.
  for (const uint64_t bad : {uint64_t{1} << 40, uint64_t{3}}) {
    HeapRing ring(kSmall);
    Ends e = attach(ring);
    const auto f = frame_with(1, 64);
    CHECK_EQ(e.producer->write_frame(f.data(), f.size()), Status::kOk);
    ring.header()->head.store(bad);
    // The producer only loads head when its cached copy says the ring is full.
    Status s = Status::kOk;
    for (int i = 0; i < 1000 && s == Status::kOk; ++i) {
      s = e.producer->write_frame(f.data(), f.size());
    }
    CHECK_EQ(s, Status::kCorruptRecord);
    CHECK_EQ(e.producer->write_frame(f.data(), f.size()), Status::kCorruptRecord);
  }
  HeapRing ring(kSmall);
  Ends e = attach(ring);
  const auto f = frame_with(1, 64);
  Status s = Status::kOk;
  uint64_t seq = 1;
  while (s == Status::kOk) {
    const auto g = frame_with(seq, 64);
    s = e.producer->write_frame(g.data(), g.size());
    seq += s == Status::kOk ? 1 : 0;
  }
  uint64_t next = 1;
  while (drain_one(*e.consumer, &next) == Status::kOk) {
  }
  CHECK_EQ(next, seq);
  CHECK(e.producer->free_bytes() == kSmall);
  ring.header()->head.store(8);  // head moving backwards
  CHECK_EQ(e.producer->free_bytes(), kSmall);
  s = Status::kOk;
  while (s == Status::kOk) s = e.producer->write_frame(f.data(), f.size());
  CHECK_EQ(s, Status::kCorruptRecord);
}

void reports_closed_ends() {
  HeapRing ring(kSmall);
  Ends e = attach(ring);
  const auto f = frame_with(1, 64);
  CHECK_EQ(e.producer->write_frame(f.data(), f.size()), Status::kOk);
  e.producer->close();
  e.producer->close();  // idempotent
  CHECK_EQ(e.producer->write_frame(f.data(), f.size()), Status::kClosed);
  uint64_t next = 1;
  // What was committed before the close is still read, then PEER_CLOSED.
  CHECK_EQ(drain_one(*e.consumer, &next), Status::kOk);
  CHECK_EQ(drain_one(*e.consumer, &next), Status::kPeerClosed);

  HeapRing ring2(kSmall);
  Ends e2 = attach(ring2);
  e2.consumer->close();
  e2.consumer->close();
  CHECK_EQ(e2.producer->write_frame(f.data(), f.size()), Status::kPeerClosed);
  CHECK_EQ(drain_one(*e2.consumer, &next), Status::kClosed);
}

}  // namespace

int main() {
  starts_empty_and_reads_back_one_frame();
  wraps_with_a_padding_record_and_never_splits_a_record();
  stops_a_batch_at_the_wrap();
  reports_full_and_frees_space_on_release();
  batches_respect_record_and_byte_limits();
  commits_a_reservation_in_place();
  chunks_and_reassembles_around_every_boundary();
  keeps_fifo_behind_a_pending_chunked_message();
  copies_a_borrowed_range_from_caller_memory();
  refuses_a_message_above_the_maximum();
  rejects_corrupt_positions_and_records();
  returns_good_records_before_a_bad_one();
  rejects_inconsistent_chunks();
  refuses_a_head_the_consumer_could_not_have_written();
  reports_closed_ends();
  return disco::test::check_exit_code();
}
