// Sample frames and the JSON description of a frame; see frame_testing.h.

#include "frame_testing.h"

#include <charconv>
#include <cmath>
#include <cstring>

#include "flatbuffers/flatbuffers.h"
#include "frame.h"
#include "generated/envelope_generated.h"

namespace disco::testing {

namespace {

namespace fb = flatbuffers;
namespace w = disco::wire;

constexpr uint8_t kSampleData[] = {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff,
                                   0x44, 0x53, 0x43, 0x4f, 0x00};

/// Finishes `fbb` with root `frame` and identifier "DSCO", and seals it behind a header.
std::vector<uint8_t> finish_and_seal(fb::FlatBufferBuilder& fbb, fb::Offset<w::Frame> frame) {
  w::FinishFrameBuffer(fbb, frame);
  return seal_body_copy(fbb.GetBufferPointer(), fbb.GetSize());
}

/// The frame's names vector as it is built: each name once, indexed in order of first use.
class Names {
 public:
  explicit Names(fb::FlatBufferBuilder& fbb) : fbb_(fbb) {}

  uint32_t operator()(const std::string& name) {
    for (size_t i = 0; i < text_.size(); ++i) {
      if (text_[i] == name) return static_cast<uint32_t>(i);
    }
    text_.push_back(name);
    offsets_.push_back(fbb_.CreateString(name));
    return static_cast<uint32_t>(offsets_.size() - 1);
  }

  const std::vector<fb::Offset<fb::String>>* offsets() const { return &offsets_; }

 private:
  fb::FlatBufferBuilder& fbb_;
  std::vector<std::string> text_;
  std::vector<fb::Offset<fb::String>> offsets_;
};

fb::Offset<w::Envelope> build_full_envelope(fb::FlatBufferBuilder& fbb, Names& names) {
  std::vector<fb::Offset<w::Header>> headers{
      w::CreateHeaderDirect(fbb, "trace-id", "4bf92f3577b34da6"),
      w::CreateHeaderDirect(fbb, "unicode", "grüße ✓ 日本"),
  };
  const std::vector<uint8_t> data(std::begin(kSampleData), std::end(kSampleData));
  const auto reply_to = w::CreateAddressDirect(fbb, "n2", "ledger");
  const w::EnvelopeHead head(kSampleEpoch, kSampleSeqnr, kSampleRepid, kSampleNumEvents,
                             names("n1"), names("physics"), names("n7"), names("chemistry"),
                             w::Kind::Promise, w::DataFormat::Serialized, kSampleHops);
  return w::CreateEnvelopeDirect(fbb, &headers, &data, reply_to, &head);
}

fb::Offset<w::Envelope> build_minimal_envelope(fb::FlatBufferBuilder& fbb, Names& names) {
  const w::EnvelopeHead head(0.0, 0, 0, 0, names("n0"), names("source"), names("n1"), names("sink"),
                             w::Kind::Event, w::DataFormat::Raw, 0);
  return w::CreateEnvelope(fbb, 0, 0, 0, &head);
}

void append_u64(std::string& out, uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}

void append_quoted_u64(std::string& out, uint64_t v) {
  out += '"';
  append_u64(out, v);
  out += '"';
}

void append_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "\"NaN\"";
  } else if (std::isinf(v)) {
    out += v > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  } else {
    // Shortest text that parses back to the same double, independent of the C locale.
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof(buf), v);
    out.append(buf, r.ptr);
  }
}

/// JSON string of raw string bytes: quotes, backslashes and control characters escaped, other
/// bytes (UTF-8) passed through as they are.
void append_string(std::string& out, const fb::String* s) {
  if (s == nullptr) {
    out += "null";
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (const char c : s->string_view()) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
}

void append_field(std::string& out, const char* name) {
  out += '"';
  out += name;
  out += "\":";
}

void append_headers(std::string& out, const fb::Vector<fb::Offset<w::Header>>* headers) {
  if (headers == nullptr) {
    out += "null";
    return;
  }
  out += '[';
  for (fb::uoffset_t i = 0; i < headers->size(); ++i) {
    const w::Header* h = headers->Get(i);
    if (i > 0) out += ',';
    out += '{';
    append_field(out, "key");
    append_string(out, h->key());
    out += ',';
    append_field(out, "value");
    append_string(out, h->value());
    out += '}';
  }
  out += ']';
}

/// The bytes [data, data + length) as a JSON array, or null when absent.
void append_bytes(std::string& out, const uint8_t* data, size_t length, bool present) {
  if (!present) {
    out += "null";
    return;
  }
  out += '[';
  for (size_t i = 0; i < length; ++i) {
    if (i > 0) out += ',';
    append_u64(out, data[i]);
  }
  out += ']';
}

void append_address(std::string& out, const w::Address* a) {
  if (a == nullptr) {
    out += "null";
    return;
  }
  out += '{';
  append_field(out, "node");
  append_string(out, a->node());
  out += ',';
  append_field(out, "simproc");
  append_string(out, a->simproc());
  out += '}';
}

/// Name `index` of `names`, or null when out of range (the verifier does not check indices).
void append_name(std::string& out, const fb::Vector<fb::Offset<fb::String>>* names,
                 uint32_t index) {
  append_string(out, names != nullptr && index < names->size() ? names->Get(index) : nullptr);
}

/// One envelope, from its head (an EnvelopeHead or a PackedHead: the same accessors) and the
/// parts outside it.
template <typename Head>
void append_envelope(std::string& out, const Head& h,
                     const fb::Vector<fb::Offset<w::Header>>* headers, const uint8_t* data,
                     size_t data_length, bool has_data, const w::Address* reply_to,
                     const fb::Vector<fb::Offset<fb::String>>* names) {
  out += '{';
  append_field(out, "kind");
  append_u64(out, static_cast<uint8_t>(h.kind()));
  out += ',';
  append_field(out, "repid");
  append_u64(out, h.repid());
  out += ',';
  append_field(out, "senderNode");
  append_name(out, names, h.sender_node());
  out += ',';
  append_field(out, "senderSimproc");
  append_name(out, names, h.sender_simproc());
  out += ',';
  append_field(out, "targetNode");
  append_name(out, names, h.target_node());
  out += ',';
  append_field(out, "targetSimproc");
  append_name(out, names, h.target_simproc());
  out += ',';
  append_field(out, "epoch");
  append_double(out, h.epoch());
  out += ',';
  append_field(out, "seqnr");
  append_quoted_u64(out, h.seqnr());
  out += ',';
  append_field(out, "numEvents");
  append_u64(out, h.num_events());
  out += ',';
  append_field(out, "headers");
  append_headers(out, headers);
  out += ',';
  append_field(out, "data");
  append_bytes(out, data, data_length, has_data);
  out += ',';
  append_field(out, "dataFormat");
  append_u64(out, static_cast<uint8_t>(h.data_format()));
  out += ',';
  append_field(out, "hops");
  append_u64(out, h.hops());
  out += ',';
  append_field(out, "replyTo");
  append_address(out, reply_to);
  out += '}';
}

/// The envelopes of a verified frame of either kind (frame.h), as a JSON array or null.
void append_envelopes(std::string& out, const uint8_t* body, const w::Frame& frame) {
  const auto* names = frame.names();
  if (!is_packed_body(body)) {
    const auto* envelopes = frame.envelopes();
    if (envelopes == nullptr) {
      out += "null";
      return;
    }
    out += '[';
    for (fb::uoffset_t i = 0; i < envelopes->size(); ++i) {
      if (i > 0) out += ',';
      const w::Envelope& e = *envelopes->Get(i);
      const auto* data = e.data();
      // head is required: the verifier checked it is there.
      append_envelope(out, *e.head(), e.headers(), data != nullptr ? data->data() : nullptr,
                      data != nullptr ? data->size() : 0, data != nullptr, e.reply_to(), names);
    }
    out += ']';
    return;
  }
  const auto* heads = frame.heads();
  if (heads == nullptr) {
    out += "null";
    return;
  }
  const auto* data = frame.data();
  const auto* extras = frame.extras();
  const size_t data_size = data != nullptr ? data->size() : 0;
  out += '[';
  fb::uoffset_t next_extra = 0;
  for (fb::uoffset_t i = 0; i < heads->size(); ++i) {
    if (i > 0) out += ',';
    const w::PackedHead& h = *heads->Get(i);
    const w::EnvelopeExtra* extra = nullptr;
    if (extras != nullptr && next_extra < extras->size() &&
        extras->Get(next_extra)->envelope() == i) {
      extra = extras->Get(next_extra++);
    }
    // Ranges are not checked by the verifier: one outside `data` is described as absent.
    const bool has_data = (h.flags() & kPackedHasData) != 0 &&
                          uint64_t{h.data_offset()} + h.data_length() <= data_size;
    append_envelope(out, h, extra != nullptr ? extra->headers() : nullptr,
                    has_data && data != nullptr ? data->data() + h.data_offset() : nullptr,
                    has_data ? h.data_length() : 0, has_data,
                    extra != nullptr ? extra->reply_to() : nullptr, names);
  }
  out += ']';
}

}  // namespace

std::vector<uint8_t> seal_body_copy(const uint8_t* body, size_t len) noexcept {
  std::vector<uint8_t> frame(kFrameHeaderBytes + len);
  if (len > 0) std::memcpy(frame.data() + kFrameHeaderBytes, body, len);
  // A body too short or too large stays unsealed (zero header): verify_frame() rejects it.
  (void)seal_frame(frame.data(), frame.size());
  return frame;
}

std::vector<uint8_t> build_sample_frame() noexcept {
  fb::FlatBufferBuilder fbb;
  Names names(fbb);
  const std::vector<fb::Offset<w::Envelope>> envelopes{build_full_envelope(fbb, names),
                                                       build_minimal_envelope(fbb, names)};
  return finish_and_seal(fbb, w::CreateFrameDirect(fbb, kSampleLinkSeq, kSampleAck, w::Lane::Event,
                                                   &envelopes, names.offsets()));
}

std::vector<uint8_t> build_test_frame(uint64_t link_seq, uint32_t envelope_count,
                                      uint32_t data_bytes) noexcept {
  fb::FlatBufferBuilder fbb;
  Names names(fbb);
  std::vector<fb::Offset<w::Envelope>> envelopes;
  envelopes.reserve(envelope_count);
  std::vector<uint8_t> data(data_bytes);
  for (uint32_t i = 0; i < envelope_count; ++i) {
    for (uint32_t j = 0; j < data_bytes; ++j) data[j] = static_cast<uint8_t>(link_seq + i + j);
    const std::string node = "n" + std::to_string(i % 16);
    const auto kind = i % 2 == 0 ? w::Kind::Event : w::Kind::Promise;
    const w::EnvelopeHead head(
        static_cast<double>(i) + 0.25, link_seq * 1000 + i, static_cast<uint32_t>(link_seq % 4), i,
        names(node), names("physics"), names("n0"), names("sink"), kind, w::DataFormat::Raw, 0);
    envelopes.push_back(w::CreateEnvelopeDirect(fbb, nullptr, &data, 0, &head));
  }
  const auto lane = link_seq % 2 == 0 ? w::Lane::Promise : w::Lane::Event;
  return finish_and_seal(
      fbb, w::CreateFrameDirect(fbb, link_seq, link_seq / 2, lane, &envelopes, names.offsets()));
}

Status describe_frame(const uint8_t* p, size_t len, std::string* out) noexcept {
  const Status status = verify_frame(p, len);
  if (status != Status::kOk) return status;

  const w::Frame* frame = w::GetFrame(p + kFrameHeaderBytes);
  std::string json;
  json += '{';
  append_field(json, "linkSeq");
  append_quoted_u64(json, frame->link_seq());
  json += ',';
  append_field(json, "ack");
  append_quoted_u64(json, frame->ack());
  json += ',';
  append_field(json, "lane");
  append_u64(json, static_cast<uint8_t>(frame->lane()));
  json += ',';
  append_field(json, "envelopes");
  append_envelopes(json, p + kFrameHeaderBytes, *frame);
  json += '}';
  *out = std::move(json);
  return Status::kOk;
}

}  // namespace disco::testing
