// Futex and pipe doorbells; the handshake and the contracts are in doorbell.h.

#include "doorbell.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <mutex>
#include <new>
#include <unordered_map>

namespace disco {

namespace {

uint64_t monotonic_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

timespec to_timespec(uint64_t ns) noexcept {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000u);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000u);
  return ts;
}

long futex(std::atomic<uint32_t>* word, int op, uint32_t value, const timespec* timeout) noexcept {
  // std::atomic<uint32_t> is a plain u32 in memory (static_assert in ring.h), which is what
  // the kernel reads and compares.
  return ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), op, value, timeout, nullptr, 0);
}

void futex_wake_private(std::atomic<uint32_t>* word) noexcept {
  futex(word, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
}

void futex_wait_private(std::atomic<uint32_t>* word, uint32_t expected,
                        uint64_t timeout_ns) noexcept {
  const timespec ts = to_timespec(timeout_ns);
  futex(word, FUTEX_WAIT_PRIVATE, expected, &ts);
}

/// Polls between liveness checks while the peer's exit is watched by the ExitWatcher: only a
/// backstop, since the watcher wakes the thread when the peer exits.
constexpr uint64_t kWatchedCheckNs = 1'000'000'000u;

/// armed_ value the ExitWatcher leaves to make a parked thread return (see Doorbell::run).
constexpr uint32_t kPoked = 3;

// ---- ExitWatcher -----------------------------------------------------------------------------
//
// One thread per process sleeps in epoll_wait on a pidfd per watched peer process (readable
// once that process has exited) and calls the watch's callback then. It replaces the periodic
// liveness polls of every Doorbell thread (20 wake-ups a second each while idle) with one
// blocking wait, and reports an exit as soon as the kernel does. Without pidfds (kernels before
// 5.3, or a seccomp filter refusing them) watch() returns 0 and Doorbells keep polling.
//
// Threads: watch() and forget() come from Doorbell threads; callbacks run on the watcher's
// thread under its mutex, so that once forget() returns its callbacks are not running and never
// will. The watcher and its thread live until the process exits (never destroyed: a Doorbell
// thread may still call in while static destructors run). After fork() the child starts afresh.
class ExitWatcher {
 public:
  using Callback = void (*)(void* context);

  /// The process's watcher; null only if it could not be allocated.
  static ExitWatcher* instance() noexcept {
    static ExitWatcher* const watcher = new (std::nothrow) ExitWatcher();
    return watcher;
  }

  /// Watches the process of `identity` (shm.h) for `context`; false when it cannot (no pidfd, or
  /// the process is gone already: the caller's next liveness check says so). `forget(context)`
  /// ends it; the token is the watcher's own, to find the watch from an epoll event.
  bool watch(uint64_t identity, Callback callback, void* context) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ready_locked()) return false;
    const long fd = ::syscall(SYS_pidfd_open, static_cast<pid_t>(identity_pid(identity)), 0);
    if (fd < 0) return false;
    // The pidfd names whatever process has the pid now; it is the peer only if the peer is
    // still alive (a pid is not reused while its process lives).
    if (!is_alive(identity)) {
      ::close(static_cast<int>(fd));
      return false;
    }
    const uint64_t token = next_token_++;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = token;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, static_cast<int>(fd), &ev) != 0) {
      ::close(static_cast<int>(fd));
      return false;
    }
    watches_[token] = Watch{static_cast<int>(fd), callback, context};
    return true;
  }

  /// Stops every watch whose callback gets `context`. After it returns none of them is called.
  void forget(const void* context) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    if (owner_ != ::getpid()) return;  // watches of the parent's, gone with the fork
    for (auto it = watches_.begin(); it != watches_.end();) {
      if (it->second.context == context) {
        ::close(it->second.fd);  // also removes it from the epoll set
        it = watches_.erase(it);
      } else {
        ++it;
      }
    }
  }

 private:
  struct Watch {
    int fd;
    Callback callback;
    void* context;
  };

  /// Creates the epoll set and the thread on first use (and again in a forked child).
  bool ready_locked() noexcept {
    const pid_t self = ::getpid();
    if (owner_ == self) return epoll_ >= 0;
    // First use, or a child after fork(): the parent's watcher thread did not come along.
    if (epoll_ >= 0) ::close(epoll_);
    for (auto& w : watches_) ::close(w.second.fd);
    watches_.clear();
    owner_ = self;
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) return false;
    pthread_t thread;
    if (::pthread_create(&thread, nullptr, &ExitWatcher::thread_main, this) != 0) {
      ::close(epoll_);
      epoll_ = -1;
      return false;
    }
    ::pthread_detach(thread);
    return true;
  }

  static void* thread_main(void* self) noexcept {
    static_cast<ExitWatcher*>(self)->run(::getpid());
    return nullptr;
  }

  void run(pid_t owner) noexcept {
    int fd = -1;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fd = epoll_;
    }
    epoll_event events[16];
    for (;;) {
      const int n = ::epoll_wait(fd, events, 16, -1);
      if (n < 0 && errno != EINTR) return;
      std::lock_guard<std::mutex> lock(mu_);
      if (owner_ != owner) return;  // cannot happen in this process; defensive
      for (int i = 0; i < n; ++i) {
        const auto it = watches_.find(events[i].data.u64);
        if (it == watches_.end()) continue;  // forgotten after the event was queued
        it->second.callback(it->second.context);
        ::close(it->second.fd);
        watches_.erase(it);
      }
    }
  }

  std::mutex mu_;
  pid_t owner_ = 0;
  int epoll_ = -1;
  uint64_t next_token_ = 1;
  std::unordered_map<uint64_t, Watch> watches_;
};

}  // namespace

void futex_wake_shared(std::atomic<uint32_t>* word, int count) noexcept {
  futex(word, FUTEX_WAKE, static_cast<uint32_t>(count), nullptr);
}

void futex_wait_shared(std::atomic<uint32_t>* word, uint32_t expected,
                       uint64_t timeout_ns) noexcept {
  const timespec ts = to_timespec(timeout_ns);
  futex(word, FUTEX_WAIT, expected, &ts);
}

std::string pipe_bell_path(std::string_view ring_name) {
  std::string path(kShmDirectory);
  path += '/';
  path += ring_name;
  path += ".bell";
  return path;
}

Status create_pipe_bell(std::string_view ring_name, int* fd, int* err) noexcept {
  if (Status s = validate_segment_name(ring_name); s != Status::kOk) return s;
  const std::string path = pipe_bell_path(ring_name);
  ::unlink(path.c_str());  // a FIFO left by a consumer that died; ENOENT otherwise
  if (::mkfifo(path.c_str(), 0600) != 0 || ::chmod(path.c_str(), 0600) != 0) {
    *err = errno;
    return Status::kSystemError;
  }
  const int f = ::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (f < 0) {
    *err = errno;
    ::unlink(path.c_str());
    return Status::kSystemError;
  }
  *fd = f;
  return Status::kOk;
}

void remove_pipe_bell(std::string_view ring_name) noexcept {
  if (validate_segment_name(ring_name) != Status::kOk) return;
  ::unlink(pipe_bell_path(ring_name).c_str());
}

// ---- Doorbell ------------------------------------------------------------------------------

Doorbell::Doorbell(RingMemory memory, Side side, const DoorbellOptions& options, Callback callback,
                   void* context) noexcept
    : memory_(std::move(memory)),
      side_(side),
      options_(options),
      callback_(callback),
      context_(context) {}

Doorbell::~Doorbell() {
  stop();
  join();
}

Status Doorbell::start(int* err) noexcept {
  if (started_) return Status::kInvalidArgument;
  const int rc = ::pthread_create(&thread_, nullptr, &Doorbell::thread_main, this);
  if (rc != 0) {
    *err = rc;
    return Status::kSystemError;
  }
  started_ = true;
  return Status::kOk;
}

void* Doorbell::thread_main(void* self) noexcept {
  static_cast<Doorbell*>(self)->run();
  return nullptr;
}

std::atomic<uint32_t>* Doorbell::bell() const noexcept {
  return side_ == Side::kConsumer ? &memory_.header->consumer_bell : &memory_.header->producer_bell;
}

void Doorbell::arm(uint64_t position, uint64_t want) noexcept {
  // Relaxed: the release store of armed_ publishes them to the thread's acquire load.
  position_.store(position, std::memory_order_relaxed);
  want_.store(want, std::memory_order_relaxed);
  armed_.store(1, std::memory_order_release);
  // Same handshake as doorbell.h, process-local: the thread sets parked_ then re-checks
  // armed_; we set armed_ then check parked_. One of us sees the other.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (parked_.load(std::memory_order_relaxed) != 0) futex_wake_private(&armed_);
}

void Doorbell::disarm() noexcept {
  // Only an arm that has not fired: the thread clears armed_ itself when it fires, and a
  // stop (2) or poke (kPoked) must stay.
  uint32_t armed = 1;
  armed_.compare_exchange_strong(armed, 0, std::memory_order_relaxed);
}

void Doorbell::stop() noexcept {
  if (!started_ || joined_) return;
  stop_.store(true, std::memory_order_release);
  // Change both words the thread may sleep on so that a wait about to start returns at once,
  // then wake a wait in progress. Bumping the shared bell only costs the peer nothing: it is
  // a counter nobody compares except the sleeping thread.
  armed_.store(2, std::memory_order_release);
  futex_wake_private(&armed_);
  bell()->fetch_add(1, std::memory_order_release);
  futex_wake_shared(bell(), INT_MAX);
}

void Doorbell::join() noexcept {
  if (!started_ || joined_) return;
  ::pthread_join(thread_, nullptr);
  joined_ = true;
}

bool Doorbell::ready() const noexcept {
  const RingHeader* h = memory_.header;
  const uint64_t position = position_.load(std::memory_order_relaxed);
  if (side_ == Side::kConsumer) {
    // Acquire pairs with the producer's release store of tail or of producer_closed.
    return h->tail.load(std::memory_order_acquire) != position ||
           h->producer_closed.load(std::memory_order_acquire) != 0;
  }
  const uint64_t want = want_.load(std::memory_order_relaxed);
  // Acquire pairs with the consumer's release store of head or of consumer_closed.
  return h->head.load(std::memory_order_acquire) + memory_.capacity - position >= want ||
         h->consumer_closed.load(std::memory_order_acquire) != 0;
}

bool Doorbell::peer_alive() const noexcept {
  const RingHeader* h = memory_.header;
  const bool consumer_side = side_ == Side::kConsumer;
  const uint64_t peer = consumer_side ? h->producer.load(std::memory_order_acquire)
                                      : h->consumer.load(std::memory_order_acquire);
  // A peer that closed its end and then exited left cleanly: that is PEER_CLOSED, reported by
  // the next read or write, not a death. No peer yet is not a dead peer either.
  const uint32_t closed = consumer_side ? h->producer_closed.load(std::memory_order_acquire)
                                        : h->consumer_closed.load(std::memory_order_acquire);
  return peer == 0 || closed != 0 || is_alive(peer);
}

bool Doorbell::announce_sleep() const noexcept {
  const uint64_t position = position_.load(std::memory_order_relaxed);
  if (side_ == Side::kConsumer) return announce_consumer_sleep(memory_.header, position);
  return announce_producer_wait(memory_.header, position, want_.load(std::memory_order_relaxed),
                                memory_.capacity);
}

void Doorbell::end_sleep() const noexcept {
  // The peer may have swapped the flag to 0 already; storing 0 again is harmless.
  if (side_ == Side::kConsumer) {
    memory_.header->consumer_sleeping.store(0, std::memory_order_relaxed);
  } else {
    memory_.header->producer_waiting.store(0, std::memory_order_relaxed);
  }
}

void Doorbell::park(uint64_t timeout_ns) noexcept {
  parked_.store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with the fence in arm()
  // A peer exit found after this check pokes armed_ (0 -> kPoked) before it wakes: the wait
  // then returns at once or is woken.
  if (armed_.load(std::memory_order_relaxed) == 0 && !stop_.load(std::memory_order_relaxed) &&
      !peer_exited_.load(std::memory_order_seq_cst)) {
    futex_wait_private(&armed_, 0, timeout_ns);
  }
  parked_.store(0, std::memory_order_relaxed);
}

void Doorbell::on_peer_exit(void* self) noexcept {
  // On the ExitWatcher's thread. The flag first, then the words the thread may sleep on, so a
  // sleep that starts after the flag check below sees a changed word (see run()).
  auto* d = static_cast<Doorbell*>(self);
  d->peer_exited_.store(true, std::memory_order_seq_cst);
  uint32_t idle = 0;
  d->armed_.compare_exchange_strong(idle, kPoked, std::memory_order_seq_cst);
  futex_wake_private(&d->armed_);
  d->bell()->fetch_add(1, std::memory_order_seq_cst);
  futex_wake_shared(d->bell(), INT_MAX);
}

bool Doorbell::watch_peer() noexcept {
  const RingHeader* h = memory_.header;
  const bool consumer_side = side_ == Side::kConsumer;
  const uint64_t peer = consumer_side ? h->producer.load(std::memory_order_acquire)
                                      : h->consumer.load(std::memory_order_acquire);
  if (peer == 0) return false;  // not attached yet: keep polling until it is
  ExitWatcher* watcher = ExitWatcher::instance();
  return watcher != nullptr && watcher->watch(peer, &Doorbell::on_peer_exit, this);
}

void Doorbell::forget_peer() noexcept {
  ExitWatcher* watcher = ExitWatcher::instance();
  if (watcher != nullptr) watcher->forget(this);
}

void Doorbell::fire() noexcept {
  armed_.store(0, std::memory_order_relaxed);
  callback_(context_, DoorbellEvent::kReady);
}

void Doorbell::run() noexcept {
  const uint64_t liveness_ns = uint64_t{options_.liveness_ms} * 1'000'000u;
  bool watched = false;     // the ExitWatcher watches the peer's exit
  uint64_t next_check = 0;  // check (and start watching) at once
  while (!stop_.load(std::memory_order_acquire)) {
    // Take back a poke of the ExitWatcher (a concurrent arm() wins: its 1 stays).
    uint32_t poked = kPoked;
    armed_.compare_exchange_strong(poked, 0, std::memory_order_acq_rel);
    uint64_t now = monotonic_ns();
    const bool exited = peer_exited_.exchange(false, std::memory_order_acq_rel);
    if (exited) watched = false;  // the watcher dropped it
    if (exited || now >= next_check) {
      // A watched exit wakes this thread at once, so the polls can be rare; a peer that exits
      // after closing its end is not dead and needs no watching either. The watch is asked
      // for before the check: the watcher refuses a peer that is gone already, and a check
      // before it would leave a peer that died in between to the next poll (liveness_ms).
      if (!watched && !exited) watched = watch_peer();
      if (!peer_alive()) {
        forget_peer();
        callback_(context_, DoorbellEvent::kPeerDead);
        return;
      }
      next_check = now + (watched || exited ? kWatchedCheckNs : liveness_ns);
    }
    const uint64_t until_check = next_check - now;
    // Acquire pairs with the release store in arm(): position_ and want_ are the armed ones.
    const uint32_t armed = armed_.load(std::memory_order_acquire);
    if (armed != 1 || !options_.watch_data) {
      park(until_check);
      continue;
    }
    if (ready()) {
      fire();
      continue;
    }
    // Sleep: the handshake of doorbell.h. The bell value is read before announcing, so a ring
    // between here and the wait makes the wait return at once.
    std::atomic<uint32_t>* word = bell();
    const uint32_t seen = word->load(std::memory_order_seq_cst);
    // An exit flagged after this load bumps the word after it: the wait returns at once.
    if (peer_exited_.load(std::memory_order_seq_cst)) continue;
    if (!announce_sleep()) {
      fire();
      continue;
    }
    now = monotonic_ns();
    futex_wait_shared(word, seen, next_check > now ? next_check - now : 1);
    end_sleep();
  }
  // Stopped: after this the watcher never calls back into this Doorbell. Every watch that
  // names it goes (forget_peer), not only the latest: a watch left behind would call into a
  // Doorbell that no longer exists when the peer exits (seen: a process crashed in
  // on_peer_exit while it exited, its peer exiting with it).
  forget_peer();
}

}  // namespace disco
