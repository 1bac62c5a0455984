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
constexpr uint64_t kHeaderTableBound = table_bound(2, 2 * kOffsetField);
constexpr uint64_t kAddressTableBound = table_bound(2, 2 * kOffsetField);
constexpr uint64_t kExtraTableBound =
    table_bound(3, scalar_field(4) /* envelope */ + 2 * kOffsetField /* headers, reply_to */);
constexpr uint64_t kFrameTableBound =
    table_bound(8, scalar_field(8) + scalar_field(8) + scalar_field(1) +
                       4 * kOffsetField /* names, heads, data, extras */);
constexpr uint64_t kStringOverhead = 4 + 1 + 3;
constexpr uint64_t kVectorOverhead = 4 + 3 + 7 + 3;
constexpr uint64_t kFinishBound = 4 + 4 + 7;
constexpr uint64_t kFieldLocBytes = 8;
constexpr uint64_t kVtableScratch = 4;  // per table, as if none were deduplicated
constexpr uint64_t kMaxFieldsPerTable = 15;

static_assert(sizeof(w::PackedHead) == 56, "PackedHead is 56 bytes");
static_assert(alignof(w::PackedHead) == 8, "PackedHead is 8-aligned");
static_assert(w::Header::VT_VALUE == 4 + 2 * 1, "Header has 2 slots");
static_assert(w::Address::VT_SIMPROC == 4 + 2 * 1, "Address has 2 slots");
static_assert(w::EnvelopeExtra::VT_REPLY_TO == 4 + 2 * 2, "EnvelopeExtra has 3 slots");
static_assert(w::Frame::VT_EXTRAS == 4 + 2 * 7, "Frame has 8 slots");

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

/// True when `a` and `b` name the same sender and target.
bool same_names(const StagedEnvelope& a, const StagedEnvelope& b) noexcept {
  return a.sender_node == b.sender_node && a.sender_simproc == b.sender_simproc &&
         a.target_node == b.target_node && a.target_simproc == b.target_simproc;
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

  // The frame table, the heads (one struct each) and the vectors of heads, payloads, extras
  // and names; then per envelope its names, its payload (8-aligned) and its extra, if any.
  uint64_t bound = kFrameHeaderBytes + kFinishBound + kFrameTableBound + kVtableScratch +
                   kMaxFieldsPerTable * kFieldLocBytes + 4 * kVectorOverhead +
                   uint64_t{sizeof(w::PackedHead)} * b.envelope_count;
  staged_.clear();
  staged_layout_ = nullptr;
  StagedEnvelope e;
  for (uint32_t i = 0; i < b.envelope_count; ++i) {
    if (!read_envelope(layout, b.strings_at, &at, strings, payloads, payload_count, &e)) {
      return Status::kBadBatch;
    }
    if (staged_.empty() || !same_names(staged_.back(), e)) {
      bound += name_bound(e.sender_node) + name_bound(e.sender_simproc) +
               name_bound(e.target_node) + name_bound(e.target_simproc);
    }
    staged_.push_back(e);
    if (e.data != nullptr) bound += align8(e.data_length);
    const bool reply = (e.flags & kEnvelopeHasReplyTo) != 0;
    if (e.header_count == 0 && !reply) continue;
    bound += 4 + kExtraTableBound + kVtableScratch;  // the extra and its slot in `extras`
    if (e.header_count > 0) {
      bound += 4 * uint64_t{e.header_count} + kVectorOverhead;
      bound += uint64_t{e.header_count} * (kHeaderTableBound + kVtableScratch);
      for (uint32_t h = 0; h < 2 * e.header_count; ++h) {
        bound += string_bound(rd32(e.header_ids + 4 * h));
      }
    }
    if (reply) {
      bound += kAddressTableBound + kVtableScratch;
      bound += string_bound(e.reply_node) + string_bound(e.reply_simproc);
    }
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

/// One frame under construction (a helper of BatchEncoder::build): a packed frame (body
/// identifier "DSC2", schemas/envelope.fbs), built back to front as FlatBuffers builds:
/// the names' strings, the extras, the payloads, the heads, then the vectors and the table.
class BatchBuild {
 public:
  BatchBuild(BatchEncoder& encoder, fb::FlatBufferBuilder& fbb, uint32_t gen,
             BorrowSlot* borrow) noexcept
      : enc_(encoder), fbb_(fbb), gen_(gen), borrow_(borrow) {}

  /// Builds the whole frame of `staged` and finishes the buffer.
  void frame(const PreparedBatch& b, const std::vector<StagedEnvelope>& staged) {
    // Each envelope's four name indices; a batch mostly repeats the previous envelope's names.
    // And the extras of those that have headers or a replyTo, in envelope order.
    std::vector<uint32_t>& ids = enc_.head_names_;
    ids.resize(4 * staged.size());
    enc_.extras_.clear();
    const StagedEnvelope* prev = nullptr;
    for (size_t i = 0; i < staged.size(); ++i) {
      const StagedEnvelope& e = staged[i];
      uint32_t* out = ids.data() + 4 * i;
      if (prev != nullptr && same_names(*prev, e)) {
        std::memcpy(out, out - 4, 4 * sizeof(uint32_t));
      } else {
        out[0] = name(e.sender_node);
        out[1] = name(e.sender_simproc);
        out[2] = name(e.target_node);
        out[3] = name(e.target_simproc);
      }
      prev = &e;
      if (e.header_count > 0 || (e.flags & kEnvelopeHasReplyTo) != 0) {
        enc_.extras_.push_back(extra(static_cast<uint32_t>(i), e).o);
      }
    }
    const auto data = payloads(staged);
    const auto heads = packed_heads(staged);
    fb::Offset<fb::Vector<fb::Offset<w::EnvelopeExtra>>> extras;
    if (!enc_.extras_.empty()) extras = offsets<w::EnvelopeExtra>(enc_.extras_);
    const auto names = offsets<fb::String>(enc_.names_);
    w::FrameBuilder frame(fbb_);
    frame.add_ack(b.ack);
    frame.add_link_seq(b.link_seq);
    frame.add_extras(extras);
    frame.add_data(data);
    frame.add_heads(heads);
    frame.add_names(names);
    frame.add_lane(static_cast<w::Lane>(b.lane));
    fbb_.Finish(frame.Finish(), kPackedFrameIdentifier);
  }

 private:
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

  /// A vector of the tables (or strings) at `items`, in that order.
  template <typename T>
  fb::Offset<fb::Vector<fb::Offset<T>>> offsets(const std::vector<uint32_t>& items) {
    fbb_.StartVector(items.size(), sizeof(fb::uoffset_t));
    for (size_t i = items.size(); i > 0; --i) fbb_.PushElement(fb::Offset<T>(items[i - 1]));
    return fb::Offset<fb::Vector<fb::Offset<T>>>(fbb_.EndVector(items.size()));
  }

  /// The headers and replyTo of envelope `index`.
  fb::Offset<w::EnvelopeExtra> extra(uint32_t index, const StagedEnvelope& e) {
    fb::Offset<fb::Vector<fb::Offset<w::Header>>> headers;
    if (e.header_count > 0) {
      enc_.headers_.clear();
      for (uint32_t h = 0; h < e.header_count; ++h) {
        const auto key = string(rd32(e.header_ids + 8 * h));
        const auto value = string(rd32(e.header_ids + 8 * h + 4));
        enc_.headers_.push_back(w::CreateHeader(fbb_, key, value).o);
      }
      headers = offsets<w::Header>(enc_.headers_);
    }
    fb::Offset<w::Address> reply_to;
    if ((e.flags & kEnvelopeHasReplyTo) != 0) {
      const auto node = string(e.reply_node);
      const auto simproc = string(e.reply_simproc);
      reply_to = w::CreateAddress(fbb_, node, simproc);
    }
    return w::CreateEnvelopeExtra(fbb_, index, headers, reply_to);
  }

  /// Every payload, each at an 8-aligned offset (so a receiver can view it as Float64Array and
  /// friends), in one vector: the one copy of each payload, except a borrowed one, whose place
  /// is left for the producer to fill from its owner. Padding is zeroed: a frame never carries
  /// stale bytes of the region it was built in.
  fb::Offset<fb::Vector<uint8_t>> payloads(const std::vector<StagedEnvelope>& staged) {
    uint64_t total = 0;
    for (const StagedEnvelope& e : staged) {
      if (e.data != nullptr) total += align8(e.data_length);
    }
    if (total == 0) return 0;
    const auto bytes = static_cast<size_t>(total);
    fbb_.ForceVectorAlignment(bytes, 1, 8);
    uint8_t* out = nullptr;
    const auto vector =
        fb::Offset<fb::Vector<uint8_t>>(fbb_.CreateUninitializedVector(bytes, 1, &out));
    size_t at = 0;
    for (const StagedEnvelope& e : staged) {
      if (e.data == nullptr) continue;
      if (borrow_ != nullptr && borrow_->slot == nullptr && e.data == borrow_->payload.data &&
          e.data_length == borrow_->payload.length) {
        borrow_->slot = out + at;  // left for the producer to copy into the ring
      } else if (e.data_length > 0) {
        std::memcpy(out + at, e.data, e.data_length);
      }
      const size_t padded = static_cast<size_t>(align8(e.data_length));
      if (padded != e.data_length) std::memset(out + at + e.data_length, 0, padded - e.data_length);
      at += padded;
    }
    return vector;
  }

  /// The heads, in envelope order; payload offsets as payloads() laid them out.
  fb::Offset<fb::Vector<const w::PackedHead*>> packed_heads(
      const std::vector<StagedEnvelope>& staged) {
    if (staged.empty()) return 0;
    w::PackedHead* out = nullptr;
    const auto vector = fbb_.CreateUninitializedVectorOfStructs<w::PackedHead>(staged.size(), &out);
    uint32_t at = 0;
    const uint32_t* ids = enc_.head_names_.data();
    for (const StagedEnvelope& e : staged) {
      const bool has_data = e.data != nullptr;
      *out++ = w::PackedHead(
          e.epoch, e.seqnr, e.repid, e.num_events, ids[0], ids[1], ids[2], ids[3],
          has_data ? at : 0, has_data ? e.data_length : 0, static_cast<w::Kind>(e.kind),
          static_cast<w::DataFormat>(e.data_format), e.hops, has_data ? kPackedHasData : 0);
      if (has_data) at += static_cast<uint32_t>(align8(e.data_length));
      ids += 4;
    }
    return vector;
  }

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
    names_.clear();
    // The envelopes prepare() read, when this is its batch (the usual case: both run in one
    // call, so the staging buffer cannot have changed); else they are read again.
    if (staged_layout_ != b.layout || staged_.size() != b.envelope_count) {
      staged_.clear();
      staged_layout_ = nullptr;
      size_t at = kBatchHeaderBytes;
      StagedEnvelope e;
      for (uint32_t i = 0; i < b.envelope_count; ++i) {
        if (!read_envelope(b.layout, b.strings_at, &at, strings, payloads, payload_count, &e)) {
          status = Status::kBadBatch;
          break;
        }
        staged_.push_back(e);
      }
    }
    if (status == Status::kOk) {
      build.frame(b, staged_);
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
    const size_t envelope_start = d_.envelopes_;
    if (is_packed_body(r_.at(0))) {
      if (envelopes != 0) return Status::kCorruptRecord;
      if (Status s = packed(root, &count); s != Status::kOk) return s;
    } else {
      size_t first = 0;
      if (envelopes != 0 && !r_.vector(envelopes, 4, &count, &first)) {
        return Status::kCorruptRecord;
      }
      for (uint32_t i = 0; i < count; ++i) {
        size_t pos = 0;
        if (!r_.deref(first + 4 * size_t{i}, &pos)) return Status::kCorruptRecord;
        if (Status s = envelope(pos); s != Status::kOk) return s;
      }
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

  /// The headers (field `voffset` of `t`: an Envelope's or an EnvelopeExtra's).
  Status headers(const BodyReader::Table& t, uint16_t voffset, uint32_t* count) {
    *count = 0;
    size_t pos = 0;
    if (!r_.field(t, voffset, 4, &pos)) return Status::kCorruptRecord;
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

  /// Whether the name indices and enum values of `head` (an EnvelopeHead or a PackedHead: the
  /// same accessors) are in range; the verifier does not check them.
  template <typename Head>
  [[nodiscard]] bool valid_head(const Head& head) const noexcept {
    const size_t names = d_.names_.size();
    return head.sender_node() < names && head.sender_simproc() < names &&
           head.target_node() < names && head.target_simproc() < names &&
           static_cast<uint8_t>(head.kind()) <= static_cast<uint8_t>(w::Kind::MAX) &&
           static_cast<uint8_t>(head.data_format()) <= static_cast<uint8_t>(w::DataFormat::MAX);
  }

  /// The headers (field `headers_field` of `t`) and replyTo (`reply_field`) of an envelope:
  /// header pairs to the output, the replyTo names to out[13..14] (left alone when absent),
  /// kEnvelopeHasReplyTo to `*flags`.
  Status headers_and_reply(const BodyReader::Table& t, uint16_t headers_field, uint16_t reply_field,
                           uint32_t* out, uint32_t* flags, uint32_t* header_count) {
    if (Status s = headers(t, headers_field, header_count); s != Status::kOk) return s;
    size_t reply = 0;
    if (!r_.field(t, reply_field, 4, &reply)) return Status::kCorruptRecord;
    if (reply == 0) return Status::kOk;
    const Status s = string_pair(reply, w::Address::VT_NODE, w::Address::VT_SIMPROC, &out[13]);
    if (s == Status::kOk) *flags |= kEnvelopeHasReplyTo;
    return s;
  }

  /// Writes the envelope of `head` (an EnvelopeHead or a PackedHead, whose name indices and
  /// enum values are checked) to its output words `out` and its epoch, and counts it.
  /// out[13..14] (replyTo) are the caller's.
  template <typename Head>
  void put(const Head& head, uint32_t* out, uint32_t flags, uint32_t data_at, uint32_t data_length,
           uint32_t header_start, uint32_t header_count) noexcept {
    const uint64_t seqnr = head.seqnr();
    out[0] = uint32_t{static_cast<uint8_t>(head.kind())} |
             uint32_t{static_cast<uint8_t>(head.data_format())} << 8 | uint32_t{head.hops()} << 16 |
             flags << 24;
    out[1] = head.repid();
    out[2] = static_cast<uint32_t>(seqnr);
    out[3] = static_cast<uint32_t>(seqnr >> 32);
    out[4] = head.num_events();
    out[5] = d_.names_[head.sender_node()];
    out[6] = d_.names_[head.sender_simproc()];
    out[7] = d_.names_[head.target_node()];
    out[8] = d_.names_[head.target_simproc()];
    out[9] = data_at;
    out[10] = data_length;
    out[11] = header_start;
    out[12] = header_count;
    out[15] = static_cast<uint32_t>(d_.frames_);
    d_.target_.epochs[d_.envelopes_] = head.epoch();
    ++d_.envelopes_;
  }

  /// The envelopes of a packed frame (root `root`): `heads`, `data` and `extras`.
  Status packed(const BodyReader::Table& root, uint32_t* count) {
    size_t heads = 0;
    size_t data = 0;
    size_t extras = 0;
    if (!r_.field(root, w::Frame::VT_HEADS, 4, &heads) ||
        !r_.field(root, w::Frame::VT_DATA, 4, &data) ||
        !r_.field(root, w::Frame::VT_EXTRAS, 4, &extras)) {
      return Status::kCorruptRecord;
    }
    *count = 0;
    size_t first = 0;
    if (heads != 0 && !r_.vector(heads, sizeof(w::PackedHead), count, &first)) {
      return Status::kCorruptRecord;
    }
    uint32_t data_bytes = 0;
    size_t data_first = 0;
    if (data != 0 && !r_.vector(data, 1, &data_bytes, &data_first)) return Status::kCorruptRecord;
    uint32_t extra_count = 0;
    size_t extra_first = 0;
    if (extras != 0 && !r_.vector(extras, 4, &extra_count, &extra_first)) {
      return Status::kCorruptRecord;
    }
    if (*count > d_.target_.envelope_capacity - d_.envelopes_) return Status::kOutputTooSmall;
    // The next extra and the envelope it belongs to (extras come in envelope order).
    uint32_t next_extra = 0;
    BodyReader::Table extra;
    uint32_t extra_of = UINT32_MAX;
    auto load_extra = [&]() -> bool {
      extra_of = UINT32_MAX;
      if (next_extra == extra_count) return true;
      size_t pos = 0;
      size_t field = 0;
      if (!r_.deref(extra_first + 4 * size_t{next_extra}, &pos) || !r_.table_at(pos, &extra) ||
          !r_.field(extra, w::EnvelopeExtra::VT_ENVELOPE, 4, &field)) {
        return false;
      }
      extra_of = r_.scalar<uint32_t>(field, 0);
      return true;
    };
    if (!load_extra()) return Status::kCorruptRecord;
    for (uint32_t i = 0; i < *count; ++i) {
      // One copy of the struct; its accessors convert from little-endian.
      w::PackedHead head;
      std::memcpy(static_cast<void*>(&head), r_.at(first + sizeof(w::PackedHead) * i), sizeof head);
      const uint8_t head_flags = head.flags();
      if (!valid_head(head) || (head_flags & ~kPackedHasData) != 0) return Status::kCorruptRecord;
      uint32_t flags = 0;
      uint32_t data_at = 0;
      const uint32_t data_length = head.data_length();
      if ((head_flags & kPackedHasData) != 0) {
        if (uint64_t{head.data_offset()} + data_length > data_bytes) return Status::kCorruptRecord;
        data_at = static_cast<uint32_t>(body_in_view_ + data_first + head.data_offset());
        flags |= kEnvelopeHasData;
      } else if (head.data_offset() != 0 || data_length != 0) {
        return Status::kCorruptRecord;
      }
      uint32_t* out = d_.target_.envelopes + kEnvelopeWords * d_.envelopes_;
      const auto header_start = static_cast<uint32_t>(d_.headers_);
      uint32_t header_count = 0;
      out[13] = out[14] = kNoString;
      if (extra_of == i) {
        const Status s =
            headers_and_reply(extra, w::EnvelopeExtra::VT_HEADERS, w::EnvelopeExtra::VT_REPLY_TO,
                              out, &flags, &header_count);
        if (s != Status::kOk) return s;
        ++next_extra;
        if (!load_extra()) return Status::kCorruptRecord;
      }
      put(head, out, flags, data_at, data_length, header_start, header_count);
    }
    // Extras are taken only in envelope order, one per envelope: one out of order, a second
    // one for an envelope, or one past the last envelope is left over.
    return next_extra == extra_count ? Status::kOk : Status::kCorruptRecord;
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
    if (!valid_head(head)) return Status::kCorruptRecord;
    uint32_t* out = d_.target_.envelopes + kEnvelopeWords * d_.envelopes_;
    uint32_t flags = 0;
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
    out[13] = out[14] = kNoString;
    const Status s = headers_and_reply(t, w::Envelope::VT_HEADERS, w::Envelope::VT_REPLY_TO, out,
                                       &flags, &header_count);
    if (s != Status::kOk) return s;
    const uint32_t data_at = data != 0 ? static_cast<uint32_t>(body_in_view_ + data_first) : 0;
    put(head, out, flags, data_at, data_length, header_start, header_count);
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
  size_t root_pos = 0;
  if (!r.deref(0, &root_pos) || !r.table_at(root_pos, &root)) return;
  size_t names = 0;
  size_t names_first = 0;
  uint32_t names_count = 0;
  if (r.field(root, w::Frame::VT_NAMES, 4, &names) && names != 0 &&
      r.vector(names, 4, &names_count, &names_first)) {
    *strings = names_count;
  }
  // The headers and replyTo of the table at the offset field `pos`, whose fields are at
  // `headers_field` and `reply_field`.
  auto count_table = [&](size_t pos, uint16_t headers_field, uint16_t reply_field) {
    size_t t_pos = 0;
    BodyReader::Table t;
    if (!r.deref(pos, &t_pos) || !r.table_at(t_pos, &t)) return false;
    size_t hf = 0;
    size_t hfirst = 0;
    uint32_t hcount = 0;
    if (r.field(t, headers_field, 4, &hf) && hf != 0 && r.vector(hf, 4, &hcount, &hfirst)) {
      *headers += hcount;
      *strings += 2 * hcount;
    }
    if (r.field(t, reply_field, 4, &hf) && hf != 0) *strings += 2;
    return true;
  };
  size_t f = 0;
  size_t first = 0;
  uint32_t count = 0;
  if (is_packed_body(r.at(0))) {
    if (r.field(root, w::Frame::VT_HEADS, 4, &f) && f != 0 &&
        r.vector(f, sizeof(w::PackedHead), &count, &first)) {
      *envelopes = count;
    }
    if (!r.field(root, w::Frame::VT_EXTRAS, 4, &f) || f == 0 || !r.vector(f, 4, &count, &first)) {
      return;
    }
    for (uint32_t i = 0; i < count; ++i) {
      if (!count_table(first + 4 * size_t{i}, w::EnvelopeExtra::VT_HEADERS,
                       w::EnvelopeExtra::VT_REPLY_TO)) {
        return;
      }
    }
    return;
  }
  if (!r.field(root, w::Frame::VT_ENVELOPES, 4, &f) || f == 0 || !r.vector(f, 4, &count, &first)) {
    return;
  }
  *envelopes = count;
  for (uint32_t i = 0; i < count; ++i) {
    if (!count_table(first + 4 * size_t{i}, w::Envelope::VT_HEADERS, w::Envelope::VT_REPLY_TO)) {
      return;
    }
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
