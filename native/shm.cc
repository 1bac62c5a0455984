// POSIX shared-memory segments and process identities; the contract is in shm.h.

#include "shm.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace disco {

namespace {

/// Suffix of the pipe doorbell that may accompany a segment (doorbell.h).
constexpr std::string_view kBellSuffix = ".bell";

/// A file younger than this may belong to a creator that is still writing its prefix.
constexpr time_t kHalfMadeGraceSeconds = 10;

bool is_name_char(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

/// "/<name>" for shm_open and shm_unlink.
std::string shm_name(std::string_view name) {
  std::string s;
  s.reserve(name.size() + 1);
  s += '/';
  s += name;
  return s;
}

/// "/dev/shm/<name>" for the calls that take a path.
std::string shm_path(std::string_view name) {
  std::string s(kShmDirectory);
  s += '/';
  s += name;
  return s;
}

/// Closes `fd` on scope exit.
class FdCloser {
 public:
  explicit FdCloser(int fd) noexcept : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

Status system_error(int* err) noexcept {
  if (err != nullptr) *err = errno;
  return Status::kSystemError;
}

bool segment_size(const SegmentSpec& spec, uint64_t capacity, size_t* bytes) noexcept {
  const uint64_t total = uint64_t{spec.header_bytes} + capacity;
  if (total < capacity || total > SIZE_MAX) return false;
  *bytes = static_cast<size_t>(total);
  return true;
}

bool spec_is_valid(const SegmentSpec& spec) noexcept {
  const long page = ::sysconf(_SC_PAGESIZE);
  return spec.magic != 0 && spec.valid_capacity != nullptr && page > 0 &&
         spec.header_bytes >= sizeof(SegmentPrefix) &&
         spec.header_bytes % static_cast<uint64_t>(page) == 0;
}

/// Reads the prefix of the regular file at `path` without mapping it. False when it cannot.
bool read_prefix(const std::string& path, uint64_t* magic, uint64_t* creator,
                 struct stat* st) noexcept {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  FdCloser closer(fd);
  if (::fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) return false;
  if (st->st_size < static_cast<off_t>(sizeof(SegmentPrefix))) {
    *magic = 0;
    *creator = 0;
    return true;
  }
  uint8_t bytes[sizeof(SegmentPrefix)];
  if (::pread(fd, bytes, sizeof(bytes), 0) != static_cast<ssize_t>(sizeof(bytes))) return false;
  std::memcpy(magic, bytes + offsetof(SegmentPrefix, magic), sizeof(*magic));
  std::memcpy(creator, bytes + offsetof(SegmentPrefix, creator), sizeof(*creator));
  return true;
}

bool starts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

bool ends_with(std::string_view s, std::string_view suffix) noexcept {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool path_exists(const std::string& path) noexcept {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace

SegmentMapping::~SegmentMapping() {
  if (base_ != nullptr) ::munmap(base_, bytes_);
}

Status validate_segment_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > kMaxSegmentNameBytes || name.front() == '.') {
    return Status::kBadName;
  }
  for (const char c : name) {
    if (!is_name_char(c)) return Status::kBadName;
  }
  return Status::kOk;
}

Status create_segment(std::string_view name, const SegmentSpec& spec,
                      std::unique_ptr<SegmentMapping>* out, int* err) noexcept {
  if (Status s = validate_segment_name(name); s != Status::kOk) return s;
  size_t bytes = 0;
  if (!spec_is_valid(spec) || !spec.valid_capacity(spec.capacity) ||
      !segment_size(spec, spec.capacity, &bytes)) {
    return Status::kInvalidArgument;
  }
  const std::string shm = shm_name(name);
  const int fd = ::shm_open(shm.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return errno == EEXIST ? Status::kSegmentExists : system_error(err);
  FdCloser closer(fd);

  // From here on a failure unlinks the file: nobody else can have it valid, the magic is 0.
  auto fail = [&]() noexcept {
    const Status s = system_error(err);
    ::shm_unlink(shm.c_str());
    return s;
  };
  // The mode passed to shm_open is masked by the umask; make it exactly 0600.
  if (::fchmod(fd, 0600) != 0) return fail();
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) return fail();
  void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return fail();

  std::unique_ptr<SegmentMapping> mapping(new (std::nothrow)
                                              SegmentMapping(static_cast<uint8_t*>(base), bytes));
  if (!mapping) {
    ::munmap(base, bytes);
    ::shm_unlink(shm.c_str());
    return Status::kNoMemory;
  }
  // ftruncate zero-filled the file, so the atomic is already a valid 0; placement-new would
  // be the same bytes. The plain fields are written first, the magic last with release: it
  // pairs with the acquire load in open_segment(), which then sees every field below.
  SegmentPrefix* prefix = mapping->prefix();
  prefix->layout_version = spec.layout_version;
  prefix->header_bytes = spec.header_bytes;
  prefix->capacity = spec.capacity;
  prefix->creator = self_identity();
  prefix->magic.store(spec.magic, std::memory_order_release);
  *out = std::move(mapping);
  return Status::kOk;
}

Status open_segment(std::string_view name, const SegmentSpec& spec,
                    std::unique_ptr<SegmentMapping>* out, int* err) noexcept {
  if (Status s = validate_segment_name(name); s != Status::kOk) return s;
  if (!spec_is_valid(spec)) return Status::kInvalidArgument;
  const std::string shm = shm_name(name);
  const int fd = ::shm_open(shm.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return errno == ENOENT ? Status::kSegmentNotFound : system_error(err);
  FdCloser closer(fd);

  struct stat st;
  if (::fstat(fd, &st) != 0) return system_error(err);
  if (!S_ISREG(st.st_mode) || st.st_size < static_cast<off_t>(spec.header_bytes)) {
    return Status::kBadSegment;
  }
  const auto file_bytes = static_cast<uint64_t>(st.st_size);
  if (file_bytes > SIZE_MAX) return Status::kBadSegment;
  void* base =
      ::mmap(nullptr, static_cast<size_t>(file_bytes), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return system_error(err);
  std::unique_ptr<SegmentMapping> mapping(
      new (std::nothrow) SegmentMapping(static_cast<uint8_t*>(base), file_bytes));
  if (!mapping) {
    ::munmap(base, static_cast<size_t>(file_bytes));
    return Status::kNoMemory;
  }

  // Acquire pairs with the creator's release store of the magic: the fields read after it
  // are the creator's. A 0 magic is a segment still being created (or never finished).
  const SegmentPrefix* prefix = mapping->prefix();
  if (prefix->magic.load(std::memory_order_acquire) != spec.magic) return Status::kBadSegment;
  const uint64_t capacity = prefix->capacity;
  size_t expected = 0;
  if (prefix->layout_version != spec.layout_version || prefix->header_bytes != spec.header_bytes ||
      !spec.valid_capacity(capacity) || !segment_size(spec, capacity, &expected) ||
      expected != file_bytes) {
    return Status::kBadSegment;
  }
  *out = std::move(mapping);
  return Status::kOk;
}

Status unlink_segment(std::string_view name, int* err) noexcept {
  if (Status s = validate_segment_name(name); s != Status::kOk) return s;
  std::string bell = shm_path(name);
  bell += kBellSuffix;
  ::unlink(bell.c_str());  // Most rings have no pipe doorbell; ENOENT is the usual answer.
  if (::shm_unlink(shm_name(name).c_str()) != 0) {
    return errno == ENOENT ? Status::kSegmentNotFound : system_error(err);
  }
  return Status::kOk;
}

Status remove_stale_segments(std::string_view prefix, uint64_t magic, uint32_t* removed,
                             int* err) noexcept {
  *removed = 0;
  if (Status s = validate_segment_name(prefix); s != Status::kOk) return s;
  DIR* dir = ::opendir(kShmDirectory);
  if (dir == nullptr) return system_error(err);
  std::string bells;  // names of pipe doorbells, '\n'-separated, checked after the segments
  const time_t now = ::time(nullptr);
  errno = 0;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view name(entry->d_name);
    if (!starts_with(name, prefix) || validate_segment_name(name) != Status::kOk) continue;
    if (ends_with(name, kBellSuffix)) {
      bells.append(name.data(), name.size());
      bells += '\n';
      continue;
    }
    uint64_t file_magic = 0;
    uint64_t creator = 0;
    struct stat st;
    if (!read_prefix(shm_path(name), &file_magic, &creator, &st)) continue;
    // A 0 magic is a segment whose creator never finished it: stale once that creator is
    // dead, or, when it died before even writing its identity, once the file is old enough
    // that no creator can still be working on it.
    bool stale = false;
    if (file_magic == magic) {
      stale = !is_alive(creator);
    } else if (file_magic == 0) {
      stale = creator != 0 ? !is_alive(creator) : now - st.st_mtime > kHalfMadeGraceSeconds;
    }
    if (stale && ::shm_unlink(shm_name(name).c_str()) == 0) ++*removed;
  }
  ::closedir(dir);

  size_t start = 0;
  while (start < bells.size()) {
    const size_t end = bells.find('\n', start);
    const std::string bell = bells.substr(start, end - start);
    start = end + 1;
    struct stat st;
    const std::string path = shm_path(bell);
    const std::string segment = path.substr(0, path.size() - kBellSuffix.size());
    if (::lstat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode) && !path_exists(segment) &&
        ::unlink(path.c_str()) == 0) {
      ++*removed;
    }
  }
  return Status::kOk;
}

bool parse_process_stat(std::string_view text, char* state, uint64_t* start_ticks) noexcept {
  // "pid (comm) state ppid ... starttime ...": comm may hold ") (" itself, so the fields we
  // want are counted from the last ')'. Field 3 is the state, field 22 the start time.
  const size_t close = text.rfind(')');
  if (close == std::string_view::npos) return false;
  std::string_view rest = text.substr(close + 1);
  constexpr int kStateField = 3;
  constexpr int kStartTimeField = 22;
  int field = kStateField;
  while (!rest.empty()) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (rest.empty()) break;
    const size_t end = rest.find_first_of(" \n");
    const std::string_view token = rest.substr(0, end);
    if (field == kStateField) {
      if (token.size() != 1) return false;
      *state = token.front();
    } else if (field == kStartTimeField) {
      uint64_t v = 0;
      const auto r = std::from_chars(token.data(), token.data() + token.size(), v);
      if (r.ec != std::errc() || r.ptr != token.data() + token.size()) return false;
      *start_ticks = v;
      return true;
    }
    ++field;
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end);
  }
  return false;
}

bool read_process_stat(uint32_t pid, char* state, uint64_t* start_ticks) noexcept {
  char path[40];
  const auto r = std::to_chars(path, path + sizeof(path), pid);
  std::string p("/proc/");
  p.append(path, r.ptr);
  p += "/stat";
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  FdCloser closer(fd);
  // The file is at most a few hundred bytes even with a 64-byte comm; 1 KiB is plenty.
  char buf[1024];
  size_t used = 0;
  while (used < sizeof(buf)) {
    const ssize_t n = ::read(fd, buf + used, sizeof(buf) - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += static_cast<size_t>(n);
  }
  return parse_process_stat(std::string_view(buf, used), state, start_ticks);
}

uint64_t self_identity() noexcept {
  // Cached per process; a forked child has another pid and recomputes. Relaxed is enough:
  // any thread computes the same value, and a stale read only costs a recomputation.
  static std::atomic<uint64_t> cached{0};
  const auto pid = static_cast<uint32_t>(::getpid());
  const uint64_t known = cached.load(std::memory_order_relaxed);
  if (known != 0 && identity_pid(known) == pid) return known;
  char state = 0;
  uint64_t start = 0;
  if (!read_process_stat(pid, &state, &start)) return 0;
  const uint64_t identity = pack_identity(pid, start);
  cached.store(identity, std::memory_order_relaxed);
  return identity;
}

bool is_alive(uint64_t identity) noexcept {
  const uint32_t pid = identity_pid(identity);
  if (identity == 0 || pid == 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return false;
  char state = 0;
  uint64_t start = 0;
  if (!read_process_stat(pid, &state, &start)) return false;
  // 'Z' zombie and 'X' dead: gone, whether or not the parent has reaped it yet.
  return start == identity_start_ticks(identity) && state != 'Z' && state != 'X';
}

}  // namespace disco
