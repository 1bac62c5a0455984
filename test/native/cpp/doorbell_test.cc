// Doorbells: a sleeping consumer thread is woken for every burst (no lost wake-ups, a deadline
// on each), a consumer that took an arm back is still woken once it arms again, a producer
// waiting for space is woken by a release, the pipe doorbell's byte, and a killed peer reported
// as dead.

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "check.h"
#include "doorbell.h"
#include "ring.h"
#include "ring_support.h"

namespace {

using disco::Doorbell;
using disco::DoorbellEvent;
using disco::RecordBatch;
using disco::RecordSpan;
using disco::RingConsumer;
using disco::RingProducer;
using disco::Status;
using disco::test::frame_with;
using disco::test::HeapRing;

constexpr auto kDeadline = std::chrono::seconds(5);

/// Collects doorbell events for a test thread to wait on.
struct Events {
  std::mutex mutex;
  std::condition_variable cv;
  int ready = 0;
  int dead = 0;

  static void on_event(void* self, DoorbellEvent event) {
    auto* e = static_cast<Events*>(self);
    std::lock_guard<std::mutex> lock(e->mutex);
    (event == DoorbellEvent::kReady ? e->ready : e->dead)++;
    e->cv.notify_all();
  }

  int ready_count() {
    std::lock_guard<std::mutex> lock(mutex);
    return ready;
  }

  /// Waits until `counter` exceeds `seen`; false on deadline.
  bool wait_past(const int& counter, int seen) {
    std::unique_lock<std::mutex> lock(mutex);
    return cv.wait_for(lock, kDeadline, [&] { return counter > seen; });
  }
};

void wakes_a_sleeping_consumer_for_every_burst() {
  HeapRing ring(1 << 16);
  std::unique_ptr<RingProducer> producer;
  std::unique_ptr<RingConsumer> consumer;
  CHECK_EQ(RingProducer::attach(ring.memory(), "", &producer), Status::kOk);
  CHECK_EQ(RingConsumer::attach(ring.memory(), disco::BellKind::kFutex, &consumer), Status::kOk);
  Events events;
  disco::DoorbellOptions options;
  Doorbell bell(ring.memory(), Doorbell::Side::kConsumer, options, &Events::on_event, &events);
  int err = 0;
  CHECK_EQ(bell.start(&err), Status::kOk);

  constexpr int kBursts = 300;
  std::thread writer([&] {
    for (int burst = 0; burst < kBursts; ++burst) {
      // Vary the gap so that some bursts land while the consumer is awake and some while it
      // sleeps or is about to.
      std::this_thread::sleep_for(std::chrono::microseconds((burst * 37) % 400));
      for (int i = 0; i < 1 + burst % 3; ++i) {
        const auto f = frame_with(static_cast<uint64_t>(burst) + 1, 32);
        while (producer->write_frame(f.data(), f.size()) == Status::kRingFull) {
          std::this_thread::yield();
        }
      }
    }
  });
  int records = 0;
  int expected = 0;
  for (int burst = 0; burst < kBursts; ++burst) expected += 1 + burst % 3;
  int seen = 0;
  while (records < expected) {
    bell.arm(consumer->read_position(), 0);
    if (!events.wait_past(events.ready, seen)) break;  // a lost wake-up
    seen = events.ready_count();
    RecordSpan spans[16];
    RecordBatch batch;
    while (consumer->read_batch(16, SIZE_MAX, spans, &batch) == Status::kOk) {
      records += static_cast<int>(batch.count);
      CHECK_EQ(consumer->release(batch), Status::kOk);
    }
  }
  writer.join();
  CHECK_EQ(records, expected);
  bell.stop();
  bell.join();
  CHECK_EQ(events.dead, 0);  // joined: no more writers
}

// A JS reader that starts polling takes its arm back while the thread sleeps on the futex; the
// producer's next commit wakes the thread, which must park, and the next arm must still be heard
// long before the futex timeout (10 s here, past the deadline).
void wakes_a_consumer_that_disarmed_and_armed_again() {
  HeapRing ring(1 << 16);
  std::unique_ptr<RingProducer> producer;
  std::unique_ptr<RingConsumer> consumer;
  CHECK_EQ(RingProducer::attach(ring.memory(), "", &producer), Status::kOk);
  CHECK_EQ(RingConsumer::attach(ring.memory(), disco::BellKind::kFutex, &consumer), Status::kOk);
  Events events;
  disco::DoorbellOptions options;
  options.liveness_ms = 10'000;
  Doorbell bell(ring.memory(), Doorbell::Side::kConsumer, options, &Events::on_event, &events);
  int err = 0;
  CHECK_EQ(bell.start(&err), Status::kOk);
  for (int round = 0; round < 20; ++round) {
    bell.arm(consumer->read_position(), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(round % 2 == 0 ? 5 : 0));
    bell.disarm();
    const int seen = events.ready_count();
    // Written while disarmed: read by "polling", without a wake-up being needed.
    const auto f = frame_with(static_cast<uint64_t>(round) + 1, 32);
    CHECK_EQ(producer->write_frame(f.data(), f.size()), Status::kOk);
    RecordSpan spans[4];
    RecordBatch batch;
    CHECK_EQ(consumer->read_batch(4, SIZE_MAX, spans, &batch), Status::kOk);
    CHECK_EQ(consumer->release(batch), Status::kOk);
    // Asleep again (or about to be), armed: the next record must wake it.
    bell.arm(consumer->read_position(), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(round % 3 == 0 ? 5 : 0));
    CHECK_EQ(producer->write_frame(f.data(), f.size()), Status::kOk);
    CHECK(events.wait_past(events.ready, seen));
    CHECK_EQ(consumer->read_batch(4, SIZE_MAX, spans, &batch), Status::kOk);
    CHECK_EQ(consumer->release(batch), Status::kOk);
  }
  bell.stop();
  bell.join();
}

void wakes_a_producer_when_space_frees() {
  HeapRing ring(1 << 16);
  std::unique_ptr<RingProducer> producer;
  std::unique_ptr<RingConsumer> consumer;
  CHECK_EQ(RingProducer::attach(ring.memory(), "", &producer), Status::kOk);
  CHECK_EQ(RingConsumer::attach(ring.memory(), disco::BellKind::kFutex, &consumer), Status::kOk);
  const auto f = frame_with(1, 4000);
  while (producer->write_frame(f.data(), f.size()) == Status::kOk) {
  }
  Events events;
  disco::DoorbellOptions options;
  Doorbell bell(ring.memory(), Doorbell::Side::kProducer, options, &Events::on_event, &events);
  int err = 0;
  CHECK_EQ(bell.start(&err), Status::kOk);
  bell.arm(producer->tail(), disco::align_record(16 + f.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK_EQ(events.ready_count(), 0);  // still full
  std::thread reader([&] {
    RecordSpan spans[1];
    RecordBatch batch;
    CHECK_EQ(consumer->read_batch(1, SIZE_MAX, spans, &batch), Status::kOk);
    CHECK_EQ(consumer->release(batch), Status::kOk);
  });
  CHECK(events.wait_past(events.ready, 0));
  reader.join();
  CHECK_EQ(producer->write_frame(f.data(), f.size()), Status::kOk);
}

void rings_the_pipe_of_a_sleeping_pipe_consumer() {
  const std::string name = disco::test::unique_name("pipe");
  int err = 0;
  CHECK_EQ(disco::create_ring(name, 1 << 16, &err), Status::kOk);
  int fd = -1;
  CHECK_EQ(disco::create_pipe_bell(name, &fd, &err), Status::kOk);
  std::unique_ptr<RingProducer> producer;
  std::unique_ptr<RingConsumer> consumer;
  CHECK_EQ(RingConsumer::open(name, disco::BellKind::kPipe, &consumer, &err), Status::kOk);
  CHECK_EQ(RingProducer::open(name, &producer, &err), Status::kOk);
  const auto f = frame_with(1, 8);
  uint8_t byte = 0;
  // Awake consumer: no byte.
  CHECK_EQ(producer->write_frame(f.data(), f.size()), Status::kOk);
  CHECK_EQ(::read(fd, &byte, 1), -1);
  // After it announced its sleep, one byte per sleep however many commits.
  RecordSpan spans[4];
  RecordBatch batch;
  CHECK_EQ(consumer->read_batch(4, SIZE_MAX, spans, &batch), Status::kOk);
  CHECK_EQ(consumer->release(batch), Status::kOk);
  CHECK(disco::announce_consumer_sleep(consumer->memory().header, consumer->read_position()));
  CHECK_EQ(producer->write_frame(f.data(), f.size()), Status::kOk);
  CHECK_EQ(producer->write_frame(f.data(), f.size()), Status::kOk);
  CHECK_EQ(::read(fd, &byte, 1), 1);
  CHECK_EQ(::read(fd, &byte, 1), -1);
  ::close(fd);
  CHECK_EQ(disco::unlink_segment(name, &err), Status::kOk);
  struct stat st;
  CHECK(::stat(disco::pipe_bell_path(name).c_str(), &st) != 0);
}

void reports_a_killed_producer_as_dead() {
  // With a liveness poll of a minute, only the process-wide exit watcher (a pidfd per peer)
  // can report the death before the deadline: an idle end does not poll to find it.
  struct Case {
    bool watch_data;
    uint32_t liveness_ms;
  };
  for (const Case k : {Case{true, 50}, Case{false, 50}, Case{true, 60'000}, Case{false, 60'000}}) {
    const bool watch_data = k.watch_data;
    const std::string name = disco::test::unique_name("dead");
    int err = 0;
    CHECK_EQ(disco::create_ring(name, 1 << 16, &err), Status::kOk);
    std::unique_ptr<RingConsumer> consumer;
    CHECK_EQ(RingConsumer::open(name, disco::BellKind::kFutex, &consumer, &err), Status::kOk);
    int ready_pipe[2];
    CHECK_EQ(::pipe(ready_pipe), 0);
    const pid_t child = ::fork();
    if (child == 0) {
      std::unique_ptr<RingProducer> producer;
      int child_err = 0;
      const bool ok = RingProducer::open(name, &producer, &child_err) == Status::kOk;
      const char c = ok ? 'y' : 'n';
      (void)!::write(ready_pipe[1], &c, 1);
      ::pause();
      ::_exit(0);
    }
    char c = 0;
    CHECK_EQ(::read(ready_pipe[0], &c, 1), 1);
    CHECK_EQ(c, 'y');
    Events events;
    disco::DoorbellOptions options;
    options.watch_data = watch_data;
    options.liveness_ms = k.liveness_ms;
    Doorbell bell(consumer->memory(), Doorbell::Side::kConsumer, options, &Events::on_event,
                  &events);
    CHECK_EQ(bell.start(&err), Status::kOk);
    bell.arm(consumer->read_position(), 0);
    CHECK_EQ(consumer->check_producer(), Status::kOk);
    const auto killed = std::chrono::steady_clock::now();
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    CHECK(events.wait_past(events.dead, 0));
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - killed)
                        .count();
    std::printf("peer death reported after %lld ms (watch_data=%d, liveness_ms=%u)\n",
                static_cast<long long>(ms), watch_data ? 1 : 0, k.liveness_ms);
    CHECK_EQ(consumer->check_producer(), Status::kPeerDead);
    bell.join();  // the thread ends by itself after reporting
    ::close(ready_pipe[0]);
    ::close(ready_pipe[1]);
    CHECK_EQ(disco::unlink_segment(name, &err), Status::kOk);
  }
}

void stops_promptly_while_asleep() {
  HeapRing ring(1 << 16);
  Events events;
  disco::DoorbellOptions options;
  options.liveness_ms = 10'000;  // the futex timeout is far away: stop() must wake it
  Doorbell bell(ring.memory(), Doorbell::Side::kConsumer, options, &Events::on_event, &events);
  int err = 0;
  CHECK_EQ(bell.start(&err), Status::kOk);
  bell.arm(0, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const auto start = std::chrono::steady_clock::now();
  bell.stop();
  bell.join();
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
  bell.join();  // idempotent
}

}  // namespace

int main() {
  wakes_a_sleeping_consumer_for_every_burst();
  wakes_a_consumer_that_disarmed_and_armed_again();
  wakes_a_producer_when_space_frees();
  rings_the_pipe_of_a_sleeping_pipe_consumer();
  reports_a_killed_producer_as_dead();
  stops_promptly_while_asleep();
  return disco::test::check_exit_code();
}
