#include "queue/spool.h"

#include <future>

namespace tern::queue {

CommitResult Spool::apply_and_wait(SpoolChange change) {
  std::promise<CommitResult> promise;
  auto future = promise.get_future();
  apply(std::move(change), [&promise](CommitResult r) { promise.set_value(std::move(r)); });
  return future.get();
}

}  // namespace tern::queue
