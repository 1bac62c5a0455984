// A producer thread and a consumer thread exchange sequenced frames through one ring: no loss,
// no duplicate, in order, across tens of thousands of wraps. Prints the rate.
//
// DISCO_RING_TEST_RECORDS overrides the record count (default 10,000,000; the sanitizer run
// uses fewer). Each record is a real sealed frame (a template with its link_seq patched and
// the header resealed), verified by the consumer like any other.

#include <sched.h>
#include <time.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
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

constexpr uint64_t kPattern = 0x0123456789ABCDEFull;

uint64_t records_to_send() {
  const char* env = std::getenv("DISCO_RING_TEST_RECORDS");
  if (env != nullptr && *env != '\0') return std::strtoull(env, nullptr, 10);
  return 10'000'000;
}

double now_seconds() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// A frame whose link_seq bytes sit at a known offset, so that copies can be renumbered.
struct Template {
  std::vector<uint8_t> frame;
  size_t seq_offset = 0;
};

Template make_template() {
  Template t;
  t.frame = disco::testing::build_test_frame(kPattern, 1, 24);
  for (size_t i = disco::kFrameHeaderBytes; i + 8 <= t.frame.size(); ++i) {
    if (disco::load_le64(t.frame.data() + i) == kPattern) {
      t.seq_offset = i;
      break;
    }
  }
  CHECK(t.seq_offset != 0);
  return t;
}

void exchanges_sequenced_records_between_two_threads() {
  const uint64_t total = records_to_send();
  const Template tpl = make_template();
  disco::test::HeapRing ring(uint64_t{1} << 20);
  std::unique_ptr<RingProducer> producer;
  std::unique_ptr<RingConsumer> consumer;
  CHECK_EQ(RingProducer::attach(ring.memory(), "", &producer), Status::kOk);
  CHECK_EQ(RingConsumer::attach(ring.memory(), disco::BellKind::kFutex, &consumer), Status::kOk);

  std::atomic<bool> producer_failed{false};
  const double start = now_seconds();
  std::thread writer([&] {
    const size_t size = tpl.frame.size();
    // Sequence numbers from 1: a link_seq of 0 would be left out of the FlatBuffers body.
    for (uint64_t seq = 1; seq <= total;) {
      uint8_t* content = nullptr;
      const Status s = producer->reserve(size, &content);
      if (s == Status::kRingFull) {
        ::sched_yield();
        continue;
      }
      if (s != Status::kOk) {
        producer_failed = true;
        return;
      }
      std::memcpy(content, tpl.frame.data(), size);
      disco::store_le64(content + tpl.seq_offset, seq);
      if (disco::seal_frame(content, size) != Status::kOk ||
          producer->commit(0, size) != Status::kOk) {
        producer_failed = true;
        return;
      }
      ++seq;
    }
  });

  uint64_t expected = 1;
  uint64_t batches = 0;
  uint64_t mismatches = 0;
  std::vector<RecordSpan> spans(256);
  while (expected <= total && !producer_failed) {
    RecordBatch batch;
    const Status s = consumer->read_batch(spans.size(), SIZE_MAX, spans.data(), &batch);
    if (s == Status::kRingEmpty) {
      ::sched_yield();
      continue;
    }
    if (s != Status::kOk) {
      CHECK_EQ(s, Status::kOk);
      break;
    }
    for (size_t i = 0; i < batch.count; ++i) {
      mismatches += disco::test::link_seq_of(spans[i].data) != expected ? 1 : 0;
      ++expected;
    }
    ++batches;
    CHECK_EQ(consumer->release(batch), Status::kOk);
  }
  writer.join();
  const double seconds = now_seconds() - start;

  CHECK(!producer_failed);
  CHECK_EQ(mismatches, uint64_t{0});
  CHECK_EQ(expected, total + 1);
  RecordSpan spare[1];
  RecordBatch none;
  CHECK_EQ(consumer->read_batch(1, SIZE_MAX, spare, &none), Status::kRingEmpty);
  std::printf(
      "%llu records of %zu bytes in %.2f s: %.2f M records/s, %.0f MB/s, %.1f records/batch, "
      "%.1f wraps\n",
      static_cast<unsigned long long>(total), tpl.frame.size(), seconds,
      static_cast<double>(total) / seconds / 1e6,
      static_cast<double>(total * disco::align_record(16 + tpl.frame.size())) / seconds / 1e6,
      static_cast<double>(total) / static_cast<double>(batches ? batches : 1),
      static_cast<double>(ring.header()->tail.load()) / static_cast<double>(ring.capacity()));
}

}  // namespace

int main() {
  exchanges_sequenced_records_between_two_threads();
  return disco::test::check_exit_code();
}
