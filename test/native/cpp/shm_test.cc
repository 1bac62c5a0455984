// Segments in /dev/shm and process identities: names, creation and opening checks, the
// /proc/<pid>/stat parser, liveness and stale-segment cleanup.

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "check.h"
#include "ring.h"
#include "ring_support.h"
#include "shm.h"

namespace {

using disco::Status;
using disco::test::unique_name;

bool exists(const std::string& name) {
  struct stat st;
  return ::stat((std::string("/dev/shm/") + name).c_str(), &st) == 0;
}

/// The identity of a child that has exited and been reaped: a process that is surely dead.
uint64_t dead_identity() {
  const pid_t child = ::fork();
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  char state = 0;
  uint64_t start = 0;
  // The child exists until reaped; read its identity first.
  while (!disco::read_process_stat(static_cast<uint32_t>(child), &state, &start)) {
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  return disco::pack_identity(static_cast<uint32_t>(child), start);
}

void validates_names() {
  CHECK_EQ(disco::validate_segment_name("disco.c1.0-1"), Status::kOk);
  CHECK_EQ(disco::validate_segment_name("A-z_0.9"), Status::kOk);
  CHECK_EQ(disco::validate_segment_name(std::string(200, 'a')), Status::kOk);
  CHECK_EQ(disco::validate_segment_name(std::string(201, 'a')), Status::kBadName);
  CHECK_EQ(disco::validate_segment_name(""), Status::kBadName);
  CHECK_EQ(disco::validate_segment_name("."), Status::kBadName);
  CHECK_EQ(disco::validate_segment_name(".."), Status::kBadName);
  CHECK_EQ(disco::validate_segment_name(".hidden"), Status::kBadName);
  for (const char* bad : {"a/b", "a b", "a\\b", "ä", "a\nb", "a:b", "a*"}) {
    CHECK_EQ(disco::validate_segment_name(bad), Status::kBadName);
  }
  int err = 0;
  CHECK_EQ(disco::create_ring("../etc/passwd", 65536, &err), Status::kBadName);
  CHECK_EQ(disco::unlink_segment("a/b", &err), Status::kBadName);
}

void creates_opens_and_unlinks_a_ring_segment() {
  const std::string name = unique_name("create");
  int err = 0;
  CHECK_EQ(disco::create_ring(name, 1 << 16, &err), Status::kOk);
  CHECK(exists(name));
  struct stat st;
  CHECK_EQ(::stat((std::string("/dev/shm/") + name).c_str(), &st), 0);
  CHECK_EQ(st.st_mode & 0777, 0600u);
  CHECK_EQ(static_cast<uint64_t>(st.st_size), uint64_t{disco::kRingHeaderBytes} + (1 << 16));
  CHECK_EQ(disco::create_ring(name, 1 << 16, &err), Status::kSegmentExists);

  disco::RingMemory memory;
  CHECK_EQ(disco::open_ring_memory(name, &memory, &err), Status::kOk);
  CHECK_EQ(memory.capacity, uint64_t{1} << 16);
  CHECK_EQ(memory.header->prefix.creator, disco::self_identity());
  CHECK_EQ(memory.header->prefix.magic.load(), disco::kRingMagic);

  CHECK_EQ(disco::unlink_segment(name, &err), Status::kOk);
  CHECK(!exists(name));
  CHECK_EQ(disco::unlink_segment(name, &err), Status::kSegmentNotFound);
  // The mapping outlives the name.
  memory.data[0] = 1;
  CHECK_EQ(disco::open_ring_memory(name, &memory, &err), Status::kSegmentNotFound);
}

void refuses_capacities_out_of_range() {
  int err = 0;
  const std::string name = unique_name("capacity");
  for (uint64_t bad : {uint64_t{0}, uint64_t{4096}, uint64_t{65535}, uint64_t{65536 + 8},
                       uint64_t{3} << 20, (uint64_t{8} << 30)}) {
    CHECK_EQ(disco::create_ring(name, bad, &err), Status::kInvalidArgument);
  }
  CHECK(!exists(name));
  CHECK(disco::valid_ring_capacity(uint64_t{4} << 30));
  CHECK(disco::valid_ring_capacity(uint64_t{64} << 10));
}

/// Writes `bytes` at `offset` of segment `name` through a second mapping.
void scribble(const std::string& name, size_t offset, const void* bytes, size_t n) {
  const int fd = ::shm_open(("/" + name).c_str(), O_RDWR, 0);
  CHECK(fd >= 0);
  CHECK_EQ(::pwrite(fd, bytes, n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
  ::close(fd);
}

void refuses_segments_whose_prefix_disagrees() {
  int err = 0;
  disco::RingMemory memory;
  const std::string name = unique_name("prefix");

  CHECK_EQ(disco::create_ring(name, 1 << 16, &err), Status::kOk);
  const uint64_t zero = 0;
  scribble(name, 0, &zero, 8);  // a creator that has not written its magic yet
  CHECK_EQ(disco::open_ring_memory(name, &memory, &err), Status::kBadSegment);
  CHECK_EQ(disco::unlink_segment(name, &err), Status::kOk);

  CHECK_EQ(disco::create_ring(name, 1 << 16, &err), Status::kOk);
  const uint32_t version = disco::kRingLayoutVersion + 1;
  scribble(name, 8, &version, 4);
  CHECK_EQ(disco::open_ring_memory(name, &memory, &err), Status::kBadSegment);
  CHECK_EQ(disco::unlink_segment(name, &err), Status::kOk);

  CHECK_EQ(disco::create_ring(name, 1 << 16, &err), Status::kOk);
  const uint64_t capacity = 1 << 17;  // valid, but the file is smaller
  scribble(name, 16, &capacity, 8);
  CHECK_EQ(disco::open_ring_memory(name, &memory, &err), Status::kBadSegment);
  CHECK_EQ(disco::unlink_segment(name, &err), Status::kOk);

  CHECK_EQ(disco::create_ring(name, 1 << 16, &err), Status::kOk);
  const uint32_t header_bytes = 8192;
  scribble(name, 12, &header_bytes, 4);
  CHECK_EQ(disco::open_ring_memory(name, &memory, &err), Status::kBadSegment);
  CHECK_EQ(disco::unlink_segment(name, &err), Status::kOk);

  // A file shorter than the header, e.g. a foreign one.
  const int fd = ::shm_open(("/" + name).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  CHECK(fd >= 0);
  CHECK_EQ(::ftruncate(fd, 100), 0);
  ::close(fd);
  CHECK_EQ(disco::open_ring_memory(name, &memory, &err), Status::kBadSegment);
  CHECK_EQ(disco::unlink_segment(name, &err), Status::kOk);

  CHECK_EQ(disco::open_ring_memory(name, &memory, &err), Status::kSegmentNotFound);
}

void parses_proc_stat_with_hostile_command_names() {
  char state = 0;
  uint64_t start = 0;
  // Fields 3.. after the last ')': state, then 18 more before the start time (field 22).
  const std::string tail = " S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 99 100\n";
  CHECK(disco::parse_process_stat("123 (node)" + tail, &state, &start));
  CHECK_EQ(state, 'S');
  CHECK_EQ(start, uint64_t{424242});
  CHECK(disco::parse_process_stat("123 (a) (b) R 9 9 9)" + tail, &state, &start));
  CHECK_EQ(start, uint64_t{424242});
  CHECK(disco::parse_process_stat("7 ( ) Z ))" + tail, &state, &start));
  CHECK_EQ(state, 'S');
  CHECK(!disco::parse_process_stat("123 node S 1 2", &state, &start));
  CHECK(!disco::parse_process_stat("123 (node) S 1 2 3", &state, &start));
  CHECK(!disco::parse_process_stat("", &state, &start));
  CHECK(!disco::parse_process_stat("1 (x) SS 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 5",
                                   &state, &start));
  CHECK(!disco::parse_process_stat("1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 5x",
                                   &state, &start));
}

void tells_live_processes_from_dead_ones() {
  const uint64_t self = disco::self_identity();
  CHECK(self != 0);
  CHECK_EQ(disco::identity_pid(self), static_cast<uint32_t>(::getpid()));
  CHECK(disco::is_alive(self));
  CHECK(!disco::is_alive(0));
  // Same pid, another start time: a reused pid is not the process we knew.
  CHECK(!disco::is_alive(
      disco::pack_identity(disco::identity_pid(self), disco::identity_start_ticks(self) + 1)));
  CHECK(!disco::is_alive(dead_identity()));
  // pid 1 runs (as another user or not): EPERM counts as alive.
  char state = 0;
  uint64_t start = 0;
  if (disco::read_process_stat(1, &state, &start)) {
    CHECK(disco::is_alive(disco::pack_identity(1, start)));
  }
  CHECK_EQ(disco::pack_identity(0, 5), uint64_t{0});
  CHECK_EQ(disco::pack_identity(1u << 22, 5), uint64_t{0});
  CHECK_EQ(disco::pack_identity(5, uint64_t{1} << 42), uint64_t{0});
}

void counts_a_zombie_as_dead() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  char state = 0;
  uint64_t start = 0;
  // Until reaped the child is a zombie whose /proc entry stays.
  for (int i = 0;
       i < 100000 &&
       !(disco::read_process_stat(static_cast<uint32_t>(child), &state, &start) && state == 'Z');
       ++i) {
    ::usleep(100);
  }
  CHECK_EQ(state, 'Z');
  CHECK(!disco::is_alive(disco::pack_identity(static_cast<uint32_t>(child), start)));
  ::waitpid(child, nullptr, 0);
}

void removes_stale_segments_of_dead_creators_only() {
  int err = 0;
  const std::string prefix = unique_name("stale") + ".";
  const std::string live = prefix + "live";
  const std::string dead = prefix + "dead";
  const std::string unfinished = prefix + "unfinished";
  const std::string foreign = prefix + "foreign";
  const std::string other_cluster = unique_name("stale-other");
  CHECK_EQ(disco::create_ring(live, 1 << 16, &err), Status::kOk);
  CHECK_EQ(disco::create_ring(dead, 1 << 16, &err), Status::kOk);
  CHECK_EQ(disco::create_ring(unfinished, 1 << 16, &err), Status::kOk);
  CHECK_EQ(disco::create_ring(other_cluster, 1 << 16, &err), Status::kOk);
  const uint64_t corpse = dead_identity();
  scribble(dead, 24, &corpse, 8);
  scribble(other_cluster, 24, &corpse, 8);
  const uint64_t zero = 0;
  scribble(unfinished, 0, &zero, 8);
  scribble(unfinished, 24, &corpse, 8);
  const int fd = ::shm_open(("/" + foreign).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  CHECK(fd >= 0);
  const uint64_t not_ours[4] = {0x1234, 1, 2, corpse};
  CHECK_EQ(::write(fd, not_ours, sizeof(not_ours)), static_cast<ssize_t>(sizeof(not_ours)));
  ::close(fd);
  // A pipe doorbell whose ring is gone, and one whose ring lives.
  CHECK_EQ(::mkfifo(("/dev/shm/" + prefix + "gone.bell").c_str(), 0600), 0);
  CHECK_EQ(::mkfifo(("/dev/shm/" + live + ".bell").c_str(), 0600), 0);

  uint32_t removed = 0;
  CHECK_EQ(disco::remove_stale_segments(prefix, disco::kRingMagic, &removed, &err), Status::kOk);
  CHECK_EQ(removed, 3u);
  CHECK(exists(live));
  CHECK(exists(live + ".bell"));
  CHECK(!exists(dead));
  CHECK(!exists(unfinished));
  CHECK(!exists(prefix + "gone.bell"));
  CHECK(exists(foreign));
  CHECK(exists(other_cluster));
  CHECK_EQ(disco::remove_stale_segments("bad/prefix", disco::kRingMagic, &removed, &err),
           Status::kBadName);

  CHECK_EQ(disco::unlink_segment(live, &err), Status::kOk);
  CHECK(!exists(live + ".bell"));
  CHECK_EQ(disco::unlink_segment(foreign, &err), Status::kOk);
  CHECK_EQ(disco::unlink_segment(other_cluster, &err), Status::kOk);
}

void claims_each_end_once() {
  const std::string name = unique_name("roles");
  int err = 0;
  CHECK_EQ(disco::create_ring(name, 1 << 16, &err), Status::kOk);
  std::unique_ptr<disco::RingProducer> producer;
  std::unique_ptr<disco::RingConsumer> consumer;
  CHECK_EQ(disco::RingProducer::open(name, &producer, &err), Status::kOk);
  CHECK_EQ(disco::RingConsumer::open(name, disco::BellKind::kFutex, &consumer, &err), Status::kOk);
  std::unique_ptr<disco::RingProducer> second_producer;
  std::unique_ptr<disco::RingConsumer> second_consumer;
  CHECK_EQ(disco::RingProducer::open(name, &second_producer, &err), Status::kRoleTaken);
  CHECK_EQ(disco::RingConsumer::open(name, disco::BellKind::kFutex, &second_consumer, &err),
           Status::kRoleTaken);
  producer->close();
  CHECK_EQ(disco::RingProducer::open(name, &second_producer, &err), Status::kPeerClosed);
  CHECK_EQ(disco::unlink_segment(name, &err), Status::kOk);

  // An end held by a process that died stays abandoned.
  CHECK_EQ(disco::create_ring(name, 1 << 16, &err), Status::kOk);
  const uint64_t corpse = dead_identity();
  scribble(name, offsetof(disco::RingHeader, producer), &corpse, 8);
  scribble(name, offsetof(disco::RingHeader, consumer), &corpse, 8);
  CHECK_EQ(disco::RingProducer::open(name, &second_producer, &err), Status::kRoleAbandoned);
  CHECK_EQ(disco::RingConsumer::open(name, disco::BellKind::kFutex, &second_consumer, &err),
           Status::kRoleAbandoned);
  CHECK_EQ(disco::unlink_segment(name, &err), Status::kOk);
}

}  // namespace

int main() {
  validates_names();
  creates_opens_and_unlinks_a_ring_segment();
  refuses_capacities_out_of_range();
  refuses_segments_whose_prefix_disagrees();
  parses_proc_stat_with_hostile_command_names();
  tells_live_processes_from_dead_ones();
  counts_a_zombie_as_dead();
  removes_stale_segments_of_dead_creators_only();
  claims_each_end_once();
  return disco::test::check_exit_code();
}
