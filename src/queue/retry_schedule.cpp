#include "queue/retry_schedule.h"

#include <algorithm>

namespace tern::queue {

std::uint64_t RetrySchedule::wait_after(std::uint32_t attempts) const {
  if (q_.retry_ms.empty()) return 60'000;
  std::size_t i = attempts == 0 ? 0 : std::min<std::size_t>(attempts - 1, q_.retry_ms.size() - 1);
  return q_.retry_ms[i];
}

}  // namespace tern::queue
