// Helpers shared by the ring tests: a ring over heap memory and frames of chosen sizes.

#ifndef DISCO_TEST_NATIVE_CPP_RING_SUPPORT_H_
#define DISCO_TEST_NATIVE_CPP_RING_SUPPORT_H_

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "frame.h"
#include "frame_testing.h"
#include "generated/envelope_generated.h"
#include "ring.h"

namespace disco::test {

/// A zeroed, page-aligned ring (header page + data area) on the heap, as a fresh segment.
class HeapRing {
 public:
  explicit HeapRing(uint64_t capacity) : capacity_(capacity) {
    bytes_ = static_cast<uint8_t*>(std::aligned_alloc(4096, kRingHeaderBytes + capacity));
    std::memset(bytes_, 0, kRingHeaderBytes + capacity);
  }
  ~HeapRing() { std::free(bytes_); }
  HeapRing(const HeapRing&) = delete;
  HeapRing& operator=(const HeapRing&) = delete;

  RingMemory memory() {
    RingMemory m;
    if (ring_memory_over(bytes_, capacity_, &m) != Status::kOk) std::abort();
    return m;
  }
  RingHeader* header() { return reinterpret_cast<RingHeader*>(bytes_); }
  uint8_t* data() { return bytes_ + kRingHeaderBytes; }
  uint64_t capacity() const { return capacity_; }

 private:
  uint64_t capacity_;
  uint8_t* bytes_;
};

/// A sealed frame whose link_seq is `seq` and that is `data_bytes` of payload plus overhead.
inline std::vector<uint8_t> frame_with(uint64_t seq, uint32_t data_bytes) {
  return testing::build_test_frame(seq, 1, data_bytes);
}

/// link_seq of a verified frame.
inline uint64_t link_seq_of(const uint8_t* frame) {
  return wire::GetFrame(frame + kFrameHeaderBytes)->link_seq();
}

/// A unique segment name for this process and `what`.
inline std::string unique_name(const char* what) {
  return std::string("disco.ctest-") + std::to_string(::getpid()) + "." + what;
}

}  // namespace disco::test

#endif  // DISCO_TEST_NATIVE_CPP_RING_SUPPORT_H_
