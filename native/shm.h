// POSIX shared-memory segments in /dev/shm and the identity of the processes using them
// (DESIGN §5, §11).
//
// A segment is one file in /dev/shm, mode 0600, that starts with a SegmentPrefix; what follows
// the prefix belongs to the layer on top (ring.h). The creator writes every prefix field, then
// the magic LAST with a release store; an opener loads the magic with acquire and refuses the
// segment unless magic, layout version, header size and capacity agree with each other and with
// the file size. So an opener never sees a half-initialised header as valid.
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                       magic (u64)                             |  0  written last (release)
//  +                                                               +
//  |                                                               |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                   layout_version (u32)                        |  8
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                   header_bytes (u32)                          | 12  bytes before the data
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                   capacity (u64)                              | 16  data bytes after header;
//  +                                                               +     file size is exactly
//  |                                                               |     header_bytes + capacity
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                   creator identity (u64)                      | 24  packed, see below
//  +                                                               +
//  |                                                               |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  ... owned by the layer on top ...                            | 32
//
// Fields are native-endian: a segment never leaves the machine that created it.
//
// Process identity: a pid alone is reused by the kernel, so an identity is the pid plus the
// process start time (field 22 of /proc/<pid>/stat, clock ticks since boot). The two are packed
// into one u64 so that a ring can claim a role with a single compare-and-swap:
//
//   bits 63..22: start time (42 bits: 1,390 years of ticks at 100 Hz)   bits 21..0: pid
//
// Linux caps pid_max at 2^22 (PID_MAX_LIMIT), so the pid always fits. 0 means "nobody". All
// processes using one segment must share a pid namespace (they do: one machine, one cluster).
//
// Threads: the functions are reentrant. A SegmentMapping may be used from any thread; it does
// not synchronise access to the bytes it maps (ring.h does).

#ifndef DISCO_NATIVE_SHM_H_
#define DISCO_NATIVE_SHM_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "status.h"

namespace disco {

/// Longest segment name accepted (the kernel allows 255 bytes; the rest is headroom for the
/// ".bell" suffix of a pipe doorbell and for the cluster prefix checks).
inline constexpr size_t kMaxSegmentNameBytes = 200;

/// Where POSIX shared memory lives on Linux; names below are relative to it.
inline constexpr const char* kShmDirectory = "/dev/shm";

/// The common start of every segment; see the diagram above.
struct SegmentPrefix {
  std::atomic<uint64_t> magic;
  uint32_t layout_version;
  uint32_t header_bytes;
  uint64_t capacity;
  uint64_t creator;
};

static_assert(std::atomic<uint64_t>::is_always_lock_free,
              "atomics in shared memory must be lock-free to be address-free across processes");
static_assert(sizeof(std::atomic<uint64_t>) == 8, "an atomic u64 must be a plain u64 in memory");
static_assert(std::is_standard_layout_v<SegmentPrefix>, "SegmentPrefix is a memory layout");
static_assert(offsetof(SegmentPrefix, magic) == 0, "magic is at offset 0");
static_assert(offsetof(SegmentPrefix, layout_version) == 8, "layout_version is at offset 8");
static_assert(offsetof(SegmentPrefix, header_bytes) == 12, "header_bytes is at offset 12");
static_assert(offsetof(SegmentPrefix, capacity) == 16, "capacity is at offset 16");
static_assert(offsetof(SegmentPrefix, creator) == 24, "creator is at offset 24");
static_assert(sizeof(SegmentPrefix) == 32, "the segment prefix is 32 bytes");

/// What a segment must look like: written by create_segment(), checked by open_segment().
struct SegmentSpec {
  uint64_t magic = 0;
  uint32_t layout_version = 0;
  /// Bytes of header (prefix included) before the data area; a multiple of the page size.
  uint32_t header_bytes = 0;
  /// Bytes of the data area. open_segment() accepts any capacity for which `valid_capacity`
  /// holds and the file size is header_bytes + capacity; create_segment() writes this one.
  uint64_t capacity = 0;
  /// Capacity check of the layer on top (ring.h: a power of two in its range).
  bool (*valid_capacity)(uint64_t capacity) noexcept = nullptr;
};

/// A shared mapping of a whole segment, unmapped on destruction. Owns no file descriptor.
/// Non-copyable and non-movable: pointers into the mapping are handed out freely, and the
/// mapping's address must not change or be released twice.
class SegmentMapping {
 public:
  SegmentMapping(uint8_t* base, size_t bytes) noexcept : base_(base), bytes_(bytes) {}
  ~SegmentMapping();
  SegmentMapping(const SegmentMapping&) = delete;
  SegmentMapping& operator=(const SegmentMapping&) = delete;
  SegmentMapping(SegmentMapping&&) = delete;
  SegmentMapping& operator=(SegmentMapping&&) = delete;

  [[nodiscard]] uint8_t* data() const noexcept { return base_; }
  [[nodiscard]] size_t size() const noexcept { return bytes_; }
  [[nodiscard]] SegmentPrefix* prefix() const noexcept {
    return reinterpret_cast<SegmentPrefix*>(base_);
  }

 private:
  uint8_t* const base_;
  const size_t bytes_;
};

/// kOk when `name` is 1..kMaxSegmentNameBytes characters of [A-Za-z0-9_.-] that does not
/// start with '.', else kBadName. The name is used as is under /dev/shm.
[[nodiscard]] Status validate_segment_name(std::string_view name) noexcept;

/// Creates segment `name` (O_CREAT | O_EXCL, mode 0600 whatever the umask), sizes it to
/// header_bytes + capacity, maps it shared, writes the prefix with this process as creator and
/// the magic last. The data area and the rest of the header are zero. On success `*out` holds
/// the mapping. kSegmentExists when the name is taken; kSystemError with `*err` = errno when a
/// system call fails (the half-made file is unlinked); kBadName; kInvalidArgument when the spec
/// is not valid for its own `valid_capacity`.
[[nodiscard]] Status create_segment(std::string_view name, const SegmentSpec& spec,
                                    std::unique_ptr<SegmentMapping>* out, int* err) noexcept;

/// Opens and maps an existing segment and checks its prefix against `spec` (magic, layout
/// version, header bytes; capacity via spec.valid_capacity and the file size). kSegmentNotFound,
/// kBadSegment, kBadName or kSystemError (with `*err`).
[[nodiscard]] Status open_segment(std::string_view name, const SegmentSpec& spec,
                                  std::unique_ptr<SegmentMapping>* out, int* err) noexcept;

/// Unlinks segment `name`; mappings that exist stay valid until unmapped. kSegmentNotFound when
/// there is none. Also removes the pipe doorbell "<name>.bell" when there is one.
[[nodiscard]] Status unlink_segment(std::string_view name, int* err) noexcept;

/// Unlinks every entry of /dev/shm whose name starts with `prefix` and that is a stale segment:
/// a file with the given magic whose creator is dead; an unfinished one (magic still 0) whose
/// creator is dead, or that names no creator and was last changed more than 10 s ago; plus
/// "<name>.bell" pipes whose segment is gone. Files with another magic are never touched.
/// `prefix` must be a valid segment name (it scopes the cleanup to one cluster). `*removed`
/// counts what was unlinked.
[[nodiscard]] Status remove_stale_segments(std::string_view prefix, uint64_t magic,
                                           uint32_t* removed, int* err) noexcept;

/// Packs a pid and a start time as described above; 0 when either does not fit.
[[nodiscard]] constexpr uint64_t pack_identity(uint32_t pid, uint64_t start_ticks) noexcept {
  constexpr uint64_t kPidMask = (uint64_t{1} << 22) - 1;
  if (pid == 0 || pid > kPidMask || start_ticks >= (uint64_t{1} << 42)) return 0;
  return start_ticks << 22 | pid;
}

/// The pid of a packed identity.
[[nodiscard]] constexpr uint32_t identity_pid(uint64_t identity) noexcept {
  return static_cast<uint32_t>(identity & ((uint64_t{1} << 22) - 1));
}

/// The start time (clock ticks since boot) of a packed identity.
[[nodiscard]] constexpr uint64_t identity_start_ticks(uint64_t identity) noexcept {
  return identity >> 22;
}

/// Reads the state character (field 3) and start time (field 22) of `pid` from
/// /proc/<pid>/stat. The second field (the command name) is in parentheses and may itself hold
/// spaces and parentheses, so parsing starts after the LAST ')'. False when the process does
/// not exist or the file does not parse.
[[nodiscard]] bool read_process_stat(uint32_t pid, char* state, uint64_t* start_ticks) noexcept;

/// Parses the text of a /proc/<pid>/stat file (exposed for tests). False when malformed.
[[nodiscard]] bool parse_process_stat(std::string_view text, char* state,
                                      uint64_t* start_ticks) noexcept;

/// This process's identity (recomputed after a fork). 0 only if /proc is unreadable.
[[nodiscard]] uint64_t self_identity() noexcept;

/// True while the process `identity` names runs: kill(pid, 0) succeeds or fails with EPERM,
/// its start time still matches (the pid was not reused), and it is not a zombie (a process
/// killed but not yet reaped by its parent is dead for us). False for 0.
[[nodiscard]] bool is_alive(uint64_t identity) noexcept;

}  // namespace disco

#endif  // DISCO_NATIVE_SHM_H_
