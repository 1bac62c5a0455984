// Frame sealing and verification: each rule of verify_frame() has a case that breaks it alone.

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "flatbuffers/flatbuffers.h"
#include "frame.h"
#include "frame_testing.h"
#include "generated/envelope_generated.h"

namespace {

using disco::Status;
using disco::test::ExactBuffer;

Status verify(std::vector<uint8_t> frame, const disco::VerifyOptions& opts = {}) {
  ExactBuffer copy(frame.data(), frame.size());
  return disco::verify_frame(copy.data(), copy.size(), opts);
}

void builds_and_verifies_the_sample_frame() {
  const auto frame = disco::testing::build_sample_frame();
  CHECK(frame.size() > disco::kMinFrameBytes);
  CHECK_EQ(frame.size() % disco::kFrameAlignment, 0u);
  CHECK_EQ(verify(frame), Status::kOk);
  CHECK_EQ(disco::load_le32(frame.data()), disco::kFrameMagic);
  CHECK_EQ(std::string(reinterpret_cast<const char*>(frame.data()), 4), std::string("DSCO"));
  CHECK_EQ(disco::load_le32(frame.data() + 4), frame.size() - 16);
}

void reads_back_every_sample_field() {
  const auto frame = disco::testing::build_sample_frame();
  const auto* f = disco::wire::GetFrame(frame.data() + disco::kFrameHeaderBytes);
  CHECK_EQ(f->link_seq(), disco::testing::kSampleLinkSeq);
  CHECK_EQ(f->ack(), disco::testing::kSampleAck);
  CHECK(f->lane() == disco::wire::Lane::Event);
  CHECK_EQ(f->envelopes()->size(), disco::testing::kSampleEnvelopeCount);
  const auto* e = f->envelopes()->Get(0);
  CHECK(e->head()->kind() == disco::wire::Kind::Promise);
  CHECK_EQ(e->head()->seqnr(), UINT64_MAX);
  CHECK_EQ(e->head()->num_events(), UINT32_MAX);
  CHECK_EQ(e->head()->epoch(), 1234.5678);
  CHECK_EQ(f->names()->Get(e->head()->target_simproc())->str(), std::string("chemistry"));
  CHECK_EQ(e->headers()->size(), 2u);
  CHECK_EQ(e->reply_to()->simproc()->str(), std::string("ledger"));
  const auto* minimal = f->envelopes()->Get(1);
  CHECK(minimal->headers() == nullptr);
  CHECK(minimal->data() == nullptr);
  CHECK(minimal->reply_to() == nullptr);
}

void describes_the_sample_frame_as_json() {
  const auto frame = disco::testing::build_sample_frame();
  std::string json;
  CHECK_EQ(disco::testing::describe_frame(frame.data(), frame.size(), &json), Status::kOk);
  CHECK(json.find("\"linkSeq\":\"9223372036854775809\"") != std::string::npos);
  CHECK(json.find("\"ack\":\"9007199254740993\"") != std::string::npos);
  CHECK(json.find("\"seqnr\":\"18446744073709551615\"") != std::string::npos);
  CHECK(json.find("\"numEvents\":4294967295") != std::string::npos);
  CHECK(json.find("\"epoch\":1234.5678") != std::string::npos);
  CHECK(json.find("\"data\":[0,1,127,128,254,255,68,83,67,79,0]") != std::string::npos);
  CHECK(json.find("\"replyTo\":{\"node\":\"n2\",\"simproc\":\"ledger\"}") != std::string::npos);
  CHECK(json.find("\"replyTo\":null") != std::string::npos);
}

void describe_leaves_output_alone_for_a_bad_frame() {
  auto frame = disco::testing::build_sample_frame();
  frame[0] ^= 0xff;
  std::string json = "untouched";
  CHECK_EQ(disco::testing::describe_frame(frame.data(), frame.size(), &json), Status::kBadMagic);
  CHECK_EQ(json, std::string("untouched"));
}

void verifies_frames_of_many_sizes() {
  for (uint32_t envelopes : {0u, 1u, 7u, 100u}) {
    for (uint32_t data : {0u, 1u, 13u, 4096u}) {
      CHECK_EQ(verify(disco::testing::build_test_frame(envelopes + data, envelopes, data)),
               Status::kOk);
    }
  }
}

void rejects_frames_shorter_than_header_and_identifier() {
  const auto frame = disco::testing::build_sample_frame();
  for (size_t n = 0; n < disco::kMinFrameBytes; ++n) {
    CHECK_EQ(verify(std::vector<uint8_t>(frame.begin(), frame.begin() + n)), Status::kTooShort);
  }
  CHECK_EQ(disco::verify_frame(nullptr, 0), Status::kTooShort);
}

void rejects_a_bad_magic() {
  auto frame = disco::testing::build_sample_frame();
  frame[3] = 'X';
  CHECK_EQ(verify(frame), Status::kBadMagic);
}

void rejects_a_header_length_that_disagrees_with_the_buffer() {
  auto frame = disco::testing::build_sample_frame();
  const uint32_t body = disco::load_le32(frame.data() + 4);
  disco::store_le32(frame.data() + 4, body - 1);
  CHECK_EQ(verify(frame), Status::kBadLength);
  disco::store_le32(frame.data() + 4, body + 1);
  CHECK_EQ(verify(frame), Status::kBadLength);
  // A header claiming far more bytes than arrived never makes the reader look past the buffer.
  disco::store_le32(frame.data() + 4, 0x80000000u);
  CHECK_EQ(verify(frame), Status::kBadLength);
  disco::store_le32(frame.data() + 4, UINT32_MAX);
  CHECK_EQ(verify(frame), Status::kBadLength);
  // Trailing bytes after a frame are not allowed either.
  auto longer = disco::testing::build_sample_frame();
  longer.resize(longer.size() + 8);
  CHECK_EQ(verify(longer), Status::kBadLength);
}

void rejects_a_body_over_the_limit() {
  const auto frame = disco::testing::build_sample_frame();
  disco::VerifyOptions opts;
  opts.max_body_bytes = frame.size() - disco::kFrameHeaderBytes - 1;
  CHECK_EQ(verify(frame, opts), Status::kTooLarge);
  opts.max_body_bytes += 1;
  CHECK_EQ(verify(frame, opts), Status::kOk);
}

void rejects_a_checksum_mismatch() {
  auto frame = disco::testing::build_sample_frame();
  frame[8] ^= 0x01;
  CHECK_EQ(verify(frame), Status::kChecksumMismatch);
  frame = disco::testing::build_sample_frame();
  frame.back() ^= 0x80;
  CHECK_EQ(verify(frame), Status::kChecksumMismatch);
}

void ring_options_skip_the_checksum_and_nothing_else() {
  auto frame = disco::testing::build_sample_frame();
  CHECK_EQ(disco::seal_frame_unchecked(frame.data(), frame.size()), Status::kOk);
  CHECK_EQ(disco::load_le64(frame.data() + 8), 0u);
  CHECK_EQ(verify(frame, disco::ring_verify_options()), Status::kOk);
  CHECK_EQ(verify(frame), Status::kChecksumMismatch);  // a byte stream would refuse it
  frame[0] ^= 0x01;
  CHECK_EQ(verify(frame, disco::ring_verify_options()), Status::kBadMagic);
  frame[0] ^= 0x01;
  frame[disco::kFrameHeaderBytes + 3] ^= 0x40;  // the root offset now points past the body
  CHECK_EQ(verify(frame, disco::ring_verify_options()), Status::kVerifyFailed);
}

void rejects_a_foreign_file_identifier() {
  auto frame = disco::testing::build_sample_frame();
  std::vector<uint8_t> body(frame.begin() + disco::kFrameHeaderBytes, frame.end());
  std::memcpy(body.data() + 4, "DSCP", 4);
  CHECK_EQ(verify(disco::testing::seal_body_copy(body.data(), body.size())),
           Status::kBadIdentifier);
}

void rejects_a_misaligned_frame() {
  const auto frame = disco::testing::build_sample_frame();
  std::vector<uint8_t> shifted(frame.size() + 8);
  for (size_t shift = 1; shift < disco::kFrameAlignment; ++shift) {
    std::memcpy(shifted.data() + shift, frame.data(), frame.size());
    CHECK_EQ(disco::verify_frame(shifted.data() + shift, frame.size()), Status::kBadAlignment);
  }
}

void rejects_a_sealed_body_the_verifier_refuses() {
  // Identifier right, root offset pointing past the end.
  std::vector<uint8_t> body{0xf0, 0xff, 0x00, 0x00, 'D', 'S', 'C', 'O'};
  CHECK_EQ(verify(disco::testing::seal_body_copy(body.data(), body.size())), Status::kVerifyFailed);
  // A frame whose envelope misses its required head. Built with the raw table API: the
  // generated EnvelopeBuilder asserts on missing required fields in debug builds.
  flatbuffers::FlatBufferBuilder fbb;
  const auto data = fbb.CreateVector(std::vector<uint8_t>{1, 2});
  const auto start = fbb.StartTable();
  fbb.AddOffset(disco::wire::Envelope::VT_DATA, data);
  const flatbuffers::Offset<disco::wire::Envelope> envelope(fbb.EndTable(start));
  const std::vector<flatbuffers::Offset<disco::wire::Envelope>> list{envelope};
  const std::vector<flatbuffers::Offset<flatbuffers::String>> names{fbb.CreateString("n0")};
  disco::wire::FinishFrameBuffer(
      fbb, disco::wire::CreateFrameDirect(fbb, 1, 0, disco::wire::Lane::Event, &list, &names));
  CHECK_EQ(verify(disco::testing::seal_body_copy(fbb.GetBufferPointer(), fbb.GetSize())),
           Status::kVerifyFailed);
  // A frame without its required names (raw table API again, for the same reason).
  flatbuffers::FlatBufferBuilder nameless;
  const disco::wire::EnvelopeHead head;
  const std::vector<flatbuffers::Offset<disco::wire::Envelope>> one{
      disco::wire::CreateEnvelope(nameless, 0, 0, 0, &head)};
  const auto list_of_one = nameless.CreateVector(one);
  const auto frame_start = nameless.StartTable();
  nameless.AddOffset(disco::wire::Frame::VT_ENVELOPES, list_of_one);
  disco::wire::FinishFrameBuffer(
      nameless, flatbuffers::Offset<disco::wire::Frame>(nameless.EndTable(frame_start)));
  CHECK_EQ(verify(disco::testing::seal_body_copy(nameless.GetBufferPointer(), nameless.GetSize())),
           Status::kVerifyFailed);
}

void rejects_packed_heads_that_are_not_8_byte_aligned() {
  // The FlatBuffers verifier checks a vector's length word for 4-byte alignment only. Heads
  // aligned to 4 land at an offset that is 8-aligned or not depending on what precedes them:
  // four bytes more or less flips it, so one of the two builds is misaligned.
  int misaligned_seen = 0;
  for (int shift = 0; shift < 2; ++shift) {
    flatbuffers::FlatBufferBuilder fbb;
    const std::vector<flatbuffers::Offset<flatbuffers::String>> name_list{fbb.CreateString("n0")};
    const auto names = fbb.CreateVector(name_list);
    if (shift == 1) fbb.PushElement<uint32_t>(0);
    const disco::wire::PackedHead head(0.5, 1, 0, 0, 0, 0, 0, 0, 0, 0, disco::wire::Kind::Promise,
                                       disco::wire::DataFormat::Raw, 0, 0);
    fbb.StartVector(sizeof head / 4, 4);  // four-byte units: aligned to 4, not 8
    fbb.PushBytes(reinterpret_cast<const uint8_t*>(&head), sizeof head);
    const flatbuffers::Offset<flatbuffers::Vector<const disco::wire::PackedHead*>> heads(
        fbb.EndVector(1));
    disco::wire::FrameBuilder frame(fbb);
    frame.add_names(names);
    frame.add_heads(heads);
    frame.add_link_seq(1);
    fbb.Finish(frame.Finish(), disco::kPackedFrameIdentifier);
    const uint8_t* body = fbb.GetBufferPointer();
    const auto at =
        reinterpret_cast<const uint8_t*>(disco::wire::GetFrame(body)->heads()->Data()) - body;
    const bool misaligned = at % 8 != 0;
    misaligned_seen += misaligned ? 1 : 0;
    CHECK_EQ(verify(disco::testing::seal_body_copy(body, fbb.GetSize())),
             misaligned ? Status::kVerifyFailed : Status::kOk);
  }
  CHECK_EQ(misaligned_seen, 1);
}

void bounds_the_tables_a_small_body_can_make_the_verifier_visit() {
  // One envelope referenced 20'000 times is 80 KB of body but 20'001 table visits.
  flatbuffers::FlatBufferBuilder fbb;
  const disco::wire::EnvelopeHead head;
  const auto envelope = disco::wire::CreateEnvelope(fbb, 0, 0, 0, &head);
  const std::vector<flatbuffers::Offset<disco::wire::Envelope>> list(20'000, envelope);
  const std::vector<flatbuffers::Offset<flatbuffers::String>> names{fbb.CreateString("a")};
  disco::wire::FinishFrameBuffer(
      fbb, disco::wire::CreateFrameDirect(fbb, 1, 0, disco::wire::Lane::Event, &list, &names));
  const auto frame = disco::testing::seal_body_copy(fbb.GetBufferPointer(), fbb.GetSize());
  CHECK_EQ(verify(frame), Status::kOk);
  disco::VerifyOptions opts;
  opts.max_tables = 20'000;
  CHECK_EQ(verify(frame, opts), Status::kVerifyFailed);
  opts.max_tables = 20'001;
  CHECK_EQ(verify(frame, opts), Status::kOk);
}

void seal_refuses_a_buffer_without_room_for_a_body() {
  std::vector<uint8_t> buf(disco::kMinFrameBytes - 1);
  CHECK_EQ(disco::seal_frame(buf.data(), buf.size()), Status::kTooShort);
  CHECK_EQ(disco::seal_frame(nullptr, 0), Status::kTooShort);
  CHECK(std::all_of(buf.begin(), buf.end(), [](uint8_t b) { return b == 0; }));
}

void seal_writes_a_little_endian_header() {
  std::vector<uint8_t> frame(16 + 8, 0);
  std::memcpy(frame.data() + 20, "DSCO", 4);
  CHECK_EQ(disco::seal_frame(frame.data(), frame.size()), Status::kOk);
  const uint8_t expected_prefix[] = {'D', 'S', 'C', 'O', 8, 0, 0, 0};
  CHECK(std::memcmp(frame.data(), expected_prefix, sizeof(expected_prefix)) == 0);
  CHECK_EQ(disco::load_le64(frame.data() + 8), disco::frame_checksum(frame.data() + 16, 8));
}

}  // namespace

int main() {
  builds_and_verifies_the_sample_frame();
  reads_back_every_sample_field();
  describes_the_sample_frame_as_json();
  describe_leaves_output_alone_for_a_bad_frame();
  verifies_frames_of_many_sizes();
  rejects_frames_shorter_than_header_and_identifier();
  rejects_a_bad_magic();
  rejects_a_header_length_that_disagrees_with_the_buffer();
  rejects_a_body_over_the_limit();
  rejects_a_checksum_mismatch();
  ring_options_skip_the_checksum_and_nothing_else();
  rejects_a_foreign_file_identifier();
  rejects_a_misaligned_frame();
  rejects_a_sealed_body_the_verifier_refuses();
  rejects_packed_heads_that_are_not_8_byte_aligned();
  bounds_the_tables_a_small_body_can_make_the_verifier_visit();
  seal_refuses_a_buffer_without_room_for_a_body();
  seal_writes_a_little_endian_header();
  return disco::test::check_exit_code();
}
