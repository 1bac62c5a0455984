// Doorbells destroyed while the process-wide exit watcher may be reporting their peers' exits:
// once a Doorbell is gone, no watch may name it. Each round forks a peer that exits after a
// random delay, points a heap ring's producer identity at it, runs a consumer Doorbell for
// another random delay and destroys it, so peer exits land before, during and after a
// Doorbell's stop. A watch that outlives its Doorbell makes the watcher write into freed memory,
// which the AddressSanitizer build (scripts/native-sanitize.sh) reports.
//
// Usage: exitwatch_stress_test [threads] [rounds per thread]

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "check.h"
#include "doorbell.h"
#include "ring.h"
#include "ring_support.h"
#include "shm.h"

namespace {

using disco::Doorbell;
using disco::DoorbellEvent;
using disco::Status;

constexpr unsigned kMaxDelayUs = 3000;

void ignore_event(void*, DoorbellEvent) {}

void rounds_of_one_thread(unsigned seed, int rounds) {
  std::mt19937 rng(seed);
  for (int r = 0; r < rounds; ++r) {
    auto ring = std::make_unique<disco::test::HeapRing>(1 << 16);
    const unsigned peer_lives_us = rng() % kMaxDelayUs;
    const pid_t peer = ::fork();
    if (peer == 0) {
      // Only async-signal-safe calls in the child of a multi-threaded process.
      ::usleep(peer_lives_us);
      ::_exit(0);
    }
    CHECK(peer > 0);
    char state = 0;
    uint64_t ticks = 0;
    // The peer is not reaped before waitpid below, so its stat stays readable even after it
    // exits (a zombie, which the Doorbell finds dead: it then reports and stops on its own).
    if (disco::read_process_stat(static_cast<uint32_t>(peer), &state, &ticks)) {
      ring->memory().header->producer.store(
          disco::pack_identity(static_cast<uint32_t>(peer), ticks), std::memory_order_release);
    }
    disco::DoorbellOptions options;
    options.liveness_ms = 1 + rng() % 3;
    auto bell = std::make_unique<Doorbell>(ring->memory(), Doorbell::Side::kConsumer, options,
                                           &ignore_event, nullptr);
    int err = 0;
    CHECK_EQ(bell->start(&err), Status::kOk);
    bell->arm(0, 0);
    ::usleep(rng() % kMaxDelayUs);
    bell.reset();
    ring.reset();
    CHECK_EQ(::waitpid(peer, nullptr, 0), peer);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 4;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 100;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back(rounds_of_one_thread, 7919u * static_cast<unsigned>(t) + 1u, rounds);
  }
  for (auto& t : pool) t.join();
  return disco::test::check_exit_code();
}
