// Writes the seed corpora of the fuzz targets, built by the same C++ code the tests use:
//   <frame dir>  valid sealed frames of several shapes (fuzz_frame);
//   <ring dir>   rings holding real records, and staging layouts (fuzz_ring; the input format
//                is described in native/fuzz/fuzz_ring.cc).
// The output is committed under test/fuzz/corpus; run again (scripts/native-fuzz.sh
// --regen-corpus) after a change of the schema, the frame, ring or staging layout.
//
// Usage: make_fuzz_corpus <frame dir> <ring dir>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "batch.h"
#include "batch_support.h"
#include "frame.h"
#include "frame_testing.h"
#include "ring.h"
#include "ring_support.h"

namespace {

using disco::test::StagingWriter;
using disco::test::TestEnvelope;

bool write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

struct Seed {
  std::string name;
  std::vector<uint8_t> bytes;
};

/// A fuzz_ring input: mode byte, head, tail, then the used part of the data area.
std::vector<uint8_t> ring_seed(disco::test::HeapRing& ring, uint8_t mode) {
  const uint64_t head = ring.header()->head.load();
  const uint64_t tail = ring.header()->tail.load();
  // Up to the furthest byte any record reaches: the whole area once it wrapped.
  const uint64_t end = tail >= ring.capacity() ? ring.capacity() : tail;
  std::vector<uint8_t> out(24 + end, 0);
  out[0] = mode;
  std::memcpy(out.data() + 8, &head, 8);
  std::memcpy(out.data() + 16, &tail, 8);
  std::memcpy(out.data() + 24, ring.data(), end);
  return out;
}

std::vector<uint8_t> staging_seed(const std::vector<uint8_t>& staging) {
  std::vector<uint8_t> out(24 + staging.size(), 0);
  out[0] = 2;
  std::memcpy(out.data() + 24, staging.data(), staging.size());
  return out;
}

TestEnvelope sample_event(int i) {
  TestEnvelope e;
  e.sender_node = "n" + std::to_string(i % 3);
  e.target_simproc = "physics";
  e.epoch = 0.5 * i;
  e.headers = {{"trace", "abc"}, {"k" + std::to_string(i), "v"}};
  e.has_data = true;
  e.data.assign(static_cast<size_t>(8 + i * 5), static_cast<uint8_t>(i));
  e.has_reply_to = i % 2 == 0;
  e.reply_node = "n9";
  e.reply_simproc = "ledger";
  return e;
}

/// Ring seeds: batches written through the real producer into a 64 KiB heap ring.
bool ring_seeds(std::vector<Seed>* seeds) {
  using disco::Status;
  {
    disco::test::HeapRing ring(disco::kMinRingCapacity);
    std::unique_ptr<disco::RingProducer> producer;
    if (disco::RingProducer::attach(ring.memory(), "", &producer) != Status::kOk) return false;
    disco::BatchEncoder encoder;
    StagingWriter writer;
    for (int b = 0; b < 3; ++b) {
      writer.begin(1, static_cast<uint64_t>(b) + 1, 0);
      for (int i = 0; i < 3; ++i) writer.add(sample_event(b * 3 + i));
      TestEnvelope promise;
      promise.kind = 1;
      promise.seqnr = UINT64_MAX;
      promise.num_events = 3;
      writer.add(promise);
      const auto staging = writer.finish();
      if (b == 0) seeds->push_back({"staging-events.seed", staging_seed(staging)});
      if (encoder.write(*producer, staging.data(), staging.size(), nullptr, 0) != Status::kOk) {
        return false;
      }
    }
    seeds->push_back({"ring-batches.seed", ring_seed(ring, 1)});
    seeds->push_back({"ring-batches-sealed.seed", ring_seed(ring, 0)});
  }
  {
    // Records across the end of the data area: a padding record and one at index 0.
    disco::test::HeapRing ring(disco::kMinRingCapacity);
    std::unique_ptr<disco::RingProducer> producer;
    std::unique_ptr<disco::RingConsumer> consumer;
    if (disco::RingProducer::attach(ring.memory(), "", &producer) != Status::kOk ||
        disco::RingConsumer::attach(ring.memory(), disco::BellKind::kFutex, &consumer) !=
            Status::kOk) {
      return false;
    }
    uint64_t seq = 1;
    while (ring.header()->tail.load() < disco::kMinRingCapacity - 1500) {
      const auto f = disco::test::frame_with(seq++, 900);
      if (producer->write_frame(f.data(), f.size()) != Status::kOk) return false;
    }
    disco::RecordSpan spans[128];
    disco::RecordBatch batch;
    while (consumer->read_batch(128, SIZE_MAX, spans, &batch) == Status::kOk) {
      if (consumer->release(batch) != Status::kOk) return false;
    }
    for (int i = 0; i < 3; ++i) {
      const auto f = disco::test::frame_with(seq++, 900);
      if (producer->write_frame(f.data(), f.size()) != Status::kOk) return false;
    }
    seeds->push_back({"ring-wrapped.seed", ring_seed(ring, 1)});
  }
  {
    // A message of 40 KB: more than one record (32 KiB), so two chunks.
    disco::test::HeapRing ring(disco::kMinRingCapacity);
    std::unique_ptr<disco::RingProducer> producer;
    if (disco::RingProducer::attach(ring.memory(), "", &producer) != Status::kOk) return false;
    const auto f = disco::test::frame_with(7, 40'000);
    if (producer->write_frame(f.data(), f.size()) != Status::kOk) return false;
    seeds->push_back({"ring-chunked.seed", ring_seed(ring, 0)});
  }
  StagingWriter writer;
  writer.begin(0, 0, 0, true);
  TestEnvelope external = sample_event(1);
  external.external = true;
  external.data.assign(4096, 1);
  writer.add(external);
  seeds->push_back({"staging-external.seed", staging_seed(writer.finish())});
  return true;
}

/// A packed frame (frame.h): `events` sample events (`empty`: with empty payloads, so the
/// frame has no payload vector) and a promise, built by the batch encoder.
std::vector<uint8_t> packed_frame(int events, bool empty = false) {
  StagingWriter writer;
  writer.begin(1, 5, 2, true);
  for (int i = 0; i < events; ++i) {
    TestEnvelope e = sample_event(i);
    if (empty) e.data.clear();
    writer.add(e);
  }
  TestEnvelope promise;
  promise.kind = 1;
  promise.seqnr = 42;
  promise.num_events = 7;
  writer.add(promise);
  const auto staging = writer.finish();
  disco::BatchEncoder encoder;
  disco::PreparedBatch batch;
  if (encoder.prepare(staging.data(), staging.size(), nullptr, 0, &batch) != disco::Status::kOk) {
    return {};
  }
  std::vector<uint64_t> region(batch.bound / 8);  // 8-byte aligned, as build() wants
  auto* bytes = reinterpret_cast<uint8_t*>(region.data());
  size_t offset = 0;
  size_t length = 0;
  if (encoder.build(batch, nullptr, 0, bytes, batch.bound, &offset, &length) !=
      disco::Status::kOk) {
    return {};
  }
  return std::vector<uint8_t>(bytes + offset, bytes + offset + length);
}

bool write_all(const std::string& dir, const std::vector<Seed>& seeds) {
  for (const Seed& seed : seeds) {
    const std::string path = dir + "/" + seed.name;
    if (!write_file(path, seed.bytes)) {
      std::perror(path.c_str());
      return false;
    }
    std::printf("%s (%zu bytes)\n", path.c_str(), seed.bytes.size());
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <frame dir> <ring dir>\n", argv[0]);
    return 2;
  }
  std::vector<Seed> frames{
      {"sample.frame", disco::testing::build_sample_frame()},
      {"empty-batch.frame", disco::testing::build_test_frame(2, 0, 0)},
      {"one-envelope.frame", disco::testing::build_test_frame(1, 1, 0)},
      {"three-envelopes-data.frame", disco::testing::build_test_frame(3, 3, 24)},
      {"sixteen-envelopes.frame", disco::testing::build_test_frame(16, 16, 4)},
      {"packed-events.frame", packed_frame(4)},
      {"packed-promise.frame", packed_frame(0)},
      {"packed-empty-payloads.frame", packed_frame(2, true)},
  };
  for (const Seed& seed : frames) {
    if (disco::verify_frame(seed.bytes.data(), seed.bytes.size()) != disco::Status::kOk) {
      std::fprintf(stderr, "seed %s does not verify\n", seed.name.c_str());
      return 1;
    }
  }
  std::vector<Seed> rings;
  if (!ring_seeds(&rings)) {
    std::fprintf(stderr, "could not build the ring seeds\n");
    return 1;
  }
  return write_all(argv[1], frames) && write_all(argv[2], rings) ? 0 : 1;
}
