#include "queue/spool.h"

#include <future>
#include <stdexcept>

#include "queue/spool_rocksdb.h"

namespace tern::queue {

CommitResult Spool::apply_and_wait(SpoolChange change) {
  std::promise<CommitResult> promise;
  auto future = promise.get_future();
  apply(std::move(change), [&promise](CommitResult r) { promise.set_value(std::move(r)); });
  return future.get();
}

std::unique_ptr<Spool> open_spool(const config::Config& config, OpenMode mode) {
  if (config.spool.backend == "rocksdb") return open_rocksdb_spool(config.spool, mode);
  throw std::runtime_error("spool backend \"" + config.spool.backend +
                           "\" is not available in this build");
}

}  // namespace tern::queue
