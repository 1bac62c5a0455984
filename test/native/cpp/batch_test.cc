// Batches: staging layout -> frame built in a ring record -> decoded layout, every field equal;
// the size bound holds for random batches (and the builder never leaves its region);
// malformed staging is BAD_BATCH; the decoder's output limits, string table resets, and
// chunked batches.

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "batch.h"
#include "batch_support.h"
#include "check.h"
#include "frame.h"
#include "frame_testing.h"
#include "ring.h"
#include "ring_support.h"

namespace {

using disco::BatchDecoder;
using disco::BatchEncoder;
using disco::DecodeTarget;
using disco::PayloadSpan;
using disco::PreparedBatch;
using disco::RecordBatch;
using disco::RecordSpan;
using disco::RingConsumer;
using disco::RingProducer;
using disco::Status;
using disco::test::HeapRing;
using disco::test::StagingWriter;
using disco::test::TestEnvelope;

/// Preallocated decode outputs, like the TypeScript BatchReader's.
struct Outputs {
  explicit Outputs(size_t envelopes = 4096, size_t headers = 4096, size_t strings = 4096,
                   size_t frames = 256)
      : summary(disco::kSummaryWords),
        frames(disco::kFrameWords * frames),
        envelopes(disco::kEnvelopeWords * envelopes),
        epochs(envelopes),
        headers(2 * headers),
        strings(2 * strings) {}
  DecodeTarget target() {
    DecodeTarget t;
    t.summary = summary.data();
    t.frames = frames.data();
    t.frame_capacity = frames.size() / disco::kFrameWords;
    t.envelopes = envelopes.data();
    t.epochs = epochs.data();
    t.envelope_capacity = epochs.size();
    t.headers = headers.data();
    t.header_capacity = headers.size() / 2;
    t.strings = strings.data();
    t.string_capacity = strings.size() / 2;
    return t;
  }
  std::vector<uint32_t> summary, frames, envelopes;
  std::vector<double> epochs;
  std::vector<uint32_t> headers, strings;
};

/// The consumer side's view of decoded batches: its string table, kept like TypeScript does.
struct Reader {
  std::vector<std::string> table;
  Outputs out;
  BatchDecoder decoder;

  /// Reads one batch; appends decoded envelopes to `got`. Returns the read status.
  Status read(RingConsumer& c, std::vector<TestEnvelope>* got, uint64_t* link_seq = nullptr) {
    decoder.begin(out.target());
    RecordSpan spans[64];
    RecordBatch batch;
    const Status s = c.read_batch(64, SIZE_MAX, spans, &batch, &BatchDecoder::visit, &decoder);
    if (s != Status::kOk) return s;
    decoder.finish(batch.reassembled);
    const uint32_t* sum = out.summary.data();
    if ((sum[5] & disco::kSummaryStringsReset) != 0) table.clear();
    CHECK_EQ(sum[4], static_cast<uint32_t>(table.size()));
    const uint8_t* view = batch.region;
    for (uint32_t i = 0; i < sum[3]; ++i) {
      CHECK(out.strings[2 * i] + out.strings[2 * i + 1] <= batch.region_bytes);
      table.emplace_back(reinterpret_cast<const char*>(view + out.strings[2 * i]),
                         out.strings[2 * i + 1]);
    }
    CHECK_EQ(sum[0], static_cast<uint32_t>(batch.count));
    for (uint32_t f = 0; f < sum[0]; ++f) {
      const uint32_t* fw = out.frames.data() + disco::kFrameWords * f;
      CHECK(view + fw[3] == spans[f].data);
      CHECK_EQ(fw[4], spans[f].length);
      if (link_seq != nullptr) *link_seq = fw[5] | uint64_t{fw[6]} << 32;
    }
    for (uint32_t i = 0; i < sum[1]; ++i) {
      const uint32_t* ew = out.envelopes.data() + disco::kEnvelopeWords * i;
      TestEnvelope e;
      e.kind = static_cast<uint8_t>(ew[0]);
      e.data_format = static_cast<uint8_t>(ew[0] >> 8);
      e.hops = static_cast<uint8_t>(ew[0] >> 16);
      const uint32_t flags = ew[0] >> 24;
      e.repid = ew[1];
      e.seqnr = ew[2] | uint64_t{ew[3]} << 32;
      e.num_events = ew[4];
      e.sender_node = table.at(ew[5]);
      e.sender_simproc = table.at(ew[6]);
      e.target_node = table.at(ew[7]);
      e.target_simproc = table.at(ew[8]);
      e.has_data = (flags & disco::kEnvelopeHasData) != 0;
      CHECK(uint64_t{ew[9]} + ew[10] <= batch.region_bytes);
      e.data.assign(view + ew[9], view + ew[9] + ew[10]);
      if (e.has_data && ew[10] > 0) CHECK_EQ(ew[9] % 8, 0u);
      for (uint32_t h = 0; h < ew[12]; ++h) {
        const uint32_t pair = ew[11] + h;
        e.headers.emplace_back(table.at(out.headers[2 * pair]),
                               table.at(out.headers[2 * pair + 1]));
      }
      e.has_reply_to = (flags & disco::kEnvelopeHasReplyTo) != 0;
      if (e.has_reply_to) {
        e.reply_node = table.at(ew[13]);
        e.reply_simproc = table.at(ew[14]);
      } else {
        CHECK_EQ(ew[13], disco::kNoString);
      }
      e.epoch = out.epochs[i];
      got->push_back(std::move(e));
    }
    CHECK_EQ(c.release(batch), Status::kOk);
    return s;
  }
};

bool same(const TestEnvelope& a, const TestEnvelope& b) {
  // Bit for bit: the head struct carries -0.0 as -0.0 (a table field equal to its default
  // would have been left out and read back as 0.0).
  const bool epochs = std::isnan(a.epoch)
                          ? std::isnan(b.epoch)
                          : a.epoch == b.epoch && std::signbit(a.epoch) == std::signbit(b.epoch);
  return a.kind == b.kind && a.data_format == b.data_format && a.hops == b.hops &&
         a.repid == b.repid && a.num_events == b.num_events && a.sender_node == b.sender_node &&
         a.sender_simproc == b.sender_simproc && a.target_node == b.target_node &&
         a.target_simproc == b.target_simproc && epochs && a.seqnr == b.seqnr &&
         a.headers == b.headers && a.has_data == b.has_data && a.data == b.data &&
         a.has_reply_to == b.has_reply_to && a.reply_node == b.reply_node &&
         a.reply_simproc == b.reply_simproc;
}

std::vector<TestEnvelope> sample_envelopes() {
  std::vector<TestEnvelope> v;
  TestEnvelope promise;
  promise.kind = 1;
  promise.repid = 7;
  promise.seqnr = UINT64_MAX;
  promise.num_events = UINT32_MAX;
  promise.epoch = 1234.5678;
  promise.hops = 3;
  v.push_back(promise);
  TestEnvelope event;
  event.sender_node = "n7";
  event.sender_simproc = "physics";
  event.target_node = "n2";
  event.target_simproc = "chemistry";
  event.epoch = -0.0;
  event.headers = {{"trace-id", "4bf92f3577b34da6"}, {"unicode", "grüße ✓ 日本"}, {"", ""}};
  event.has_data = true;
  event.data = {0, 1, 0x7f, 0x80, 0xfe, 0xff};
  event.data_format = 1;
  event.has_reply_to = true;
  event.reply_node = "n2";
  event.reply_simproc = "ledger";
  v.push_back(event);
  TestEnvelope empty = event;
  empty.data.clear();
  empty.headers.clear();
  empty.has_reply_to = false;
  empty.reply_node.clear();
  empty.reply_simproc.clear();
  empty.epoch = std::numeric_limits<double>::infinity();
  v.push_back(empty);
  TestEnvelope big = event;
  big.data.assign(100'000, 0x5a);
  big.external = true;
  big.data_format = 0;
  v.push_back(big);
  TestEnvelope control;
  control.kind = 2;
  control.epoch = std::nan("");
  v.push_back(control);
  return v;
}

void round_trips_every_field_through_a_ring() {
  HeapRing ring(1 << 20);
  std::unique_ptr<RingProducer> producer;
  std::unique_ptr<RingConsumer> consumer;
  CHECK_EQ(RingProducer::attach(ring.memory(), "", &producer), Status::kOk);
  CHECK_EQ(RingConsumer::attach(ring.memory(), disco::BellKind::kFutex, &consumer), Status::kOk);
  BatchEncoder encoder;
  StagingWriter writer;
  Reader reader;
  const auto sent = sample_envelopes();
  for (uint64_t round = 1; round <= 3; ++round) {
    writer.begin(1, round << 40, round, false);
    for (const auto& e : sent) writer.add(e);
    const auto staging = writer.finish();
    const auto payloads = writer.payloads();
    CHECK_EQ(
        encoder.write(*producer, staging.data(), staging.size(), payloads.data(), payloads.size()),
        Status::kOk);
    std::vector<TestEnvelope> got;
    uint64_t link_seq = 0;
    CHECK_EQ(reader.read(*consumer, &got, &link_seq), Status::kOk);
    CHECK_EQ(link_seq, round << 40);
    CHECK_EQ(got.size(), sent.size());
    for (size_t i = 0; i < got.size() && i < sent.size(); ++i) {
      if (!same(got[i], sent[i])) {
        std::fprintf(stderr, "envelope %zu differs in round %llu: %s/%s %zu/%zu hdr %zu/%zu\n", i,
                     static_cast<unsigned long long>(round), got[i].reply_node.c_str(),
                     sent[i].reply_node.c_str(), got[i].data.size(), sent[i].data.size(),
                     got[i].headers.size(), sent[i].headers.size());
        for (size_t h = 0; h < got[i].headers.size(); ++h) {
          std::fprintf(stderr, "  %s=%s\n", got[i].headers[h].first.c_str(),
                       got[i].headers[h].second.c_str());
        }
        CHECK(false);
      }
    }
    // Strings travel once: later rounds define nothing new on either side.
    CHECK_EQ(reader.out.summary[3], round == 1 ? reader.table.size() : 0u);
  }
}

void builds_a_frame_the_reference_decoder_reads() {
  StagingWriter writer;
  writer.begin(0, 77, 5);
  for (const auto& e : sample_envelopes()) writer.add(e);
  const auto staging = writer.finish();
  const auto payloads = writer.payloads();
  BatchEncoder encoder;
  PreparedBatch b;
  CHECK_EQ(encoder.prepare(staging.data(), staging.size(), payloads.data(), payloads.size(), &b),
           Status::kOk);
  disco::test::ExactBuffer region(std::vector<uint8_t>(b.bound).data(), b.bound);
  size_t offset = 0;
  size_t length = 0;
  CHECK_EQ(encoder.build(b, payloads.data(), payloads.size(), region.data(), region.size(), &offset,
                         &length),
           Status::kOk);
  CHECK_EQ(offset + length, b.bound);
  CHECK_EQ(offset % 8, 0u);
  std::string json;
  CHECK_EQ(disco::testing::describe_frame(region.data() + offset, length, &json), Status::kOk);
  CHECK(json.find("\"linkSeq\":\"77\"") != std::string::npos);
  CHECK(json.find("\"seqnr\":\"18446744073709551615\"") != std::string::npos);
  CHECK(json.find("grüße ✓ 日本") != std::string::npos);
  CHECK(json.find("\"replyTo\":{\"node\":\"n2\",\"simproc\":\"ledger\"}") != std::string::npos);
}

std::string random_string(std::mt19937_64& rng, size_t max) {
  std::string s(rng() % (max + 1), 'x');
  for (char& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

void holds_the_size_bound_for_random_batches() {
  std::mt19937_64 rng(20240601);
  BatchEncoder encoder;
  StagingWriter writer;
  double worst_ratio = 0;
  for (int round = 0; round < 400; ++round) {
    writer.begin(static_cast<uint8_t>(rng() % 2), rng(), rng() % 3 == 0 ? 0 : rng(),
                 round % 50 == 0);
    const size_t count = round % 10 == 0 ? 0 : 1 + rng() % 200;
    for (size_t i = 0; i < count; ++i) {
      TestEnvelope e;
      e.kind = static_cast<uint8_t>(rng() % 3);
      e.data_format = static_cast<uint8_t>(rng() % 2);
      e.hops = static_cast<uint8_t>(rng() % 3 == 0 ? rng() : 0);
      e.repid = rng() % 2 == 0 ? 0 : static_cast<uint32_t>(rng());
      e.num_events = rng() % 2 == 0 ? 0 : static_cast<uint32_t>(rng());
      e.epoch = rng() % 4 == 0 ? 0.0 : static_cast<double>(rng() % 100000) / 7.0;
      e.seqnr = rng() % 2 == 0 ? 0 : rng();
      e.sender_node = "n" + std::to_string(rng() % 40);
      e.sender_simproc = random_string(rng, 12);
      e.target_node = "n" + std::to_string(rng() % 40);
      e.target_simproc = random_string(rng, 12);
      for (size_t h = rng() % 4 == 0 ? rng() % 6 : 0; h > 0; --h) {
        e.headers.emplace_back(random_string(rng, 10), random_string(rng, 40));
      }
      e.has_data = rng() % 5 != 0;
      if (e.has_data) {
        const size_t n = rng() % 10 == 0 ? rng() % 20000 : rng() % 300;
        e.data.resize(n);
        for (auto& byte : e.data) byte = static_cast<uint8_t>(rng());
        e.external = n >= 4096;
      }
      e.has_reply_to = rng() % 6 == 0;
      if (e.has_reply_to) {
        e.reply_node = "n" + std::to_string(rng() % 40);
        e.reply_simproc = random_string(rng, 8);
      }
      writer.add(e);
    }
    const auto staging = writer.finish();
    const auto payloads = writer.payloads();
    PreparedBatch b;
    CHECK_EQ(encoder.prepare(staging.data(), staging.size(), payloads.data(), payloads.size(), &b),
             Status::kOk);
    // Exactly `bound` heap bytes: AddressSanitizer catches a builder write outside them, and
    // the allocator reports any request for more.
    std::vector<uint8_t> zeros(b.bound);
    disco::test::ExactBuffer region(zeros.data(), zeros.size());
    size_t offset = 0;
    size_t length = 0;
    CHECK_EQ(encoder.build(b, payloads.data(), payloads.size(), region.data(), region.size(),
                           &offset, &length),
             Status::kOk);
    CHECK_EQ(disco::verify_frame(region.data() + offset, length), Status::kOk);
    const double ratio = static_cast<double>(b.bound) / static_cast<double>(length);
    if (ratio > worst_ratio) worst_ratio = ratio;
  }
  std::printf("bound / frame size: at most %.2f over 400 random batches\n", worst_ratio);
}

void reports_a_region_smaller_than_the_bound() {
  StagingWriter writer;
  writer.begin(0, 1, 0);
  for (const auto& e : sample_envelopes()) writer.add(e);
  const auto staging = writer.finish();
  const auto payloads = writer.payloads();
  BatchEncoder encoder;
  PreparedBatch b;
  CHECK_EQ(encoder.prepare(staging.data(), staging.size(), payloads.data(), payloads.size(), &b),
           Status::kOk);
  std::vector<uint8_t> region(b.bound);
  size_t offset = 0;
  size_t length = 0;
  CHECK_EQ(encoder.build(b, payloads.data(), payloads.size(), region.data(), b.bound - 8, &offset,
                         &length),
           Status::kInvalidArgument);
  // A lying bound (the builder must then leave the region): the allocator notices.
  PreparedBatch lying = b;
  lying.bound = 64;
  std::vector<uint8_t> small(64);
  CHECK_EQ(
      encoder.build(lying, payloads.data(), payloads.size(), small.data(), 64, &offset, &length),
      Status::kBoundExceeded);
}

void rejects_malformed_staging() {
  StagingWriter writer;
  writer.begin(1, 9, 9);
  for (const auto& e : sample_envelopes()) writer.add(e);
  const auto staging = writer.finish();
  const auto payloads = writer.payloads();
  PreparedBatch b;
  // Every truncation (with used_bytes still claiming the whole): BAD_BATCH.
  for (size_t n = 0; n < staging.size(); ++n) {
    BatchEncoder encoder;
    disco::test::ExactBuffer cut(staging.data(), n);
    CHECK_EQ(encoder.prepare(cut.data(), n, payloads.data(), payloads.size(), &b),
             Status::kBadBatch);
  }
  auto patched = [&](size_t at, uint32_t value) {
    std::vector<uint8_t> s = staging;
    std::memcpy(s.data() + at, &value, 4);
    BatchEncoder encoder;
    return encoder.prepare(s.data(), s.size(), payloads.data(), payloads.size(), &b);
  };
  uint32_t strings_at = 0;
  std::memcpy(&strings_at, staging.data() + 16, 4);
  CHECK_EQ(patched(0, 0x12345678), Status::kBadBatch);                // magic
  CHECK_EQ(patched(4, 2), Status::kBadBatch);                         // version
  CHECK_EQ(patched(4, 1 | (2u << 16)), Status::kBadBatch);            // unknown flag
  CHECK_EQ(patched(8, 47), Status::kBadBatch);                        // used < header
  CHECK_EQ(patched(12, 6), Status::kBadBatch);                        // more envelopes
  CHECK_EQ(patched(12, 4), Status::kBadBatch);                        // fewer envelopes
  CHECK_EQ(patched(16, 47), Status::kBadBatch);                       // strings_at < header
  CHECK_EQ(patched(16, strings_at + 4), Status::kBadBatch);           // strings_at misplaced
  CHECK_EQ(patched(16, 0xFFFFFFF0u), Status::kBadBatch);              // strings_at past used
  CHECK_EQ(patched(20, 1000), Status::kBadBatch);                     // string count
  CHECK_EQ(patched(20, 1), Status::kBadBatch);                        // definitions left over
  CHECK_EQ(patched(24, 2), Status::kBadBatch);                        // lane
  CHECK_EQ(patched(28, 1), Status::kBadBatch);                        // reserved word
  CHECK_EQ(patched(strings_at, 5), Status::kBadBatch);                // first id not 0
  CHECK_EQ(patched(strings_at + 4, 0xFFFFFFF0u), Status::kBadBatch);  // string length
  {
    BatchEncoder encoder;
    CHECK_EQ(encoder.prepare(staging.data(), staging.size(), nullptr, 0, &b), Status::kBadBatch);
    std::vector<PayloadSpan> shorter = payloads;
    shorter[0].length -= 1;
    CHECK_EQ(encoder.prepare(staging.data(), staging.size(), shorter.data(), shorter.size(), &b),
             Status::kBadBatch);
  }
  // A string id used before it is defined.
  StagingWriter other;
  other.begin(0, 1, 0);
  TestEnvelope e;
  other.add(e);
  auto undefined = other.finish();
  // Drop the definitions: the envelope names ids nobody defined.
  const uint32_t zero = 0;
  std::memcpy(undefined.data() + 20, &zero, 4);
  std::memcpy(undefined.data() + 8, undefined.data() + 16, 4);
  BatchEncoder encoder;
  CHECK_EQ(encoder.prepare(undefined.data(), undefined.size(), nullptr, 0, &b), Status::kBadBatch);
}

void keeps_producer_strings_consistent() {
  disco::ProducerStrings strings;
  const auto* a = reinterpret_cast<const uint8_t*>("alpha");
  const auto* b = reinterpret_cast<const uint8_t*>("beta");
  CHECK_EQ(strings.define(0, a, 5), Status::kOk);
  CHECK_EQ(strings.define(0, a, 5), Status::kOk);  // a retried batch
  CHECK_EQ(strings.define(0, b, 4), Status::kBadBatch);
  CHECK_EQ(strings.define(2, b, 4), Status::kBadBatch);
  CHECK_EQ(strings.define(1, b, 4), Status::kOk);
  CHECK_EQ(strings.size(), 2u);
  strings.clear();
  CHECK_EQ(strings.define(1, b, 4), Status::kBadBatch);
  CHECK_EQ(strings.define(0, b, 4), Status::kOk);
}

void interns_and_truncates_strings() {
  disco::StringTable table;
  bool inserted = false;
  std::vector<std::string> words;
  for (int i = 0; i < 5000; ++i) words.push_back("w" + std::to_string(i * 7919));
  for (int i = 0; i < 5000; ++i) {
    const auto& s = words[i];
    CHECK_EQ(table.intern(reinterpret_cast<const uint8_t*>(s.data()), s.size(), &inserted),
             static_cast<uint32_t>(i));
    CHECK(inserted);
  }
  table.truncate(3000);
  CHECK_EQ(table.size(), 3000u);
  for (int i = 0; i < 3000; ++i) {
    const auto& s = words[i];
    CHECK_EQ(table.intern(reinterpret_cast<const uint8_t*>(s.data()), s.size(), &inserted),
             static_cast<uint32_t>(i));
    CHECK(!inserted);
  }
  const auto& s = words[4000];
  CHECK_EQ(table.intern(reinterpret_cast<const uint8_t*>(s.data()), s.size(), &inserted), 3000u);
  CHECK(inserted);
  CHECK_EQ(table.intern(nullptr, 0, &inserted), 3001u);
  CHECK_EQ(table.intern(nullptr, 0, &inserted), 3001u);
  table.clear();
  CHECK_EQ(table.size(), 0u);
}

/// Writes `count` one-envelope batches with distinct strings; returns how many were written.
void write_batches(RingProducer& p, BatchEncoder& enc, StagingWriter& w, int first, int count) {
  for (int i = first; i < first + count; ++i) {
    w.begin(1, static_cast<uint64_t>(i) + 1, 0);
    TestEnvelope e;
    e.sender_simproc = "simproc-" + std::to_string(i);
    e.has_data = true;
    e.data = {1, 2, 3};
    w.add(e);
    const auto staging = w.finish();
    CHECK_EQ(enc.write(p, staging.data(), staging.size(), nullptr, 0), Status::kOk);
  }
}

void stops_before_a_frame_the_outputs_cannot_hold() {
  HeapRing ring(1 << 20);
  std::unique_ptr<RingProducer> producer;
  std::unique_ptr<RingConsumer> consumer;
  CHECK_EQ(RingProducer::attach(ring.memory(), "", &producer), Status::kOk);
  CHECK_EQ(RingConsumer::attach(ring.memory(), disco::BellKind::kFutex, &consumer), Status::kOk);
  BatchEncoder encoder;
  StagingWriter writer;
  // A frame of 10 envelopes with 2 headers each, then three of one envelope.
  writer.begin(1, 1, 0);
  for (int i = 0; i < 10; ++i) {
    TestEnvelope e;
    e.headers = {{"k", "v" + std::to_string(i)}, {"k2", "v"}};
    writer.add(e);
  }
  const auto staging = writer.finish();
  CHECK_EQ(encoder.write(*producer, staging.data(), staging.size(), nullptr, 0), Status::kOk);
  write_batches(*producer, encoder, writer, 100, 3);

  Reader small;
  small.out = Outputs(4, 64, 64, 8);
  std::vector<TestEnvelope> got;
  CHECK_EQ(small.read(*consumer, &got), Status::kOutputTooSmall);
  CHECK_EQ(small.out.summary[6], 10u);
  CHECK_EQ(small.out.summary[7], 20u);
  CHECK(small.out.summary[8] >= 20u);
  // Grown as the summary asks, the same frame comes through; then the rest, two per batch
  // because only two envelopes fit.
  Reader big;
  big.out = Outputs(10, 20, 60, 8);
  CHECK_EQ(big.read(*consumer, &got), Status::kOk);
  CHECK_EQ(got.size(), 10u);
  CHECK_EQ(got[9].headers[0].second, std::string("v9"));
  big.out = Outputs(2, 20, 60, 8);
  got.clear();
  CHECK_EQ(big.read(*consumer, &got), Status::kOk);
  CHECK_EQ(got.size(), 2u);
  got.clear();
  CHECK_EQ(big.read(*consumer, &got), Status::kOk);
  CHECK_EQ(got.size(), 1u);
}

void resets_the_consumer_string_table_past_its_soft_limit() {
  HeapRing ring(uint64_t{1} << 24);
  std::unique_ptr<RingProducer> producer;
  std::unique_ptr<RingConsumer> consumer;
  CHECK_EQ(RingProducer::attach(ring.memory(), "", &producer), Status::kOk);
  CHECK_EQ(RingConsumer::attach(ring.memory(), disco::BellKind::kFutex, &consumer), Status::kOk);
  BatchEncoder encoder;
  StagingWriter writer;
  Reader reader;
  const int total = static_cast<int>(disco::kStringSoftEntries) + 5000;
  int written = 0;
  int read = 0;
  bool saw_reset = false;
  while (read < total) {
    if (written < total) {
      const int n = std::min(2000, total - written);
      write_batches(*producer, encoder, writer, written, n);
      written += n;
    }
    std::vector<TestEnvelope> got;
    Status s = Status::kOk;
    while ((s = reader.read(*consumer, &got)) == Status::kOk) {
      saw_reset = saw_reset || (reader.out.summary[5] & disco::kSummaryStringsReset) != 0;
    }
    CHECK_EQ(s, Status::kRingEmpty);
    for (const auto& e : got) {
      CHECK_EQ(e.sender_simproc, "simproc-" + std::to_string(read));
      ++read;
    }
  }
  CHECK(saw_reset);
  CHECK(reader.table.size() < disco::kStringSoftEntries);
}

void sends_a_batch_larger_than_a_record_in_chunks() {
  HeapRing ring(1 << 16);
  std::unique_ptr<RingProducer> producer;
  std::unique_ptr<RingConsumer> consumer;
  CHECK_EQ(RingProducer::attach(ring.memory(), "", &producer), Status::kOk);
  CHECK_EQ(RingConsumer::attach(ring.memory(), disco::BellKind::kFutex, &consumer), Status::kOk);
  BatchEncoder encoder;
  StagingWriter writer;
  writer.begin(1, 5, 0);
  TestEnvelope e;
  e.has_data = true;
  e.external = true;
  e.data.resize(300'000);
  for (size_t i = 0; i < e.data.size(); ++i) e.data[i] = static_cast<uint8_t>(i * 31);
  writer.add(e);
  const auto staging = writer.finish();
  const auto payloads = writer.payloads();
  Status s =
      encoder.write(*producer, staging.data(), staging.size(), payloads.data(), payloads.size());
  CHECK_EQ(s, Status::kWritePending);
  Reader reader;
  std::vector<TestEnvelope> got;
  for (int i = 0; i < 10000 && got.empty(); ++i) {
    const Status r = reader.read(*consumer, &got);
    CHECK(r == Status::kOk || r == Status::kRingEmpty);
    if (r == Status::kOk) CHECK((reader.out.summary[5] & disco::kSummaryReassembled) != 0);
    if (producer->has_pending()) {
      s = producer->flush();
      CHECK(s == Status::kOk || s == Status::kWritePending);
    }
  }
  CHECK_EQ(got.size(), 1u);
  if (!got.empty()) CHECK(got[0].data == e.data);
}

}  // namespace

int main() {
  round_trips_every_field_through_a_ring();
  builds_a_frame_the_reference_decoder_reads();
  holds_the_size_bound_for_random_batches();
  reports_a_region_smaller_than_the_bound();
  rejects_malformed_staging();
  keeps_producer_strings_consistent();
  interns_and_truncates_strings();
  stops_before_a_frame_the_outputs_cannot_hold();
  resets_the_consumer_string_table_past_its_soft_limit();
  sends_a_batch_larger_than_a_record_in_chunks();
  return disco::test::check_exit_code();
}
