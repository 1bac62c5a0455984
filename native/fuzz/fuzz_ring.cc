// libFuzzer target for the ring's record reader and the batch decoder (DESIGN §5, §12): an
// arbitrary segment must never make RingConsumer::read_batch() or BatchDecoder read outside the
// ring or loop forever; it gets statuses. A second mode feeds the bytes to the staging-layout
// parser and the in-place builder, the other place native code reads a layout it did not write.
//
// Input:
//   byte 0      mode: bit 0 reseal every FRAME record before reading (so mutated frames pass
//               the checksum and reach the FlatBuffers verifier and the decoder),
//               bit 1 treat bytes 24.. as a staging layout instead of ring data
//   bytes 8..15 head, bytes 16..23 tail (u64, as the segment would hold them)
//   bytes 24..  the start of the data area (the rest of it is zero), or the staging layout
// The ring is a fresh 64 KiB one in an exact-size heap block, so AddressSanitizer flags any
// read past the header page or the data area. Seeds (test/fuzz/corpus/ring) are real rings:
// small batches, a wrap with its padding record, a chunked message, and staging layouts.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "batch.h"
#include "frame.h"
#include "ring.h"

namespace {

constexpr uint64_t kCapacity = disco::kMinRingCapacity;
constexpr size_t kPrefixBytes = 24;

void require(bool ok) {
  if (!ok) __builtin_trap();
}

uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

/// Reseals the frame of every well-formed FRAME record in [head, tail), as a producer would have.
void reseal(uint8_t* data, uint64_t head, uint64_t tail) {
  uint64_t pos = head;
  for (int steps = 0; pos < tail && steps < 4096; ++steps) {
    const uint64_t index = pos & (kCapacity - 1);
    // Fuzzed positions need not be aligned: never read a record header past the data area.
    if (index > kCapacity - 16) return;
    uint32_t bytes = 0;
    uint16_t type = 0;
    std::memcpy(&bytes, data + index, 4);
    std::memcpy(&type, data + index + 4, 2);
    if (bytes < 8 || bytes % 8 != 0 || bytes > kCapacity - index) return;
    if (type == static_cast<uint16_t>(disco::RecordType::kFrame) && bytes >= 16) {
      uint32_t offset = 0;
      uint32_t length = 0;
      std::memcpy(&offset, data + index + 8, 4);
      std::memcpy(&length, data + index + 12, 4);
      if (offset >= 16 && offset <= bytes && length <= bytes - offset) {
        (void)disco::seal_frame(data + index + offset, length);
      }
    }
    pos += bytes;
  }
}

void fuzz_ring(const uint8_t* input, size_t size) {
  const size_t total = disco::kRingHeaderBytes + kCapacity;
  std::unique_ptr<uint8_t, decltype(&std::free)> block(
      static_cast<uint8_t*>(std::aligned_alloc(4096, total)), &std::free);
  require(block != nullptr);
  std::memset(block.get(), 0, total);
  uint8_t* data = block.get() + disco::kRingHeaderBytes;
  const size_t payload = size - kPrefixBytes;
  std::memcpy(data, input + kPrefixBytes, payload < kCapacity ? payload : kCapacity);
  const uint64_t head = load64(input + 8);
  const uint64_t tail = load64(input + 16);
  if ((input[0] & 1) != 0 && head <= tail && tail - head <= kCapacity) reseal(data, head, tail);

  disco::RingMemory memory;
  require(disco::ring_memory_over(block.get(), kCapacity, &memory) == disco::Status::kOk);
  memory.header->head.store(head);
  memory.header->tail.store(tail);
  std::unique_ptr<disco::RingConsumer> consumer;
  if (disco::RingConsumer::attach(memory, disco::BellKind::kFutex, &consumer) !=
      disco::Status::kOk) {
    return;
  }

  std::vector<uint32_t> summary(disco::kSummaryWords);
  std::vector<uint32_t> frames(disco::kFrameWords * 8);
  std::vector<uint32_t> envelopes(disco::kEnvelopeWords * 64);
  std::vector<double> epochs(64);
  std::vector<uint32_t> headers(2 * 64);
  std::vector<uint32_t> strings(2 * 64);
  disco::DecodeTarget target{summary.data(),
                             frames.data(),
                             8,
                             envelopes.data(),
                             epochs.data(),
                             64,
                             headers.data(),
                             64,
                             strings.data(),
                             64};
  disco::BatchDecoder decoder;
  disco::RecordSpan spans[8];
  for (int round = 0; round < 64; ++round) {
    decoder.begin(target);
    disco::RecordBatch batch;
    const disco::Status s =
        consumer->read_batch(8, SIZE_MAX, spans, &batch, &disco::BatchDecoder::visit, &decoder);
    require(disco::is_known_status(static_cast<int32_t>(s)));
    if (s != disco::Status::kOk) break;
    decoder.finish(batch.reassembled);
    require(batch.count >= 1 && summary[0] == batch.count);
    // Every offset handed to JS stays inside the batch view.
    for (uint32_t i = 0; i < summary[1]; ++i) {
      const uint32_t* e = envelopes.data() + disco::kEnvelopeWords * i;
      require(uint64_t{e[9]} + e[10] <= batch.region_bytes);
    }
    for (uint32_t i = 0; i < summary[3]; ++i) {
      require(uint64_t{strings[2 * i]} + strings[2 * i + 1] <= batch.region_bytes);
    }
    if (!batch.reassembled) {
      require(batch.region >= data && batch.region + batch.region_bytes <= data + kCapacity);
    }
    require(consumer->release(batch) == disco::Status::kOk);
  }
}

void fuzz_staging(const uint8_t* input, size_t size) {
  // An exact-size copy: a read past the layout is an AddressSanitizer report.
  const size_t n = size - kPrefixBytes;
  std::unique_ptr<uint8_t[]> layout(new uint8_t[n == 0 ? 1 : n]);
  std::memcpy(layout.get(), input + kPrefixBytes, n);
  const uint8_t external[5000] = {};
  const disco::PayloadSpan payloads[2] = {{external, 4096}, {external, sizeof(external)}};
  disco::BatchEncoder encoder;
  disco::PreparedBatch batch;
  if (encoder.prepare(layout.get(), n, payloads, 2, &batch) != disco::Status::kOk) return;
  if (batch.bound > (uint64_t{4} << 20)) return;  // keep each run small
  std::unique_ptr<uint8_t, decltype(&std::free)> region(
      static_cast<uint8_t*>(std::aligned_alloc(8, batch.bound)), &std::free);
  require(region != nullptr);
  size_t offset = 0;
  size_t length = 0;
  const disco::Status s =
      encoder.build(batch, payloads, 2, region.get(), batch.bound, &offset, &length);
  // A layout that prepare() accepted always builds within its bound, into a valid frame.
  require(s == disco::Status::kOk);
  require(disco::verify_frame(region.get() + offset, length) == disco::Status::kOk);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kPrefixBytes) return 0;
  if ((data[0] & 2) != 0) {
    fuzz_staging(data, size);
  } else {
    fuzz_ring(data, size);
  }
  return 0;
}
