// The queue scheduler (SPEC §4): knows when each queued message is due, starts
// its delivery attempt when it is — in one of two lanes: a message whose
// pending recipients are all local (Maildir, LMTP) in the local lane, at most
// [delivery] max_local_deliveries at once; any other in the remote lane, at
// most max_connections at once, so slow remote hosts never hold local mail back —
// records the outcomes (queue/attempt.h) in one atomic spool change, and
// schedules the next attempt, the DSNs and nothing more once every recipient is
// done. State that matters is in the spool (next_attempt, recipient states), so
// a restart resumes where it was: load() rebuilds the in-memory index.
//
// Runs on the delivery event loop. enqueue() may be called from any thread;
// the administrator's actions (retry, delete, bounce) come through the control
// socket on the same loop.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "config/config.h"
#include "delivery/dispatcher.h"
#include "log/tracking_log.h"
#include "net/awaitable.h"
#include "queue/attempt.h"
#include "queue/spool.h"

namespace tern::queue {

class Scheduler {
 public:
  using Clock = std::function<std::int64_t()>;  // Unix milliseconds

  Scheduler(asio::any_io_executor executor, const config::Config& config, Spool& spool,
            log::TrackingLog& tracking, delivery::Dispatcher& dispatcher, Clock clock = {});

  // Reads the spool and schedules every message with recipients left. Call
  // before the loop runs (blocking).
  std::size_t load();
  // Starts the timer; call from the loop or before it runs.
  void start();
  // A new message is in the spool, due now. Any thread.
  void enqueue(std::uint64_t id);

  // Administrator's actions; the reply is one line for `tern queue`.
  // retry releases a held message; nullopt: every scheduled message (held ones stay held).
  net::awaitable<std::string> retry(std::optional<std::uint64_t> id);
  net::awaitable<std::string> remove(std::uint64_t id);
  net::awaitable<std::string> bounce(std::uint64_t id);

  // No new attempts; on_idle runs (on the loop) once no attempt is running.
  void stop(std::function<void()> on_idle);
  std::size_t running() const { return running_; }

 private:
  struct Entry {
    std::int64_t due = 0;
    bool running = false;
    bool local = false;          // every pending recipient is local: the local lane
    bool running_local = false;  // the lane of the running attempt
    enum class After { kNothing, kRetry, kDelete, kBounce } after = After::kNothing;
  };

  void schedule(std::uint64_t id, std::int64_t due);
  void unschedule(std::uint64_t id);
  net::awaitable<void> timer_loop();
  void start_due();
  std::optional<std::pair<std::uint64_t, bool>> next_due(std::int64_t now);  // (id, local lane)
  std::set<std::pair<std::int64_t, std::uint64_t>>& due_of(const Entry& e) {
    return e.local ? due_local_ : due_;
  }
  net::awaitable<void> attempt(std::uint64_t id);
  net::awaitable<std::optional<AttemptResult>> attempt_once(std::uint64_t id);
  net::awaitable<bool> hold(std::uint64_t id, std::string reason);
  net::awaitable<AttemptResult> deliver_once(Envelope& envelope, const std::string& content);
  void write_tracking(const Envelope& envelope, const AttemptResult& result);
  void finish_attempt(std::uint64_t id, const AttemptResult* result);

  asio::any_io_executor executor_;
  const config::Config& config_;
  Spool& spool_;
  log::TrackingLog& tracking_;
  delivery::Dispatcher& dispatcher_;
  Clock clock_;
  AttemptRecorder recorder_;
  asio::steady_timer timer_;
  std::unordered_map<std::uint64_t, Entry> entries_;
  // (due, id) of entries not running, by lane
  std::set<std::pair<std::int64_t, std::uint64_t>> due_, due_local_;
  std::size_t running_ = 0;
  std::size_t running_local_ = 0;
  bool stopped_ = false;
  std::function<void()> on_idle_;
};

}  // namespace tern::queue
