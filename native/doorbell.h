// Wake-ups across the ring without busy-waiting in JavaScript (DESIGN §5, STYLE §2).
//
// Two ways to wake a consumer, chosen when it opens (BellKind in ring.h):
//
//   futex  A Doorbell thread per ring end sleeps on a futex word in the segment
//          (consumer_bell). The producer rings it with FUTEX_WAKE only when the consumer
//          announced it sleeps. The thread wakes JavaScript through a callback (the binding's
//          threadsafe function).
//   pipe   The consumer makes a FIFO "/dev/shm/<ring>.bell" and hands its read end to the JS
//          event loop, which watches it like a socket; the producer writes one byte into it
//          only when the consumer announced it sleeps. A Doorbell thread still runs, for peer
//          liveness only.
//
// Spinning is not done here: a wake-up through either doorbell costs a hand-off to the event
// loop (tens of microseconds on a VM), which a native thread spinning cannot avoid. The JS
// reader (src/transports/ring-reader.ts) polls the ring itself from the event loop while it
// expects traffic, and arms a doorbell only when it stops polling. While it polls it has
// announced nothing, so the producer pays no syscall.
//
// The sleep handshake, and why no wake-up is lost. Consumer (C) and producer (P):
//
//   C1  v = consumer_bell (acquire)            P1  tail = t (release)      -- commit
//   C2  consumer_sleeping = 1                  P2  fence(seq_cst)
//   C3  fence(seq_cst)                         P3  s = consumer_sleeping
//   C4  t' = tail; if t' != read position:     P4  if s and exchange(consumer_sleeping, 0):
//          clear consumer_sleeping, read             consumer_bell += 1; FUTEX_WAKE
//   C5  FUTEX_WAIT(consumer_bell, v, timeout)
//
// The two seq_cst fences order C2 before C4 and P1 before P3 in one total order, so either C4
// sees the new tail (C does not sleep) or P3 sees consumer_sleeping = 1 (P rings). If P rings
// between C1 and C5, consumer_bell is no longer v and FUTEX_WAIT returns at once; if it rings
// after C5 started, FUTEX_WAKE wakes it. The exchange makes one wake-up per sleep: a producer
// committing many batches to a sleeping consumer pays one syscall, and none while it is awake.
// The timeout (<= 50 ms, or 1 s once the peer's exit is watched, below) bounds the damage of
// any bug here and paces the liveness checks.
// Taking an announcement back, when a JS reader starts polling again (the binding's
// disarm()): with the pipe doorbell the reader itself announced, so it stores
// consumer_sleeping = 0 and the producer stops paying for wake-ups; a byte already written only
// makes the reader look at the ring once more. With the futex doorbell only the arm is taken
// back (Doorbell::disarm): the thread may be asleep in C5, and clearing its flag would leave a
// later arm unheard until the timeout, so the flag stays and the producer's next commit wakes
// the thread, which finds itself disarmed and parks. A later sleep announces again from C1.
// Space for a producer uses the same handshake mirrored: producer_waiting, producer_bell, the
// consumer ringing after it releases.
//
// Liveness: the peer's exit is watched by one thread per process (doorbell.cc ExitWatcher)
// sleeping on a pidfd per peer, which wakes the Doorbell thread as soon as the kernel reports
// the exit; the thread then checks the peer's identity (shm.h is_alive) and reports kPeerDead
// once, then stops. So an idle ring end costs no wake-ups for liveness: it checks every second
// only as a backstop. Until the peer has attached, and where pidfds are unavailable, it checks
// at every timeout instead (at most liveness_ms, 50 by default). A peer that closed
// is not dead: its closed flag makes the end "ready", and the next read or write returns
// kPeerClosed.
//
// Threads: the Doorbell thread reads the shared positions and flags and writes the bell words;
// it calls `callback` from its own thread and never touches JavaScript (the binding's callback
// posts to a threadsafe function). arm(), stop() and join() are called by the owning JS
// thread. Ownership: the Doorbell keeps the ring memory mapped (a RingMemory copy) until it is
// destroyed.

#ifndef DISCO_NATIVE_DOORBELL_H_
#define DISCO_NATIVE_DOORBELL_H_

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "ring.h"
#include "status.h"

namespace disco {

/// FUTEX_WAKE of up to `count` waiters on a word in shared memory.
void futex_wake_shared(std::atomic<uint32_t>* word, int count) noexcept;

/// FUTEX_WAIT on a word in shared memory while it holds `expected`, at most `timeout_ns`.
/// Returns when woken, on timeout, at once when the word differs, or on a signal.
void futex_wait_shared(std::atomic<uint32_t>* word, uint32_t expected,
                       uint64_t timeout_ns) noexcept;

/// "/dev/shm/<ring_name>.bell": the FIFO of a pipe doorbell.
[[nodiscard]] std::string pipe_bell_path(std::string_view ring_name);

/// Makes the FIFO of ring `ring_name` (mode 0600) and opens it read-write and non-blocking:
/// read-write so that the reader never sees end-of-file while no producer has it open, and so
/// that a producer's non-blocking open for writing succeeds. An existing FIFO (from a consumer
/// that died) is replaced. kBadName, kSystemError with `*err`.
[[nodiscard]] Status create_pipe_bell(std::string_view ring_name, int* fd, int* err) noexcept;

/// Unlinks the FIFO of ring `ring_name`, if any.
void remove_pipe_bell(std::string_view ring_name) noexcept;

/// What a Doorbell reports.
enum class DoorbellEvent : int32_t {
  /// The armed condition holds: records to read (consumer), space to write (producer), or the
  /// peer closed its end.
  kReady = 0,
  /// The peer's process is gone; reported once, then the thread stops.
  kPeerDead = 1,
};

struct DoorbellOptions {
  /// Peer liveness is checked at least this often, and no futex wait is longer, while the
  /// peer's exit is not watched (peer not attached yet, or no pidfds); 1 s once it is.
  uint32_t liveness_ms = 50;
  /// False: the thread only watches liveness (the pipe doorbell wakes JS for data).
  bool watch_data = true;
};

/// The waiting thread of one ring end. See the top of this file.
class Doorbell {
 public:
  enum class Side { kConsumer, kProducer };
  /// Called on the Doorbell thread. Must not block for long and must not call into the
  /// Doorbell except through thread-safe members (none is needed: arm() comes from JS).
  using Callback = void (*)(void* context, DoorbellEvent event);

  Doorbell(RingMemory memory, Side side, const DoorbellOptions& options, Callback callback,
           void* context) noexcept;
  /// Stops and joins the thread if it still runs.
  ~Doorbell();
  Doorbell(const Doorbell&) = delete;
  Doorbell& operator=(const Doorbell&) = delete;
  Doorbell(Doorbell&&) = delete;
  Doorbell& operator=(Doorbell&&) = delete;

  /// Starts the thread. kSystemError (with `*err`) when the system refuses one.
  [[nodiscard]] Status start(int* err) noexcept;

  /// Asks for one kReady: consumer side, when the producer commits past `position` (the
  /// consumer's read position) or closes; producer side, when at least `want` bytes are free
  /// behind `position` (the producer's tail) or the consumer closes. Fires at once if that
  /// already holds. One arm, at most one kReady.
  void arm(uint64_t position, uint64_t want) noexcept;

  /// Takes back an arm() that has not fired: no kReady for it unless one is already on its
  /// way. The thread, if asleep, stays asleep until its timeout or the next wake-up.
  void disarm() noexcept;

  /// Asks the thread to exit; returns at once.
  void stop() noexcept;

  /// Waits for the thread to exit (call stop() first). Idempotent.
  void join() noexcept;

  [[nodiscard]] bool is_running() const noexcept { return started_ && !joined_; }

 private:
  static void* thread_main(void* self) noexcept;
  void run() noexcept;
  [[nodiscard]] bool ready() const noexcept;
  [[nodiscard]] bool peer_alive() const noexcept;
  /// Has the process-wide exit watcher watch the peer; false when it does not.
  [[nodiscard]] bool watch_peer() noexcept;
  /// Ends every exit watch naming this Doorbell: no callback reaches it once this returns.
  void forget_peer() noexcept;
  /// The exit watcher's callback (its thread): flags the exit and wakes this thread.
  static void on_peer_exit(void* self) noexcept;
  [[nodiscard]] bool announce_sleep() const noexcept;
  void end_sleep() const noexcept;
  void park(uint64_t timeout_ns) noexcept;
  void fire() noexcept;
  [[nodiscard]] std::atomic<uint32_t>* bell() const noexcept;

  const RingMemory memory_;
  const Side side_;
  const DoorbellOptions options_;
  const Callback callback_;
  void* const context_;
  pthread_t thread_{};
  bool started_ = false;
  bool joined_ = false;
  // Process-local words; armed_ and parked_ form the same handshake as the shared ones.
  std::atomic<uint32_t> armed_{0};  // 0 idle, 1 armed, 2 stopping, 3 poked by on_peer_exit
  std::atomic<uint32_t> parked_{0};
  std::atomic<bool> peer_exited_{false};  // set by on_peer_exit, taken by the thread
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> position_{0};
  std::atomic<uint64_t> want_{0};
};

}  // namespace disco

#endif  // DISCO_NATIVE_DOORBELL_H_
