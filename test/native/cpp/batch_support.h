// A C++ writer of the staging layout of native/batch.h, for tests and the fuzz seeds: the
// same bytes src/native-batch.ts BatchWriter produces.

#ifndef DISCO_TEST_NATIVE_CPP_BATCH_SUPPORT_H_
#define DISCO_TEST_NATIVE_CPP_BATCH_SUPPORT_H_

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "batch.h"

namespace disco::test {

/// One envelope to stage, with plain values.
struct TestEnvelope {
  uint8_t kind = 0;
  uint8_t data_format = 0;
  uint8_t hops = 0;
  uint32_t repid = 0;
  uint32_t num_events = 0;
  std::string sender_node = "n0";
  std::string sender_simproc = "source";
  std::string target_node = "n1";
  std::string target_simproc = "sink";
  double epoch = 0;
  uint64_t seqnr = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  bool has_data = false;
  std::vector<uint8_t> data;
  bool external = false;
  bool has_reply_to = false;
  std::string reply_node;
  std::string reply_simproc;
};

class StagingWriter {
 public:
  /// Starts a batch; keeps the string table unless `reset`.
  void begin(uint8_t lane, uint64_t link_seq, uint64_t ack, bool reset = false) {
    if (reset) ids_.clear();
    bytes_.assign(kBatchHeaderBytes, 0);
    definitions_.clear();
    envelopes_.clear();
    payloads_.clear();
    count_ = 0;
    new_strings_ = 0;
    reset_ = reset;
    lane_ = lane;
    link_seq_ = link_seq;
    ack_ = ack;
  }

  void add(const TestEnvelope& e) {
    std::vector<uint8_t>& b = envelopes_;
    const uint8_t flags =
        static_cast<uint8_t>((e.has_data ? kEnvelopeHasData : 0) |
                             (e.has_data && e.external ? kEnvelopeDataExternal : 0) |
                             (e.has_reply_to ? kEnvelopeHasReplyTo : 0));
    b.push_back(e.kind);
    b.push_back(e.data_format);
    b.push_back(e.hops);
    b.push_back(flags);
    put32(b, e.repid);
    put32(b, e.num_events);
    put32(b, id(e.sender_node));
    put32(b, id(e.sender_simproc));
    put32(b, id(e.target_node));
    put32(b, id(e.target_simproc));
    put32(b, static_cast<uint32_t>(e.headers.size()));
    uint64_t bits = 0;
    std::memcpy(&bits, &e.epoch, 8);
    put64(b, bits);
    put64(b, e.seqnr);
    put32(b, static_cast<uint32_t>(e.data.size()));
    put32(b, e.has_data && e.external ? static_cast<uint32_t>(payloads_.size()) : 0);
    if (e.has_reply_to) {
      put32(b, id(e.reply_node));
      put32(b, id(e.reply_simproc));
    }
    for (const auto& [key, value] : e.headers) {
      put32(b, id(key));
      put32(b, id(value));
    }
    if (e.has_data && e.external) {
      payloads_.push_back(e.data);
    } else if (e.has_data) {
      b.insert(b.end(), e.data.begin(), e.data.end());
      while (b.size() % 4 != 0) b.push_back(0);
    }
    ++count_;
  }

  /// The finished staging buffer.
  std::vector<uint8_t> finish() {
    std::vector<uint8_t> out = bytes_;
    out.insert(out.end(), envelopes_.begin(), envelopes_.end());
    const auto strings_at = static_cast<uint32_t>(out.size());
    out.insert(out.end(), definitions_.begin(), definitions_.end());
    uint8_t* h = out.data();
    const uint32_t magic = kBatchMagic;
    const uint16_t version = kBatchVersion;
    const uint16_t flags = reset_ ? kBatchResetStrings : 0;
    const auto used = static_cast<uint32_t>(out.size());
    const uint32_t lane = lane_;
    std::memcpy(h, &magic, 4);
    std::memcpy(h + 4, &version, 2);
    std::memcpy(h + 6, &flags, 2);
    std::memcpy(h + 8, &used, 4);
    std::memcpy(h + 12, &count_, 4);
    std::memcpy(h + 16, &strings_at, 4);
    std::memcpy(h + 20, &new_strings_, 4);
    std::memcpy(h + 24, &lane, 4);
    std::memcpy(h + 32, &link_seq_, 8);
    std::memcpy(h + 40, &ack_, 8);
    return out;
  }

  /// The external payloads of the batch, as spans.
  std::vector<PayloadSpan> payloads() const {
    std::vector<PayloadSpan> spans;
    for (const auto& p : payloads_) spans.push_back(PayloadSpan{p.data(), p.size()});
    return spans;
  }

  uint32_t string_count() const { return static_cast<uint32_t>(ids_.size()); }

 private:
  static void put32(std::vector<uint8_t>& b, uint32_t v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + 4);
  }
  static void put64(std::vector<uint8_t>& b, uint64_t v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + 8);
  }

  uint32_t id(const std::string& s) {
    const auto found = ids_.find(s);
    if (found != ids_.end()) return found->second;
    const auto next = static_cast<uint32_t>(ids_.size());
    ids_.emplace(s, next);
    put32(definitions_, next);
    put32(definitions_, static_cast<uint32_t>(s.size()));
    definitions_.insert(definitions_.end(), s.begin(), s.end());
    while (definitions_.size() % 4 != 0) definitions_.push_back(0);
    ++new_strings_;
    return next;
  }

  std::map<std::string, uint32_t> ids_;
  std::vector<uint8_t> bytes_;
  std::vector<uint8_t> definitions_;
  std::vector<uint8_t> envelopes_;
  std::vector<std::vector<uint8_t>> payloads_;
  uint32_t count_ = 0;
  uint32_t new_strings_ = 0;
  bool reset_ = false;
  uint8_t lane_ = 0;
  uint64_t link_seq_ = 0;
  uint64_t ack_ = 0;
};

}  // namespace disco::test

#endif  // DISCO_TEST_NATIVE_CPP_BATCH_SUPPORT_H_
