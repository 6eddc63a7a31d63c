// When to try a deferred message again, and when to give up (SPEC §4, the
// [queue] section): waits of `retry` between attempts, the last one repeating;
// a delay notice once `delay_notice` has passed since arrival; failure once
// `expire` has passed. Pure arithmetic on milliseconds, for tests and the
// scheduler alike.
#pragma once

#include <cstdint>

#include "config/config.h"

namespace tern::queue {

class RetrySchedule {
 public:
  explicit RetrySchedule(const config::Queue& q) : q_(q) {}

  // The wait after the given number of failed attempts (1 = after the first).
  std::uint64_t wait_after(std::uint32_t attempts) const;
  std::int64_t next_attempt(std::int64_t now_ms, std::uint32_t attempts) const {
    return now_ms + static_cast<std::int64_t>(wait_after(attempts));
  }
  bool expired(std::int64_t arrival_ms, std::int64_t now_ms) const {
    return now_ms - arrival_ms >= static_cast<std::int64_t>(q_.expire_ms);
  }
  bool delay_notice_due(std::int64_t arrival_ms, std::int64_t now_ms) const {
    return now_ms - arrival_ms >= static_cast<std::int64_t>(q_.delay_notice_ms);
  }
  std::int64_t give_up_at(std::int64_t arrival_ms) const {
    return arrival_ms + static_cast<std::int64_t>(q_.expire_ms);
  }

 private:
  config::Queue q_;
};

}  // namespace tern::queue
