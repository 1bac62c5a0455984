// A minimal assertion kit for the C++ test binaries run by ctest (no framework, STYLE §7).
//
// CHECK(cond) and CHECK_EQ(a, b) print the failing expression with file and line and count
// the failure; a test's main() returns check_exit_code(), so ctest sees any failure while the
// test still reports every failed check, not only the first.

#ifndef DISCO_TEST_NATIVE_CPP_CHECK_H_
#define DISCO_TEST_NATIVE_CPP_CHECK_H_

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "status.h"

namespace disco::test {

inline int& failure_count() {
  static int failures = 0;
  return failures;
}

inline std::string describe(Status s) {
  return std::string(status_name(s)) + "(" + std::to_string(static_cast<int32_t>(s)) + ")";
}
inline std::string describe(const std::string& s) { return '"' + s + '"'; }
inline std::string describe(const char* s) { return describe(std::string(s)); }
template <typename T>
std::string describe(const T& v) {
  return std::to_string(v);
}

inline void report(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, what.c_str());
  ++failure_count();
}

inline int check_exit_code() {
  if (failure_count() == 0) return 0;
  std::fprintf(stderr, "%d check(s) failed\n", failure_count());
  return 1;
}

/// Exactly `n` heap bytes copied from `src`, so AddressSanitizer flags any read past the end
/// (a std::vector may have spare capacity). operator new[] aligns to at least 8 bytes.
class ExactBuffer {
 public:
  ExactBuffer(const uint8_t* src, size_t n) : bytes_(new uint8_t[n == 0 ? 1 : n]), size_(n) {
    if (n > 0) std::memcpy(bytes_.get(), src, n);
  }
  uint8_t* data() { return bytes_.get(); }
  size_t size() const { return size_; }

 private:
  std::unique_ptr<uint8_t[]> bytes_;
  size_t size_;
};

}  // namespace disco::test

#define CHECK(cond)                                                \
  do {                                                             \
    if (!(cond)) ::disco::test::report(__FILE__, __LINE__, #cond); \
  } while (0)

#define CHECK_EQ(a, b)                                                                           \
  do {                                                                                           \
    const auto& check_a_ = (a);                                                                  \
    const auto& check_b_ = (b);                                                                  \
    if (!(check_a_ == check_b_)) {                                                               \
      ::disco::test::report(__FILE__, __LINE__,                                                  \
                            std::string(#a " == " #b " (") + ::disco::test::describe(check_a_) + \
                                " vs " + ::disco::test::describe(check_b_) + ")");               \
    }                                                                                            \
  } while (0)

#endif  // DISCO_TEST_NATIVE_CPP_CHECK_H_
