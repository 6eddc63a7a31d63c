#include "queue/scheduler.h"

#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <chrono>
#include <limits>
#include <memory>
#include <stdexcept>

#include "queue/spool_async.h"
#include "util/text.h"

namespace tern::queue {

namespace {
std::int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

std::string Scheduler::held_reason(std::uint64_t id, const std::string& what) {
  return "held: processing failed inside tern (" + util::printable(what) +
         "); release with tern queue retry " + std::to_string(id);
}

Scheduler::Scheduler(asio::any_io_executor executor, const config::Config& config, Spool& spool,
                     log::TrackingLog& tracking, delivery::Deliverer& deliverer, Clock clock)
    : executor_(executor),
      config_(config),
      spool_(spool),
      tracking_(tracking),
      deliverer_(deliverer),
      clock_(clock ? std::move(clock) : Clock(system_now_ms)),
      recorder_(config, spool),
      due_timer_(executor),
      shared_(spool.shared()),
      poll_timer_(executor) {}

std::size_t Scheduler::load() {
  if (shared_) return 0;  // the cluster's queue: claimed as it becomes due
  std::size_t n = 0;
  for (const auto& e : spool_.list()) {
    if (!e.held.empty()) {  // waits for the administrator, never removed here
      spdlog::warn("queue {}: held: {}", e.id, util::printable(e.held));
      held_[e.id] = e.recipients.empty();  // no recipients: a record that does not decode
      continue;
    }
    bool pending = false;
    for (const auto& r : e.recipients) pending = pending || !r.done();
    if (!pending) {  // delivered before a crash, not yet removed
      spool_.remove(e.id);
      continue;
    }
    entries_[e.id].local = only_local(e);
    schedule(e.id, e.next_attempt_ms);
    ++n;
  }
  return n;
}

void Scheduler::start() {
  if (shared_) {
    spool_.on_queued([this] { asio::post(executor_, [this] { signal_due(); }); });
    asio::post(executor_, [this] { poll(); });
  }
  look_again();
}

// The boundary of one message's processing: whatever throws while it is being
// delivered or recorded ends that message's attempt, and the message is held
// with the reason (tern queue show) instead of being retried in a loop or
// taking the server down. A spool that cannot be read now (SpoolUnavailable)
// is not the message's fault: it is tried again later, neither held nor dropped.
net::awaitable<void> Scheduler::attempt(std::uint64_t id) {
  std::string failure, unreadable;
  Ended result;
  bool ended = false;
  try {
    result = co_await attempt_once(id);
    ended = true;
  } catch (const SpoolUnavailable& e) {
    unreadable = e.what();
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "unknown error";
  }
  bool written = false;
  std::string reason;
  if (!ended && unreadable.empty()) {
    reason = held_reason(id, failure);
    spdlog::error("queue {}: {}", id, reason);
    try {
      written = co_await hold(id, reason);
    } catch (const SpoolUnavailable& e) {
      unreadable = e.what();
    }
  }
  if (!unreadable.empty()) {
    result = co_await spool_unavailable(id, unreadable);
    ended = true;
  }
  if (ended) {  // outside the try: its bookkeeping must run exactly once
    finish_attempt(id, result);
    co_return;
  }
  if (!written) spdlog::error("queue {}: the hold could not be written; held until restart", id);
  --running_;
  if (auto it = entries_.find(id); it != entries_.end() && it->second.running_local)
    --running_local_;
  forget(id);
  timer_.cancel();
  if (stopped_ && running_ == 0 && on_idle_) std::exchange(on_idle_, nullptr)();
}

net::awaitable<bool> Scheduler::hold(std::uint64_t id, std::string reason) {
  std::optional<Envelope> env;
  try {
    env = spool_.find(id);
  } catch (const SpoolUnavailable&) {
    throw;
  } catch (const std::exception&) {
    held_[id] = true;
    co_return false;  // an unreadable record is already listed as held by the spool
  }
  if (!env) co_return false;
  env->held = std::move(reason);
  SpoolChange change;
  change.update.push_back(*env);
  auto written = co_await apply_async(spool_, std::move(change));
  if (written.status != SpoolStatus::kOk) co_return false;
  tracking_.write({"HOLD", id, env->message_id, env->sender, "", "", env->size, env->held});
  held_[id] = false;
  co_return true;
}

void Scheduler::enqueue(std::uint64_t id, std::optional<bool> local) {
  bool first = false;
  {
    std::lock_guard lock(incoming_mutex_);
    first = incoming_.empty();
    incoming_.push_back({id, local});
  }
  if (!first) return;
  if (shared_) {  // the cluster's queue: claimed like any other node's mail
    asio::post(executor_, [this] {
      {
        std::lock_guard lock(incoming_mutex_);
        incoming_.clear();
      }
      signal_due();
    });
    return;
  }
  asio::post(executor_, [this] { take_incoming(); });
}

void Scheduler::take_incoming() {
  std::vector<std::pair<std::uint64_t, std::optional<bool>>> ids;
  {
    std::lock_guard lock(incoming_mutex_);
    ids.swap(incoming_);
  }
  std::int64_t now = clock_();
  for (auto [id, local] : ids) schedule(id, now, true, local);
}

void Scheduler::schedule(std::uint64_t id, std::int64_t due, bool fresh,
                         std::optional<bool> local) {
  if (shared_ && !entries_.count(id)) {  // not leased here (a notice just made): claim it
    signal_due();
    return;
  }
  auto [it, created] = entries_.try_emplace(id);
  auto& e = it->second;
  if (created && local) {
    e.fresh = fresh;
    e.local = *local;
  } else if (created) {
    e.fresh = fresh;
    try {
      auto env = spool_.find(id);
      e.local = env && only_local(*env);
    } catch (const std::exception&) {  // unreadable: the attempt's boundary holds it
      e.local = false;
    }
  }
  if (!e.running) due_of(e).erase({e.due, id});
  e.due = due;
  if (e.running) return;  // rescheduled when the attempt ends
  due_of(e).insert({due, id});
  std::int64_t now = clock_();
  if (due <= now)
    look_again();
  else if (due < armed_ms_)
    arm(now);  // earlier than what the timer waits for
}

void Scheduler::look_again() {
  if (look_pending_) return;
  look_pending_ = true;
  asio::post(executor_, [this] {
    look_pending_ = false;
    look_now();
  });
}

void Scheduler::look_now() {
  if (stopped_) {
    due_timer_.cancel();
    armed_ms_ = kNotArmed;
    return;
  }
  try {
    start_due();
  } catch (const std::exception& e) {  // never let the queue stop: log and look again
    spdlog::error("scheduler: {}", e.what());
  }
  claim_more();
  arm(clock_());
}

// Arms the timer for the earliest due time of a lane with room (a full lane is
// looked at again when one of its attempts ends), at most a minute ahead, unless
// it already fires by then. With nothing to wait for it is still armed a minute
// ahead: then it is always the loop's first timer, and the waits without a
// deadline (time_point::max(), one per attempt) never become the first and
// re-arm the loop's timerfd each.
void Scheduler::arm(std::int64_t now) {
  if (stopped_) return;
  std::int64_t first = kNotArmed;
  for (bool local : {true, false}) {
    const auto& lane = local ? due_local_ : due_;
    std::size_t running = local ? running_local_ : running_ - running_local_;
    std::size_t limit =
        local ? config_.delivery.max_local_deliveries : config_.delivery.max_connections;
    if (!lane.empty() && running < limit) first = std::min(first, lane.begin()->first);
  }
  std::int64_t at = std::min(std::max(first, now), now + 60'000);
  if (at >= armed_ms_) return;
  armed_ms_ = at;
  due_timer_.expires_after(std::chrono::milliseconds(at - now));
  due_timer_.async_wait([this](std::error_code ec) {
    if (ec) return;  // re-armed earlier meanwhile, or stopped
    armed_ms_ = kNotArmed;
    look_now();
  });
}

// The next attempt to start: the first due entry of a lane with room.
std::optional<std::pair<std::uint64_t, bool>> Scheduler::next_due(std::int64_t now) {
  for (bool local : {true, false}) {
    auto& lane = local ? due_local_ : due_;
    std::size_t running = local ? running_local_ : running_ - running_local_;
    std::size_t limit =
        local ? config_.delivery.max_local_deliveries : config_.delivery.max_connections;
    if (stopped_ || lane.empty() || lane.begin()->first > now || running >= limit) continue;
    auto id = lane.begin()->second;
    lane.erase(lane.begin());
    return std::make_pair(id, local);
  }
  return std::nullopt;
}

void Scheduler::start_due() {
  std::int64_t now = clock_();
  while (auto next = next_due(now)) {
    auto [id, local] = *next;
    entries_[id].running = true;
    entries_[id].running_local = local;
    ++running_;
    if (local) ++running_local_;
    asio::co_spawn(executor_, attempt(id), asio::detached);
  }
}

void Scheduler::finish_attempt(std::uint64_t id, const Ended& ended) {
  --running_;
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.running_local) --running_local_;
  if (it != entries_.end()) {
    auto after = std::exchange(it->second.after, Entry::After::kNothing);
    it->second.running = false;
    if (stopped_ && it->second.unwritten) hand_back(id, *it->second.unwritten);
    if (ended.gone && !it->second.unwritten) {
      forget(id);
    } else if (shared_ && !it->second.unwritten && after == Entry::After::kNothing) {
      forget(id);  // the next attempt (next_attempt in the spool) may run on any node
    } else if (after == Entry::After::kDelete || after == Entry::After::kBounce) {
      // Asked for after the attempt's last write had gone out: done now,
      // owning the message before anything else can start on it (if it
      // fails, the message is due when the attempt said).
      it->second.due = ended.next_ms;
      claim(id);
      asio::co_spawn(executor_, owned(id, after), [id](std::exception_ptr e, std::string reply) {
        if (e) reply = "failed";
        spdlog::info("queue {}: administrator's action after the attempt: {}", id, reply);
      });
    } else {
      std::int64_t next = ended.next_ms;
      if (after == Entry::After::kRetry) next = clock_();
      it->second.due = next;
      due_of(it->second).insert({next, id});
    }
  }
  timer_.cancel();  // a slot is free: look again
  if (stopped_ && running_ == 0 && on_idle_) std::exchange(on_idle_, nullptr)();
}

// The tracking log and the delivery counters (log/metrics.h) follow what was
// written to the spool, so a write that failed and is repeated counts once.
void Scheduler::write_tracking(const Envelope& env, const std::vector<TrackingRecord>& tracking) {
  auto& m = log::metrics();
  for (const auto& t : tracking) {
    tracking_.write(
        {t.event, t.id, env.message_id, env.sender, t.recipient, t.remote, env.size, t.detail});
    if (t.event == "DELIVER")
      m.delivered(t.remote.starts_with("lmtp") ? log::Via::kLmtp : log::Via::kMaildir).inc();
    else if (t.event == "SEND")
      m.delivered(log::Via::kSmtp).inc();
    else if (t.event == "DEFER")
      m.deferred.inc();
    else if (t.event == "FAIL")
      m.failed.inc();
    else if (t.event == "DSN")
      m.dsns.inc();
    else if (t.event == "HOLD")
      held_[t.id] = false;
  }
}

void Scheduler::hand_back(std::uint64_t id, const Unwritten& u) {
  SpoolChange change;
  if (u.update) change.update.push_back(u.envelope);
  if (u.remove) change.remove.push_back(id);
  change.add = u.add;
  spool_.apply(std::move(change), [](CommitResult) {});
}

void Scheduler::stop(std::function<void()> on_idle) {
  stopped_ = true;
  timer_.cancel();
  poll_timer_.cancel();
  // Outcomes whose write failed: one more try before exit (the spool drains
  // what it was given before it closes).
  for (auto& [id, e] : entries_)
    if (e.unwritten && !e.running) hand_back(id, *e.unwritten);
  if (running_ == 0) {
    on_idle();
  } else {
    on_idle_ = std::move(on_idle);
  }
}

}  // namespace tern::queue
