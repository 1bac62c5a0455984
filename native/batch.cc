// Staging layout -> FlatBuffers frame in place, and verified frame -> decoded layout; the
// layouts and contracts are in batch.h.

#include "batch.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "flatbuffers/flatbuffers.h"
#include "frame.h"
#include "generated/envelope_generated.h"

// Header-only xxHash (see frame.cc): the intern table's hash.
#define XXH_INLINE_ALL
#include "xxhash.h"

namespace disco {

namespace fb = flatbuffers;
namespace w = disco::wire;

namespace {

// ---- the size bound -------------------------------------------------------------------------
//
// FlatBufferBuilder grows its buffer only through Align/PreAlign padding and the bytes of each
// object, plus scratch space at the bottom of the same buffer: one FieldLoc (8 bytes) per
// field of the table being built, and one u32 per distinct vtable for the dedup scan. So an
// upper bound is the sum over every object of its bytes and the most padding its alignment
// can add, with no credit for vtable deduplication, plus the scratch peak. Per object:
//
//   table    vtable (4 + 2 x slots) + soffset (4, aligned to 4: +3)
//            + each scalar field: size + (size - 1) alignment; each offset field: 4 + 3
//   string   length u32 + bytes + NUL + up to 3 alignment = bytes + 8
//   vector   length u32 + elements + up to 3 (u32) and 7 (forced 8 alignment of data) padding,
//            plus up to 3 before EndVector's length: elements + 17
//   finish   root offset 4 + identifier 4 + up to 7 to the 8-byte minimum alignment
//
// Slot counts come from the schema: the largest field id + 1 of each table.
constexpr uint64_t kOffsetField = 4 + 3;
constexpr uint64_t scalar_field(uint64_t size) { return size + (size - 1); }
constexpr uint64_t table_bound(uint64_t slots, uint64_t fields) {
  return (4 + 2 * slots) + (4 + 3) + fields;
}
constexpr uint64_t kEnvelopeTableBound =
    table_bound(15, (48 + 7) /* head: a 48-byte struct, 8-aligned */ + kOffsetField /* headers */ +
                        kOffsetField /* data */ + kOffsetField /* reply_to */);
constexpr uint64_t kHeaderTableBound = table_bound(2, 2 * kOffsetField);
constexpr uint64_t kAddressTableBound = table_bound(2, 2 * kOffsetField);
constexpr uint64_t kFrameTableBound = table_bound(
    5, scalar_field(8) + scalar_field(8) + scalar_field(1) + kOffsetField + kOffsetField);
constexpr uint64_t kStringOverhead = 4 + 1 + 3;
constexpr uint64_t kVectorOverhead = 4 + 3 + 7 + 3;
constexpr uint64_t kFinishBound = 4 + 4 + 7;
constexpr uint64_t kFieldLocBytes = 8;
constexpr uint64_t kVtableScratch = 4;  // per table, as if none were deduplicated
constexpr uint64_t kMaxFieldsPerTable = 15;

static_assert(kEnvelopeTableBound == 117, "recount the Envelope bound when the schema changes");
static_assert(sizeof(w::EnvelopeHead) == 48, "EnvelopeHead is 48 bytes");
static_assert(w::Envelope::VT_HEAD == 4 + 2 * 14, "Envelope has 15 slots");
static_assert(w::Header::VT_VALUE == 4 + 2 * 1, "Header has 2 slots");
static_assert(w::Address::VT_SIMPROC == 4 + 2 * 1, "Address has 2 slots");
static_assert(w::Frame::VT_NAMES == 4 + 2 * 4, "Frame has 5 slots");

constexpr uint64_t align8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }

// ---- reading the staging layout -------------------------------------------------------------

uint16_t rd16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
uint32_t rd32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t rd64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
constexpr size_t pad4(size_t n) { return (n + 3) & ~size_t{3}; }

/// Reads the envelope at `*at` of `layout[0..used)`; advances `*at`. False when any part runs
/// past the layout, names an undefined string id or a missing payload, or has unknown values.
bool read_envelope(const uint8_t* layout, size_t used, size_t* at, uint32_t strings,
                   const PayloadSpan* payloads, size_t payload_count, StagedEnvelope* e) {
  size_t p = *at;
  if (p > used || used - p < kBatchEnvelopeFixedBytes) return false;
  const uint8_t* f = layout + p;
  e->kind = f[0];
  e->data_format = f[1];
  e->hops = f[2];
  e->flags = f[3];
  e->repid = rd32(f + 4);
  e->num_events = rd32(f + 8);
  e->sender_node = rd32(f + 12);
  e->sender_simproc = rd32(f + 16);
  e->target_node = rd32(f + 20);
  e->target_simproc = rd32(f + 24);
  e->header_count = rd32(f + 28);
  const uint64_t epoch_bits = rd64(f + 32);
  std::memcpy(&e->epoch, &epoch_bits, 8);
  e->seqnr = rd64(f + 40);
  e->data_length = rd32(f + 48);
  const uint32_t data_index = rd32(f + 52);
  p += kBatchEnvelopeFixedBytes;

  constexpr uint8_t kKnownFlags = kEnvelopeHasData | kEnvelopeDataExternal | kEnvelopeHasReplyTo;
  if (e->kind > static_cast<uint8_t>(w::Kind::MAX) ||
      e->data_format > static_cast<uint8_t>(w::DataFormat::MAX) || (e->flags & ~kKnownFlags) != 0 ||
      e->sender_node >= strings || e->sender_simproc >= strings || e->target_node >= strings ||
      e->target_simproc >= strings) {
    return false;
  }
  e->reply_node = kNoString;
  e->reply_simproc = kNoString;
  if ((e->flags & kEnvelopeHasReplyTo) != 0) {
    if (used - p < 8) return false;
    e->reply_node = rd32(layout + p);
    e->reply_simproc = rd32(layout + p + 4);
    if (e->reply_node >= strings || e->reply_simproc >= strings) return false;
    p += 8;
  }
  if (e->header_count > (used - p) / 8) return false;
  e->header_ids = layout + p;
  for (uint32_t i = 0; i < 2 * e->header_count; ++i) {
    if (rd32(e->header_ids + 4 * i) >= strings) return false;
  }
  p += size_t{8} * e->header_count;
  e->data = nullptr;
  if ((e->flags & kEnvelopeHasData) == 0) {
    if ((e->flags & kEnvelopeDataExternal) != 0 || e->data_length != 0) return false;
  } else if ((e->flags & kEnvelopeDataExternal) != 0) {
    if (data_index >= payload_count || payloads[data_index].length != e->data_length) return false;
    e->data = payloads[data_index].data;
  } else {
    if (e->data_length > used - p || pad4(e->data_length) > used - p) return false;
    e->data = layout + p;
    p += pad4(e->data_length);
  }
  *at = p;
  return true;
}

}  // namespace

uint32_t staged_lane(const uint8_t* layout, size_t bytes) noexcept {
  return layout != nullptr && bytes >= kBatchHeaderBytes ? rd32(layout + kBatchLaneOffset) : 0;
}

namespace {

/// The staging header, checked.
bool read_header(const uint8_t* layout, size_t bytes, PreparedBatch* out, uint16_t* flags,
                 uint32_t* string_count) {
  if (layout == nullptr || bytes < kBatchHeaderBytes) return false;
  if (rd32(layout) != kBatchMagic || rd16(layout + 4) != kBatchVersion) return false;
  *flags = rd16(layout + 6);
  const uint32_t used = rd32(layout + 8);
  const uint32_t strings_at = rd32(layout + 16);
  *string_count = rd32(layout + 20);
  const uint32_t lane = rd32(layout + kBatchLaneOffset);
  if ((*flags & ~kBatchResetStrings) != 0 || used > bytes || strings_at < kBatchHeaderBytes ||
      strings_at > used || strings_at % 4 != 0 || lane > static_cast<uint32_t>(w::Lane::MAX) ||
      rd32(layout + 28) != 0) {
    return false;
  }
  out->layout = layout;
  out->used_bytes = used;
  out->strings_at = strings_at;
  out->envelope_count = rd32(layout + 12);
  out->lane = static_cast<uint8_t>(lane);
  out->link_seq = rd64(layout + 32);
  out->ack = rd64(layout + 40);
  return true;
}

// ---- the allocator that hands out the slot --------------------------------------------------

/// Gives the FlatBufferBuilder exactly one region: the record slot (or heap block) it builds
/// in. A request beyond it means the size bound was wrong; it is served from the heap so the
/// builder stays correct, and build() reports kBoundExceeded.
class RegionAllocator final : public fb::Allocator {
 public:
  RegionAllocator(uint8_t* region, size_t bytes) noexcept : region_(region), bytes_(bytes) {}

  uint8_t* allocate(size_t size) override {
    if (!handed_out_ && size <= bytes_) {
      handed_out_ = true;
      return region_;
    }
    overflowed_ = true;
    auto* p = static_cast<uint8_t*>(std::malloc(size));
    // Out of memory while recovering from a bug: nothing sensible is left to do.
    if (p == nullptr) std::abort();
    return p;
  }

  void deallocate(uint8_t* p, size_t) override {
    if (p != region_) std::free(p);
  }

  uint8_t* reallocate_downward(uint8_t* old_p, size_t old_size, size_t new_size, size_t in_use_back,
                               size_t in_use_front) override {
    overflowed_ = true;
    return fb::Allocator::reallocate_downward(old_p, old_size, new_size, in_use_back, in_use_front);
  }

  [[nodiscard]] bool overflowed() const noexcept { return overflowed_; }

 private:
  uint8_t* const region_;
  const size_t bytes_;
  bool handed_out_ = false;
  bool overflowed_ = false;
};

}  // namespace

// ---- ProducerStrings ------------------------------------------------------------------------

Status ProducerStrings::define(uint32_t id, const uint8_t* bytes, uint32_t length) noexcept {
  if (id < size()) {
    // A repeated definition (a retried batch) must say the same thing.
    if (lengths_[id] != length || (length != 0 && std::memcmp(data(id), bytes, length) != 0)) {
      return Status::kBadBatch;
    }
    return Status::kOk;
  }
  if (id != size() || id >= kStringHardEntries || arena_.size() + length > kStringHardBytes) {
    return Status::kBadBatch;
  }
  offsets_.push_back(arena_.size());
  lengths_.push_back(length);
  arena_.append(reinterpret_cast<const char*>(bytes), length);
  return Status::kOk;
}

void ProducerStrings::clear() noexcept {
  arena_.clear();
  offsets_.clear();
  lengths_.clear();
}

// ---- BatchEncoder ---------------------------------------------------------------------------

Status BatchEncoder::prepare(const uint8_t* layout, size_t bytes, const PayloadSpan* payloads,
                             size_t payload_count, PreparedBatch* out) noexcept {
  PreparedBatch b;
  uint16_t flags = 0;
  uint32_t string_count = 0;
  if (!read_header(layout, bytes, &b, &flags, &string_count)) return Status::kBadBatch;
  if ((flags & kBatchResetStrings) != 0) strings_.clear();

  size_t at = b.strings_at;
  for (uint32_t i = 0; i < string_count; ++i) {
    if (b.used_bytes - at < 8) return Status::kBadBatch;
    const uint32_t id = rd32(layout + at);
    const uint32_t length = rd32(layout + at + 4);
    at += 8;
    if (length > b.used_bytes - at || pad4(length) > b.used_bytes - at) return Status::kBadBatch;
    if (Status s = strings_.define(id, layout + at, length); s != Status::kOk) return s;
    at += pad4(length);
  }
  if (at != b.used_bytes) return Status::kBadBatch;  // trailing bytes: a writer bug
  at = kBatchHeaderBytes;

  const uint32_t strings = strings_.size();
  if (stamp_.size() < strings) {
    stamp_.resize(strings, 0);
    offset_.resize(strings, 0);
  }
  const uint32_t gen = ++generation_;
  if (name_stamp_.size() < strings) {
    name_stamp_.resize(strings, 0);
    name_index_.resize(strings, 0);
  }
  auto string_bound = [&](uint32_t id) -> uint64_t {
    if (stamp_[id] == gen) return 0;  // already counted: built once per frame
    stamp_[id] = gen;
    return strings_.length(id) + kStringOverhead;
  };
  // A name is one string and one slot of the frame's names vector.
  auto name_bound = [&](uint32_t id) -> uint64_t {
    if (name_stamp_[id] == gen) return 0;
    name_stamp_[id] = gen;
    return 4 + string_bound(id);
  };

  uint64_t bound = kFrameHeaderBytes + kFinishBound + kFrameTableBound + kVtableScratch +
                   kMaxFieldsPerTable * kFieldLocBytes + 4 * uint64_t{b.envelope_count} +
                   2 * kVectorOverhead;
  staged_.clear();
  staged_layout_ = nullptr;
  StagedEnvelope e;
  for (uint32_t i = 0; i < b.envelope_count; ++i) {
    if (!read_envelope(layout, b.strings_at, &at, strings, payloads, payload_count, &e)) {
      return Status::kBadBatch;
    }
    staged_.push_back(e);
    bound += kEnvelopeTableBound + kVtableScratch;
    bound += name_bound(e.sender_node) + name_bound(e.sender_simproc) + name_bound(e.target_node) +
             name_bound(e.target_simproc);
    if (e.header_count > 0) {
      bound += 4 * uint64_t{e.header_count} + kVectorOverhead;
      bound += uint64_t{e.header_count} * (kHeaderTableBound + kVtableScratch);
      for (uint32_t h = 0; h < 2 * e.header_count; ++h) {
        bound += string_bound(rd32(e.header_ids + 4 * h));
      }
    }
    if ((e.flags & kEnvelopeHasReplyTo) != 0) {
      bound += kAddressTableBound + kVtableScratch;
      bound += string_bound(e.reply_node) + string_bound(e.reply_simproc);
    }
    if (e.data != nullptr) bound += uint64_t{e.data_length} + kVectorOverhead;
  }
  if (at != b.strings_at) return Status::kBadBatch;
  staged_layout_ = layout;
  b.bound = align8(bound);
  if (b.bound - kFrameHeaderBytes > kDefaultMaxBodyBytes + (uint64_t{1} << 20)) {
    return Status::kTooLarge;
  }
  *out = b;
  return Status::kOk;
}

/// One frame under construction (a helper of BatchEncoder::build).
class BatchBuild {
 public:
  BatchBuild(BatchEncoder& encoder, fb::FlatBufferBuilder& fbb, uint32_t gen,
             BorrowSlot* borrow) noexcept
      : enc_(encoder), fbb_(fbb), gen_(gen), borrow_(borrow) {}

  fb::Offset<fb::String> string(uint32_t id) {
    if (enc_.stamp_[id] != gen_) {
      enc_.stamp_[id] = gen_;
      enc_.offset_[id] = fbb_.CreateString(enc_.strings_.data(id), enc_.strings_.length(id)).o;
    }
    return fb::Offset<fb::String>(enc_.offset_[id]);
  }

  /// The index of string `id` in the frame's names vector, adding it on first use.
  uint32_t name(uint32_t id) {
    if (enc_.name_stamp_[id] != gen_) {
      enc_.name_stamp_[id] = gen_;
      enc_.name_index_[id] = static_cast<uint32_t>(enc_.names_.size());
      enc_.names_.push_back(string(id).o);
    }
    return enc_.name_index_[id];
  }

  fb::Offset<w::Envelope> envelope(const StagedEnvelope& e) {
    const w::EnvelopeHead head(e.epoch, e.seqnr, e.repid, e.num_events, name(e.sender_node),
                               name(e.sender_simproc), name(e.target_node), name(e.target_simproc),
                               static_cast<w::Kind>(e.kind),
                               static_cast<w::DataFormat>(e.data_format), e.hops);
    fb::Offset<fb::Vector<fb::Offset<w::Header>>> headers;
    if (e.header_count > 0) {
      enc_.headers_.clear();
      for (uint32_t h = 0; h < e.header_count; ++h) {
        const auto key = string(rd32(e.header_ids + 8 * h));
        const auto value = string(rd32(e.header_ids + 8 * h + 4));
        enc_.headers_.push_back(w::CreateHeader(fbb_, key, value).o);
      }
      fbb_.StartVector(e.header_count, sizeof(fb::uoffset_t));
      for (uint32_t h = e.header_count; h > 0; --h) {
        fbb_.PushElement(fb::Offset<w::Header>(enc_.headers_[h - 1]));
      }
      headers = fb::Offset<fb::Vector<fb::Offset<w::Header>>>(fbb_.EndVector(e.header_count));
    }
    fb::Offset<fb::Vector<uint8_t>> data;
    if (e.data != nullptr) {
      // 8-byte aligned payloads let a receiver view them as Float64Array and friends.
      fbb_.ForceVectorAlignment(e.data_length, 1, 8);
      if (borrow_ != nullptr && borrow_->slot == nullptr && e.data == borrow_->payload.data &&
          e.data_length == borrow_->payload.length) {
        // Left for the producer to copy from its owner straight into the ring.
        data = fb::Offset<fb::Vector<uint8_t>>(
            fbb_.CreateUninitializedVector(e.data_length, 1, &borrow_->slot));
      } else {
        data = fbb_.CreateVector(e.data, e.data_length);  // the one copy of the payload
      }
    }
    fb::Offset<w::Address> reply_to;
    if ((e.flags & kEnvelopeHasReplyTo) != 0) {
      const auto node = string(e.reply_node);
      const auto simproc = string(e.reply_simproc);
      reply_to = w::CreateAddress(fbb_, node, simproc);
    }
    return w::CreateEnvelope(fbb_, headers, data, reply_to, &head);
  }

 private:
  BatchEncoder& enc_;
  fb::FlatBufferBuilder& fbb_;
  const uint32_t gen_;
  BorrowSlot* const borrow_;
};

Status BatchEncoder::build(const PreparedBatch& b, const PayloadSpan* payloads,
                           size_t payload_count, uint8_t* region, size_t region_bytes,
                           size_t* frame_offset, size_t* frame_length, bool checksum,
                           BorrowSlot* borrow) noexcept {
  if (region == nullptr || region_bytes < b.bound || region_bytes % kFrameAlignment != 0 ||
      reinterpret_cast<uintptr_t>(region) % kFrameAlignment != 0 ||
      (borrow != nullptr && checksum)) {  // a checksum would read the unwritten bytes
    return Status::kInvalidArgument;
  }
  const uint32_t strings = strings_.size();
  RegionAllocator allocator(region, region_bytes);
  Status status = Status::kOk;
  size_t body_size = 0;
  {
    fb::FlatBufferBuilder fbb(region_bytes, &allocator, false, kFrameAlignment);
    // The body must be a multiple of 8 bytes so that, built down from an 8-aligned end, it
    // starts 8-aligned; Finish pads to the largest alignment seen, so make that 8 whatever
    // fields the batch happens to set.
    fbb.TrackMinAlign(8);
    BatchBuild build(*this, fbb, ++generation_, borrow);
    envelopes_.clear();
    envelopes_.reserve(b.envelope_count);
    names_.clear();
    // The envelopes prepare() read, when this is its batch (the usual case: both run in one
    // call, so the staging buffer cannot have changed); else they are read again.
    if (staged_layout_ == b.layout && staged_.size() == b.envelope_count) {
      for (const StagedEnvelope& e : staged_) envelopes_.push_back(build.envelope(e).o);
    } else {
      size_t at = kBatchHeaderBytes;
      StagedEnvelope e;
      for (uint32_t i = 0; i < b.envelope_count && status == Status::kOk; ++i) {
        if (!read_envelope(b.layout, b.strings_at, &at, strings, payloads, payload_count, &e)) {
          status = Status::kBadBatch;
          break;
        }
        envelopes_.push_back(build.envelope(e).o);
      }
    }
    if (status == Status::kOk) {
      fbb.StartVector(envelopes_.size(), sizeof(fb::uoffset_t));
      for (size_t i = envelopes_.size(); i > 0; --i) {
        fbb.PushElement(fb::Offset<w::Envelope>(envelopes_[i - 1]));
      }
      const auto vector =
          fb::Offset<fb::Vector<fb::Offset<w::Envelope>>>(fbb.EndVector(envelopes_.size()));
      fbb.StartVector(names_.size(), sizeof(fb::uoffset_t));
      for (size_t i = names_.size(); i > 0; --i) {
        fbb.PushElement(fb::Offset<fb::String>(names_[i - 1]));
      }
      const auto names =
          fb::Offset<fb::Vector<fb::Offset<fb::String>>>(fbb.EndVector(names_.size()));
      const auto frame =
          w::CreateFrame(fbb, b.link_seq, b.ack, static_cast<w::Lane>(b.lane), vector, names);
      w::FinishFrameBuffer(fbb, frame);
      body_size = fbb.GetSize();
      if (allocator.overflowed() || fbb.GetBufferPointer() != region + region_bytes - body_size ||
          body_size + kFrameHeaderBytes > region_bytes) {
        status = Status::kBoundExceeded;
      }
    }
    // The builder's destructor hands a heap fallback back to the allocator.
  }
  if (status != Status::kOk) return status;
  const size_t offset = region_bytes - body_size - kFrameHeaderBytes;
  const size_t length = body_size + kFrameHeaderBytes;
  const Status sealed = checksum ? seal_frame(region + offset, length)
                                 : seal_frame_unchecked(region + offset, length);
  if (sealed != Status::kOk) return sealed;
  *frame_offset = offset;
  *frame_length = length;
  return Status::kOk;
}

Status BatchEncoder::write(RingProducer& producer, const uint8_t* layout, size_t bytes,
                           const PayloadSpan* payloads, size_t payload_count,
                           size_t* borrowed) noexcept {
  if (borrowed != nullptr) *borrowed = kNoPayload;
  PreparedBatch b;
  if (Status s = prepare(layout, bytes, payloads, payload_count, &b); s != Status::kOk) return s;
  size_t offset = 0;
  size_t length = 0;
  if (b.bound <= producer.max_content_bytes()) {
    uint8_t* slot = nullptr;
    if (Status s = producer.reserve(b.bound, &slot); s != Status::kOk) return s;
    const Status built = build(b, payloads, payload_count, slot, b.bound, &offset, &length, false);
    if (built != Status::kOk) {
      producer.abandon();
      return built;
    }
    return producer.commit(offset, length);
  }
  // Larger than a record: built in the heap, then chunked (the one case of two copies in).
  if (producer.has_pending()) {
    const Status s = producer.flush();
    if (s == Status::kWritePending) return Status::kRingFull;
    if (s != Status::kOk) return s;
  }
  static_assert(kFrameAlignment == kRecordAlignment, "take_block() aligns for frames");
  uint8_t* block = producer.take_block(b.bound);
  if (block == nullptr) return Status::kNoMemory;
  // The largest external payload is not copied into the block: the producer reads it from its
  // owner while it writes the chunks, so the bulk of the message is copied once, into the ring.
  size_t largest = kNoPayload;
  for (size_t i = 0; i < payload_count; ++i) {
    if (payloads[i].length > 0 &&
        (largest == kNoPayload || payloads[i].length > payloads[largest].length)) {
      largest = i;
    }
  }
  BorrowSlot borrow;
  if (largest != kNoPayload) borrow.payload = payloads[largest];
  Status s = build(b, payloads, payload_count, block, b.bound, &offset, &length, false,
                   largest != kNoPayload ? &borrow : nullptr);
  BorrowedRange range;
  if (borrow.slot != nullptr) {
    range = BorrowedRange{borrow.payload.data, static_cast<size_t>(borrow.slot - (block + offset)),
                          borrow.payload.length};
  }
  if (s == Status::kOk) s = producer.write_message_chunked(block, offset, length, b.bound, &range);
  if (s != Status::kOk && s != Status::kWritePending) producer.give_block(block, b.bound);
  if (borrowed != nullptr && producer.borrowing()) *borrowed = largest;
  return s;
}

// ---- StringTable ----------------------------------------------------------------------------

namespace {

uint32_t hash_bytes(const uint8_t* p, uint32_t n) noexcept {
  return static_cast<uint32_t>(XXH3_64bits(p, n));
}

}  // namespace

bool StringTable::over_soft_limit() const noexcept {
  return entries_.size() > kStringSoftEntries || arena_.size() > kStringSoftBytes;
}

void StringTable::grow() noexcept {
  const size_t capacity = slots_.empty() ? 64 : slots_.size() * 2;
  slots_.assign(capacity, 0);
  // Reinsert in id order: the deletion rule of truncate() relies on insertion order.
  for (uint32_t id = 0; id < entries_.size(); ++id) {
    size_t i = entries_[id].hash & (capacity - 1);
    while (slots_[i] != 0) i = (i + 1) & (capacity - 1);
    slots_[i] = id + 1;
  }
}

uint32_t StringTable::intern(const uint8_t* bytes, uint32_t length, bool* inserted) noexcept {
  *inserted = false;
  if (slots_.empty()) grow();
  const uint32_t hash = hash_bytes(bytes, length);
  const size_t mask = slots_.size() - 1;
  size_t i = hash & mask;
  for (; slots_[i] != 0; i = (i + 1) & mask) {
    const Entry& e = entries_[slots_[i] - 1];
    if (e.hash == hash && e.length == length &&
        (length == 0 || std::memcmp(arena_.data() + e.offset, bytes, length) == 0)) {
      return slots_[i] - 1;
    }
  }
  if (entries_.size() >= kStringHardEntries || arena_.size() + length > kStringHardBytes) {
    return kNoString;
  }
  const auto id = static_cast<uint32_t>(entries_.size());
  entries_.push_back(Entry{arena_.size(), length, hash});
  arena_.append(reinterpret_cast<const char*>(bytes), length);
  slots_[i] = id + 1;
  *inserted = true;
  if (2 * entries_.size() > slots_.size()) grow();
  return id;
}

size_t StringTable::slot_of(uint32_t id) const noexcept {
  const size_t mask = slots_.size() - 1;
  size_t i = entries_[id].hash & mask;
  while (slots_[i] != id + 1) i = (i + 1) & mask;
  return i;
}

void StringTable::truncate(uint32_t count) noexcept {
  // Newest first. With linear probing, an entry whose probe passes the slot of entry X was
  // inserted after X (the slot was taken when it probed), so it is already gone when X goes:
  // clearing X's slot cannot cut a remaining entry's probe sequence.
  while (entries_.size() > count) {
    const auto id = static_cast<uint32_t>(entries_.size() - 1);
    slots_[slot_of(id)] = 0;
    arena_.resize(entries_[id].offset);
    entries_.pop_back();
  }
}

void StringTable::clear() noexcept {
  arena_.clear();
  entries_.clear();
  slots_.clear();
}

// ---- BatchDecoder ---------------------------------------------------------------------------

namespace {

/// Bounds-checked reads of a FlatBuffers body (see BatchDecoder): every value read once, every
/// position checked against the body size before it is dereferenced.
class BodyReader {
 public:
  struct Table {
    size_t pos = 0;
    size_t vtable = 0;
    uint16_t vtable_size = 0;
    uint16_t table_size = 0;
  };

  BodyReader(const uint8_t* body, size_t size) noexcept : b_(body), n_(size) {}

  bool table_at(size_t pos, Table* t) const noexcept {
    if (pos > n_ || n_ - pos < 4) return false;
    int32_t soffset = 0;
    std::memcpy(&soffset, b_ + pos, 4);
    const int64_t vt = static_cast<int64_t>(pos) - soffset;
    if (vt < 0 || static_cast<uint64_t>(vt) + 4 > n_ || vt % 2 != 0) return false;
    t->pos = pos;
    t->vtable = static_cast<size_t>(vt);
    t->vtable_size = rd16(b_ + t->vtable);
    t->table_size = rd16(b_ + t->vtable + 2);
    return t->vtable_size >= 4 && t->vtable_size % 2 == 0 && t->vtable + t->vtable_size <= n_ &&
           t->table_size >= 4 && pos + t->table_size <= n_;
  }

  /// Position of field `voffset` of `t` holding `size` bytes, or 0 when absent.
  bool field(const Table& t, uint16_t voffset, size_t size, size_t* pos) const noexcept {
    *pos = 0;
    if (static_cast<size_t>(voffset) + 2 > t.vtable_size) return true;
    const uint16_t offset = rd16(b_ + t.vtable + voffset);
    if (offset == 0) return true;
    if (offset < 4 || offset + size > t.table_size) return false;
    *pos = t.pos + offset;
    return true;
  }

  bool deref(size_t pos, size_t* target) const noexcept {
    const uint64_t t = pos + uint64_t{rd32(b_ + pos)};
    if (t > n_ || n_ - t < 4) return false;
    *target = static_cast<size_t>(t);
    return true;
  }

  /// The string at the offset field `pos`: its bytes at body offset `*at`, `*length` long.
  bool string(size_t pos, size_t* at, uint32_t* length) const noexcept {
    size_t s = 0;
    if (!deref(pos, &s)) return false;
    *length = rd32(b_ + s);
    if (uint64_t{*length} + 1 > n_ - s - 4) return false;  // bytes and their NUL inside
    *at = s + 4;
    return true;
  }

  bool vector(size_t pos, size_t element, uint32_t* count, size_t* first) const noexcept {
    size_t v = 0;
    if (!deref(pos, &v)) return false;
    *count = rd32(b_ + v);
    if (uint64_t{*count} * element > n_ - v - 4) return false;
    *first = v + 4;
    return true;
  }

  template <typename T>
  T scalar(size_t pos, T fallback) const noexcept {
    if (pos == 0) return fallback;
    T v;
    std::memcpy(&v, b_ + pos, sizeof(T));
    return v;
  }

  const uint8_t* at(size_t pos) const noexcept { return b_ + pos; }

 private:
  const uint8_t* b_;
  size_t n_;
};

}  // namespace

/// One frame being decoded (a helper of BatchDecoder::decode).
class FrameDecode {
 public:
  FrameDecode(BatchDecoder& d, const BodyReader& r, size_t body_in_view) noexcept
      : d_(d), r_(r), body_in_view_(body_in_view) {}

  /// Decodes the whole frame at `frame_in_view` (its offset in the view) of `length` bytes.
  /// kOk, kOutputTooSmall or kCorruptRecord; on failure the caller rolls the outputs back.
  Status frame(uint32_t frame_in_view, uint32_t length) {
    BodyReader::Table root;
    size_t root_pos = 0;
    if (!r_.deref(0, &root_pos) || !r_.table_at(root_pos, &root)) return Status::kCorruptRecord;
    if (d_.frames_ >= d_.target_.frame_capacity) return Status::kOutputTooSmall;
    uint64_t link_seq = 0;
    uint64_t ack = 0;
    uint8_t lane = 0;
    size_t envelopes = 0;
    size_t names = 0;
    if (!scalar(root, w::Frame::VT_LINK_SEQ, &link_seq) || !scalar(root, w::Frame::VT_ACK, &ack) ||
        !scalar(root, w::Frame::VT_LANE, &lane) ||
        !r_.field(root, w::Frame::VT_ENVELOPES, 4, &envelopes) ||
        !r_.field(root, w::Frame::VT_NAMES, 4, &names) || names == 0) {
      return Status::kCorruptRecord;
    }
    if (Status s = frame_names(names); s != Status::kOk) return s;
    uint32_t count = 0;
    size_t first = 0;
    if (envelopes != 0 && !r_.vector(envelopes, 4, &count, &first)) return Status::kCorruptRecord;
    const size_t envelope_start = d_.envelopes_;
    for (uint32_t i = 0; i < count; ++i) {
      size_t pos = 0;
      if (!r_.deref(first + 4 * size_t{i}, &pos)) return Status::kCorruptRecord;
      if (Status s = envelope(pos); s != Status::kOk) return s;
    }
    uint32_t* out = d_.target_.frames + kFrameWords * d_.frames_;
    out[0] = static_cast<uint32_t>(envelope_start);
    out[1] = count;
    out[2] = lane;
    out[3] = frame_in_view;
    out[4] = length;
    out[5] = static_cast<uint32_t>(link_seq);
    out[6] = static_cast<uint32_t>(link_seq >> 32);
    out[7] = static_cast<uint32_t>(ack);
    out[8] = static_cast<uint32_t>(ack >> 32);
    ++d_.frames_;
    return Status::kOk;
  }

 private:
  /// Reads scalar field `voffset` of `t` into `*out`, leaving it alone when absent (default).
  template <typename T>
  bool scalar(const BodyReader::Table& t, uint16_t voffset, T* out) const noexcept {
    size_t pos = 0;
    if (!r_.field(t, voffset, sizeof(T), &pos)) return false;
    *out = r_.scalar<T>(pos, *out);
    return true;
  }

  /// The consumer id of string field `voffset` of `t` (kNoString when absent and optional);
  /// a string new to the table is also added to the output. kOk, kOutputTooSmall or
  /// kCorruptRecord.
  Status string_id(const BodyReader::Table& t, uint16_t voffset, uint32_t* id) {
    size_t pos = 0;
    if (!r_.field(t, voffset, 4, &pos) || pos == 0) return Status::kCorruptRecord;
    size_t at = 0;
    uint32_t length = 0;
    if (!r_.string(pos, &at, &length)) return Status::kCorruptRecord;
    // Our encoder writes each string once per frame: the same position, the same string.
    BatchDecoder::CacheEntry& slot = d_.cache_[(at >> 2) & 63];
    if (slot.generation == d_.generation_ && slot.position == at) {
      *id = slot.id;
      return Status::kOk;
    }
    uint32_t found = 0;
    if (Status s = intern(at, length, &found); s != Status::kOk) return s;
    slot = BatchDecoder::CacheEntry{d_.generation_, static_cast<uint32_t>(at), found};
    *id = found;
    return Status::kOk;
  }

  /// The consumer id of the string at body offset `at`; a string new to the table is also
  /// added to the output. kOk or kOutputTooSmall.
  Status intern(size_t at, uint32_t length, uint32_t* id) {
    bool inserted = false;
    const uint32_t found = d_.strings_.intern(r_.at(at), length, &inserted);
    if (found == kNoString) return Status::kOutputTooSmall;
    if (inserted) {
      if (d_.new_strings_ >= d_.target_.string_capacity) return Status::kOutputTooSmall;
      d_.target_.strings[2 * d_.new_strings_] = static_cast<uint32_t>(body_in_view_ + at);
      d_.target_.strings[2 * d_.new_strings_ + 1] = length;
      ++d_.new_strings_;
    }
    *id = found;
    return Status::kOk;
  }

  /// Interns the frame's names (the vector at offset field `pos`) into d_.names_, by index.
  Status frame_names(size_t pos) {
    uint32_t count = 0;
    size_t first = 0;
    if (!r_.vector(pos, 4, &count, &first)) return Status::kCorruptRecord;
    d_.names_.resize(count);
    for (uint32_t i = 0; i < count; ++i) {
      size_t at = 0;
      uint32_t length = 0;
      if (!r_.string(first + 4 * size_t{i}, &at, &length)) return Status::kCorruptRecord;
      if (Status s = intern(at, length, &d_.names_[i]); s != Status::kOk) return s;
    }
    return Status::kOk;
  }

  /// The two string ids of the Header or Address table the offset at `pos` points to.
  Status string_pair(size_t pos, uint16_t first, uint16_t second, uint32_t* ids) {
    size_t table_pos = 0;
    BodyReader::Table t;
    if (!r_.deref(pos, &table_pos) || !r_.table_at(table_pos, &t)) return Status::kCorruptRecord;
    if (Status s = string_id(t, first, &ids[0]); s != Status::kOk) return s;
    return string_id(t, second, &ids[1]);
  }

  Status headers(const BodyReader::Table& t, uint32_t* count) {
    *count = 0;
    size_t pos = 0;
    if (!r_.field(t, w::Envelope::VT_HEADERS, 4, &pos)) return Status::kCorruptRecord;
    if (pos == 0) return Status::kOk;
    size_t first = 0;
    if (!r_.vector(pos, 4, count, &first)) return Status::kCorruptRecord;
    if (*count > d_.target_.header_capacity - d_.headers_) return Status::kOutputTooSmall;
    for (uint32_t h = 0; h < *count; ++h) {
      uint32_t* pair = d_.target_.headers + 2 * d_.headers_;
      const Status s =
          string_pair(first + 4 * size_t{h}, w::Header::VT_KEY, w::Header::VT_VALUE, pair);
      if (s != Status::kOk) return s;
      ++d_.headers_;
    }
    return Status::kOk;
  }

  Status envelope(size_t pos) {
    BodyReader::Table t;
    if (!r_.table_at(pos, &t)) return Status::kCorruptRecord;
    if (d_.envelopes_ >= d_.target_.envelope_capacity) return Status::kOutputTooSmall;
    size_t head_pos = 0;
    if (!r_.field(t, w::Envelope::VT_HEAD, sizeof(w::EnvelopeHead), &head_pos) || head_pos == 0) {
      return Status::kCorruptRecord;
    }
    // One copy of the struct; its accessors convert from little-endian.
    w::EnvelopeHead head;
    std::memcpy(static_cast<void*>(&head), r_.at(head_pos), sizeof head);
    const size_t names = d_.names_.size();
    if (head.sender_node() >= names || head.sender_simproc() >= names ||
        head.target_node() >= names || head.target_simproc() >= names) {
      return Status::kCorruptRecord;
    }
    const auto kind = static_cast<uint8_t>(head.kind());
    const auto data_format = static_cast<uint8_t>(head.data_format());
    if (kind > static_cast<uint8_t>(w::Kind::MAX) ||
        data_format > static_cast<uint8_t>(w::DataFormat::MAX)) {
      return Status::kCorruptRecord;
    }
    const uint8_t hops = head.hops();
    const uint64_t seqnr = head.seqnr();
    uint32_t* out = d_.target_.envelopes + kEnvelopeWords * d_.envelopes_;
    out[5] = d_.names_[head.sender_node()];
    out[6] = d_.names_[head.sender_simproc()];
    out[7] = d_.names_[head.target_node()];
    out[8] = d_.names_[head.target_simproc()];
    uint32_t flags = 0;
    Status s = Status::kOk;
    size_t data = 0;
    uint32_t data_length = 0;
    size_t data_first = 0;
    if (!r_.field(t, w::Envelope::VT_DATA, 4, &data)) return Status::kCorruptRecord;
    if (data != 0) {
      if (!r_.vector(data, 1, &data_length, &data_first)) return Status::kCorruptRecord;
      flags |= kEnvelopeHasData;
    }
    const auto header_start = static_cast<uint32_t>(d_.headers_);
    uint32_t header_count = 0;
    if ((s = headers(t, &header_count)) != Status::kOk) return s;
    out[13] = out[14] = kNoString;
    size_t reply = 0;
    if (!r_.field(t, w::Envelope::VT_REPLY_TO, 4, &reply)) return Status::kCorruptRecord;
    if (reply != 0) {
      s = string_pair(reply, w::Address::VT_NODE, w::Address::VT_SIMPROC, &out[13]);
      if (s != Status::kOk) return s;
      flags |= kEnvelopeHasReplyTo;
    }
    out[0] = uint32_t{kind} | uint32_t{data_format} << 8 | uint32_t{hops} << 16 | flags << 24;
    out[1] = head.repid();
    out[2] = static_cast<uint32_t>(seqnr);
    out[3] = static_cast<uint32_t>(seqnr >> 32);
    out[4] = head.num_events();
    out[9] = data != 0 ? static_cast<uint32_t>(body_in_view_ + data_first) : 0;
    out[10] = data_length;
    out[11] = header_start;
    out[12] = header_count;
    out[15] = static_cast<uint32_t>(d_.frames_);
    d_.target_.epochs[d_.envelopes_] = head.epoch();
    ++d_.envelopes_;
    return Status::kOk;
  }

  BatchDecoder& d_;
  const BodyReader& r_;
  const size_t body_in_view_;
};

namespace {

/// What one frame needs of the output arrays (for OUTPUT_TOO_SMALL): envelopes, header pairs,
/// and at most four strings per envelope, two per header and two per reply_to.
void count_frame(const BodyReader& r, uint32_t* envelopes, uint32_t* headers, uint32_t* strings) {
  *envelopes = *headers = *strings = 0;
  BodyReader::Table root;
  size_t f = 0;
  size_t first = 0;
  uint32_t count = 0;
  size_t root_pos = 0;
  if (!r.deref(0, &root_pos) || !r.table_at(root_pos, &root) ||
      !r.field(root, w::Frame::VT_ENVELOPES, 4, &f) || f == 0 || !r.vector(f, 4, &count, &first)) {
    return;
  }
  *envelopes = count;
  size_t names = 0;
  size_t names_first = 0;
  uint32_t names_count = 0;
  if (r.field(root, w::Frame::VT_NAMES, 4, &names) && names != 0 &&
      r.vector(names, 4, &names_count, &names_first)) {
    *strings = names_count;
  }
  for (uint32_t i = 0; i < count; ++i) {
    size_t pos = 0;
    BodyReader::Table t;
    if (!r.deref(first + 4 * size_t{i}, &pos) || !r.table_at(pos, &t)) return;
    size_t hf = 0;
    size_t hfirst = 0;
    uint32_t hcount = 0;
    if (r.field(t, w::Envelope::VT_HEADERS, 4, &hf) && hf != 0 &&
        r.vector(hf, 4, &hcount, &hfirst)) {
      *headers += hcount;
      *strings += 2 * hcount;
    }
    if (r.field(t, w::Envelope::VT_REPLY_TO, 4, &hf) && hf != 0) *strings += 2;
  }
}

}  // namespace

void BatchDecoder::begin(const DecodeTarget& target) noexcept {
  target_ = target;
  frames_ = envelopes_ = headers_ = new_strings_ = 0;
  if (strings_.over_soft_limit()) {
    strings_.clear();
    // Reported with the next batch that returns (this read may come back empty).
    reset_unreported_ = true;
  }
  first_string_ = strings_.size();
  for (size_t i = 0; i < kSummaryWords; ++i) target_.summary[i] = 0;
}

Status BatchDecoder::decode(const RecordSpan& span, size_t index, const uint8_t* base) noexcept {
  if (index > 0 && strings_.over_soft_limit()) return Status::kOutputTooSmall;
  if (span.length < kMinFrameBytes) return Status::kCorruptRecord;
  const size_t envelopes_mark = envelopes_;
  const size_t headers_mark = headers_;
  const size_t strings_mark = new_strings_;
  const uint32_t table_mark = strings_.size();
  if (++generation_ == 0) {
    for (CacheEntry& e : cache_) e = CacheEntry{};
    generation_ = 1;
  }
  const uint8_t* body = span.data + kFrameHeaderBytes;
  const BodyReader r(body, span.length - kFrameHeaderBytes);
  FrameDecode frame(*this, r, static_cast<size_t>(body - base));
  const Status s = frame.frame(static_cast<uint32_t>(span.data - base), span.length);
  if (s == Status::kOk) return s;
  // Nothing of a refused or bad frame stays: counters and strings roll back.
  envelopes_ = envelopes_mark;
  headers_ = headers_mark;
  new_strings_ = strings_mark;
  strings_.truncate(table_mark);
  if (s == Status::kOutputTooSmall && index == 0) {
    uint32_t envelopes = 0;
    uint32_t headers = 0;
    uint32_t strings = 0;
    count_frame(r, &envelopes, &headers, &strings);
    target_.summary[6] = envelopes;
    target_.summary[7] = headers;
    target_.summary[8] = strings;
  }
  return s;
}

Status BatchDecoder::visit(void* context, const RecordSpan& span, size_t index,
                           const uint8_t* base) noexcept {
  return static_cast<BatchDecoder*>(context)->decode(span, index, base);
}

void BatchDecoder::finish(bool reassembled) noexcept {
  uint32_t* s = target_.summary;
  s[0] = static_cast<uint32_t>(frames_);
  s[1] = static_cast<uint32_t>(envelopes_);
  s[2] = static_cast<uint32_t>(headers_);
  s[3] = static_cast<uint32_t>(new_strings_);
  s[4] = first_string_;
  s[5] = (reset_unreported_ ? kSummaryStringsReset : 0) | (reassembled ? kSummaryReassembled : 0);
  reset_unreported_ = false;
}

}  // namespace disco
