// The pickup: takes what sendmail left in the maildrop (queue/maildrop.h)
// into the spool, as Postfix's pickup(8) does. It scans the folder at start
// (mail kept while tern was down), whenever inotify reports a new file, and
// every minute as a fallback. Each file is read strictly (another local user
// may have written it: size bounded, regular files with one link only); a bad
// one is moved to bad/ and logged, never retried. Contract (SPEC §1, §4): a
// file is removed only after its message is durable in the spool, and the
// same commit records the file's name (Spool::was_picked_up), so a crash in
// between never queues it twice: the record makes the next scan remove it.
#pragma once

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>
#include <atomic>
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "log/tracking_log.h"
#include "net/awaitable.h"
#include "queue/spool.h"

namespace tern::server {

class Pickup {
 public:
  using QueuedHook = std::function<void(std::uint64_t id, bool local)>;
  // loop: where the watch runs; pool: where files are read and committed.
  Pickup(const config::Config& config, queue::Spool& spool, log::TrackingLog& tracking,
         asio::io_context& loop, asio::thread_pool& pool, QueuedHook queued);
  ~Pickup();
  void start();
  // From any thread: no new scan starts; one in progress ends after its file.
  void stop();

 private:
  net::awaitable<void> run();
  net::awaitable<void> watch();
  // Blocking, on the pool; true when names are left for another scan now.
  bool scan();
  bool scan_guarded();
  bool list(int dir, std::vector<std::string>& names, std::vector<std::string>& temps);
  void set_aside_stale(int dir, const std::vector<std::string>& temps);
  struct Item;
  bool read_file(int dir, const std::string& name, Item& item, std::string& why);
  bool commit(int dir, std::vector<Item>& items);
  // Moves a refused entry into bad/ (or removes it); false when it can do
  // neither (the entry is then skipped by later scans).
  bool set_aside(int dir, const std::string& name, const std::string& why);

  const config::Config& config_;
  queue::Spool& spool_;
  log::TrackingLog& tracking_;
  asio::io_context& loop_;
  asio::thread_pool& pool_;
  QueuedHook queued_;
  std::size_t max_message_;
  asio::steady_timer wake_;
  std::unique_ptr<asio::posix::stream_descriptor> inotify_;
  bool dirty_ = true;
  bool cleaned_ = false;  // the records left by the last run were cleared
  std::atomic<bool> stopping_{false};
  std::vector<std::string> forget_;  // removed files whose records may go
  std::set<std::string> stuck_;      // bad entries that could not be moved (logged once)
  std::string failing_;              // the last commit error, logged once
  bool crash_after_commit_ = false;  // TERN_FAULT_PICKUP_AFTER_COMMIT (tests)
};

}  // namespace tern::server
