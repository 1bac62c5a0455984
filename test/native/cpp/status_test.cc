// The status list: dense, uniquely named, and safe for values that are not in it.

#include <set>
#include <string>

#include "check.h"
#include "status.h"

namespace {

using disco::Status;

void names_every_status_uniquely() {
  std::set<std::string> names;
  for (int32_t v = 0; v < disco::kStatusCount; ++v) {
    const auto s = static_cast<Status>(v);
    const std::string name = disco::status_name(s);
    CHECK(name != "UNKNOWN");
    CHECK(!std::string(disco::status_message(s)).empty());
    CHECK(names.insert(name).second);
    CHECK(disco::is_known_status(v));
  }
  CHECK_EQ(names.size(), static_cast<size_t>(disco::kStatusCount));
}

void keeps_the_released_numbers() {
  CHECK_EQ(static_cast<int32_t>(Status::kOk), 0);
  CHECK_EQ(static_cast<int32_t>(Status::kTooShort), 1);
  CHECK_EQ(static_cast<int32_t>(Status::kBadLength), 2);
  CHECK_EQ(static_cast<int32_t>(Status::kBadMagic), 3);
  CHECK_EQ(static_cast<int32_t>(Status::kChecksumMismatch), 4);
  CHECK_EQ(static_cast<int32_t>(Status::kBadIdentifier), 5);
  CHECK_EQ(static_cast<int32_t>(Status::kVerifyFailed), 6);
  CHECK_EQ(static_cast<int32_t>(Status::kTooLarge), 7);
  CHECK_EQ(static_cast<int32_t>(Status::kBadAlignment), 8);
  CHECK_EQ(static_cast<int32_t>(Status::kInvalidArgument), 9);
  CHECK_EQ(static_cast<int32_t>(Status::kRingFull), 10);
  CHECK_EQ(static_cast<int32_t>(Status::kRingEmpty), 11);
  CHECK_EQ(static_cast<int32_t>(Status::kCorruptRecord), 12);
  CHECK_EQ(static_cast<int32_t>(Status::kPeerDead), 13);
  CHECK_EQ(static_cast<int32_t>(Status::kPeerClosed), 14);
  CHECK_EQ(static_cast<int32_t>(Status::kSegmentExists), 15);
  CHECK_EQ(static_cast<int32_t>(Status::kSegmentNotFound), 16);
  CHECK_EQ(static_cast<int32_t>(Status::kBadSegment), 17);
  CHECK_EQ(static_cast<int32_t>(Status::kBadName), 18);
  CHECK_EQ(static_cast<int32_t>(Status::kRoleTaken), 19);
  CHECK_EQ(static_cast<int32_t>(Status::kRoleAbandoned), 20);
  CHECK_EQ(static_cast<int32_t>(Status::kSystemError), 21);
  CHECK_EQ(static_cast<int32_t>(Status::kBadBatch), 22);
  CHECK_EQ(static_cast<int32_t>(Status::kOutputTooSmall), 23);
  CHECK_EQ(static_cast<int32_t>(Status::kWritePending), 24);
  CHECK_EQ(static_cast<int32_t>(Status::kNoMemory), 25);
  CHECK_EQ(static_cast<int32_t>(Status::kBoundExceeded), 26);
  CHECK_EQ(static_cast<int32_t>(Status::kClosed), 27);
  CHECK_EQ(std::string(disco::status_name(Status::kChecksumMismatch)), "CHECKSUM_MISMATCH");
}

void answers_unknown_for_values_outside_the_list() {
  for (int32_t v : {-1, disco::kStatusCount, 1000, INT32_MIN, INT32_MAX}) {
    CHECK(!disco::is_known_status(v));
    CHECK_EQ(std::string(disco::status_name(static_cast<Status>(v))), "UNKNOWN");
  }
}

}  // namespace

int main() {
  names_every_status_uniquely();
  keeps_the_released_numbers();
  answers_unknown_for_values_outside_the_list();
  return disco::test::check_exit_code();
}
