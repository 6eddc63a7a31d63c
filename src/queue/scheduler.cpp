#include "queue/scheduler.h"

#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <chrono>
#include <limits>

#include "queue/spool_async.h"
#include "util/text.h"

namespace tern::queue {

namespace {
// The local lane's messages: every recipient still to do is one of ours.
bool only_local(const Envelope& e) {
  for (const auto& r : e.recipients)
    if (!r.done() && !r.local) return false;
  return true;
}

std::int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Scheduler::Scheduler(asio::any_io_executor executor, const config::Config& config, Spool& spool,
                     log::TrackingLog& tracking, delivery::Dispatcher& dispatcher, Clock clock)
    : executor_(executor),
      config_(config),
      spool_(spool),
      tracking_(tracking),
      dispatcher_(dispatcher),
      clock_(clock ? std::move(clock) : Clock(system_now_ms)),
      recorder_(config, spool),
      due_timer_(executor) {}

std::size_t Scheduler::load() {
  std::size_t n = 0;
  for (const auto& e : spool_.list()) {
    if (!e.held.empty()) {  // waits for the administrator, never removed here
      spdlog::warn("queue {}: held: {}", e.id, util::printable(e.held));
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
  look_again();
}

// The boundary of one message's processing: whatever throws while it is being
// delivered or recorded ends that message's attempt, and the message is held
// with the reason (tern queue show) instead of being retried in a loop or
// taking the server down.
net::awaitable<void> Scheduler::attempt(std::uint64_t id) {
  std::string failure;
  std::optional<AttemptResult> result;
  bool ended = false;
  try {
    result = co_await attempt_once(id);
    ended = true;
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "unknown error";
  }
  if (ended) {  // outside the try: its bookkeeping must run exactly once
    finish_attempt(id, result ? &*result : nullptr);
    co_return;
  }
  std::string reason = "held: processing failed inside tern (" + util::printable(failure) +
                       "); release with tern queue retry " + std::to_string(id);
  spdlog::error("queue {}: {}", id, reason);
  bool written = co_await hold(id, reason);
  if (!written) spdlog::error("queue {}: the hold could not be written; held until restart", id);
  --running_;
  if (auto it = entries_.find(id); it != entries_.end() && it->second.running_local)
    --running_local_;
  entries_.erase(id);
  timer_.cancel();
  if (stopped_ && running_ == 0 && on_idle_) std::exchange(on_idle_, nullptr)();
}

net::awaitable<bool> Scheduler::hold(std::uint64_t id, std::string reason) {
  std::optional<Envelope> env;
  try {
    env = spool_.find(id);
  } catch (const std::exception&) {
    co_return false;  // an unreadable record is already listed as held by the spool
  }
  if (!env) co_return false;
  env->held = std::move(reason);
  SpoolChange change;
  change.update.push_back(*env);
  auto written = co_await apply_async(spool_, std::move(change));
  if (written.status != SpoolStatus::kOk) co_return false;
  tracking_.write({"HOLD", id, env->message_id, env->sender, "", "", env->size, env->held});
  co_return true;
}

void Scheduler::enqueue(std::uint64_t id) {
  bool first = false;
  {
    std::lock_guard lock(incoming_mutex_);
    first = incoming_.empty();
    incoming_.push_back(id);
  }
  if (first) asio::post(executor_, [this] { take_incoming(); });
}

void Scheduler::take_incoming() {
  std::vector<std::uint64_t> ids;
  {
    std::lock_guard lock(incoming_mutex_);
    ids.swap(incoming_);
  }
  std::int64_t now = clock_();
  for (auto id : ids) schedule(id, now);
}

void Scheduler::schedule(std::uint64_t id, std::int64_t due) {
  auto [it, created] = entries_.try_emplace(id);
  auto& e = it->second;
  if (created) {
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

void Scheduler::unschedule(std::uint64_t id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  if (!it->second.running) due_of(it->second).erase({it->second.due, id});
  entries_.erase(it);
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
  arm(clock_());
}

// Arms the timer for the earliest due time of a lane with room (a full lane is
// looked at again when one of its attempts ends), at most a minute ahead, unless
// it already fires by then.
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
  if (first == kNotArmed) return;
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

net::awaitable<AttemptResult> Scheduler::deliver_once(Envelope& env, const std::string& content) {
  std::int64_t now = clock_();
  if (recorder_.expired(env, now)) {
    auto days = config_.queue.expire_ms / 3'600'000.0;
    co_return recorder_.fail_pending(
        env, content,
        smtp::Reply(550, "5.4.7",
                    "Delivery time expired: gave up after " +
                        std::to_string(static_cast<int>(days)) + " hours"),
        now);
  }
  std::vector<std::size_t> pending;
  for (std::size_t i = 0; i < env.recipients.size(); ++i)
    if (!env.recipients[i].done()) pending.push_back(i);
  auto outcomes = co_await dispatcher_.deliver(env, content, pending);
  auto result = recorder_.record(env, content, outcomes, clock_());
  // tern failed inside for some recipient: what the others reached is recorded
  // (never delivered twice), and the message waits for the administrator.
  for (const auto& o : outcomes) {
    if (!o.outcome.internal || result.finished) continue;
    env.held = "held: processing failed inside tern (" +
               util::printable(o.outcome.reply.lines.front()) +
               "); release with tern queue retry " + std::to_string(env.id);
    for (auto& u : result.change.update)
      if (u.id == env.id) u.held = env.held;
    result.tracking.push_back({"HOLD", env.id, env.recipients[o.index].address, "", env.held});
    result.held = true;
    break;
  }
  co_return result;
}

// One attempt; nullopt when its outcome could not be recorded (tried again later).
net::awaitable<std::optional<AttemptResult>> Scheduler::attempt_once(std::uint64_t id) {
  auto env = spool_.find(id);
  auto content = spool_.content(id);
  if (!env || !content || !env->held.empty()) {  // deleted or held meanwhile
    AttemptResult gone;
    gone.finished = true;
    co_return gone;
  }
  AttemptResult result = co_await deliver_once(*env, *content);
  auto& entry = entries_[id];
  entry.local = only_local(*env);  // the lane of the next attempt
  if (entry.after == Entry::After::kBounce && !result.finished) {
    auto more = recorder_.fail_pending(
        *env, *content, smtp::Reply(550, "5.0.0", "Bounced by the administrator"), clock_());
    for (auto& m : result.change.add) more.change.add.push_back(std::move(m));
    more.tracking.insert(more.tracking.begin(), result.tracking.begin(), result.tracking.end());
    more.new_messages.insert(more.new_messages.end(), result.new_messages.begin(),
                             result.new_messages.end());
    result = std::move(more);
  } else if (entry.after == Entry::After::kDelete) {
    result.change.update.clear();
    result.change.remove = {id};
    result.finished = true;
  }
  auto written = co_await apply_async(spool_, result.change);
  if (written.status != SpoolStatus::kOk) {
    spdlog::error("queue {}: cannot record the delivery attempt: {}; will retry", id,
                  written.error);
    co_return std::nullopt;
  }
  write_tracking(*env, result);
  for (auto dsn_id : result.new_messages) schedule(dsn_id, clock_());
  co_return result;
}

void Scheduler::finish_attempt(std::uint64_t id, const AttemptResult* result) {
  --running_;
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.running_local) --running_local_;
  if (it != entries_.end()) {
    auto after = it->second.after;
    it->second.running = false;
    it->second.after = Entry::After::kNothing;
    if (result && (result->finished || result->held)) {
      entries_.erase(it);
    } else {
      std::int64_t next = result ? result->next_attempt_ms : clock_() + 60'000;
      if (after == Entry::After::kRetry) next = clock_();
      it->second.due = next;
      due_of(it->second).insert({next, id});
    }
  }
  timer_.cancel();  // a slot is free: look again
  if (stopped_ && running_ == 0 && on_idle_) std::exchange(on_idle_, nullptr)();
}

void Scheduler::write_tracking(const Envelope& env, const AttemptResult& result) {
  for (const auto& t : result.tracking)
    tracking_.write(
        {t.event, t.id, env.message_id, env.sender, t.recipient, t.remote, env.size, t.detail});
}

net::awaitable<std::string> Scheduler::retry(std::optional<std::uint64_t> id) {
  std::int64_t now = clock_();
  if (id && !entries_.count(*id)) {  // not scheduled: perhaps held, then released
    std::optional<Envelope> env;
    try {
      env = spool_.find(*id);
    } catch (const std::exception& e) {
      co_return "error: " + std::to_string(*id) + " cannot be read (" + e.what() +
          "); it stays held: tern queue delete removes it";
    }
    if (!env || env->held.empty())
      co_return "error: no message with InternalId " + std::to_string(*id) + " in the queue";
    env->held.clear();
    env->next_attempt_ms = now;
    SpoolChange change;
    change.update.push_back(*env);
    auto written = co_await apply_async(spool_, std::move(change));
    if (written.status != SpoolStatus::kOk) co_return "error: " + written.error;
    schedule(*id, now);
    co_return "ok: " + std::to_string(*id) + " released from hold; it will be tried now";
  }
  if (!id) {
    std::vector<std::uint64_t> ids;
    for (auto& [i, e] : entries_)
      if (!e.running) ids.push_back(i);
    for (auto i : ids) schedule(i, now);
    co_return "ok: " + std::to_string(ids.size()) + " message(s) will be tried now";
  }
  auto it = entries_.find(*id);
  if (it == entries_.end())
    co_return "error: no message with InternalId " + std::to_string(*id) + " in the queue";
  if (it->second.running) {
    it->second.after = Entry::After::kRetry;
    co_return "ok: " + std::to_string(*id) +
        " is being delivered now; it will be tried again at once if needed";
  }
  schedule(*id, now);
  co_return "ok: " + std::to_string(*id) + " will be tried now";
}

net::awaitable<std::string> Scheduler::remove(std::uint64_t id) {
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.running) {
    it->second.after = Entry::After::kDelete;
    co_return "ok: " + std::to_string(id) + " will be deleted when its current attempt ends";
  }
  std::optional<Envelope> env;
  try {
    env = spool_.find(id);
  } catch (const std::exception&) {  // unreadable: still the administrator's to remove
    env = Envelope{};
    env->id = id;
  }
  if (!env) co_return "error: no message with InternalId " + std::to_string(id) + " in the queue";
  SpoolChange change;
  change.remove.push_back(id);
  auto r = co_await apply_async(spool_, std::move(change));
  if (r.status != SpoolStatus::kOk) co_return "error: " + r.error;
  unschedule(id);
  tracking_.write({"FAIL", id, env->message_id, env->sender, "", "", env->size,
                   "deleted by the administrator"});
  co_return "ok: " + std::to_string(id) + " deleted (no notice sent)";
}

net::awaitable<std::string> Scheduler::bounce(std::uint64_t id) {
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.running) {
    it->second.after = Entry::After::kBounce;
    co_return "ok: " + std::to_string(id) +
        " will be returned to its sender when its current attempt ends";
  }
  auto env = spool_.find(id);
  auto content = spool_.content(id);
  if (!env || !content)
    co_return "error: no message with InternalId " + std::to_string(id) + " in the queue";
  auto result = recorder_.fail_pending(
      *env, *content, smtp::Reply(550, "5.0.0", "Bounced by the administrator"), clock_());
  auto r = co_await apply_async(spool_, result.change);
  if (r.status != SpoolStatus::kOk) co_return "error: " + r.error;
  unschedule(id);
  write_tracking(*env, result);
  for (auto dsn_id : result.new_messages) schedule(dsn_id, clock_());
  co_return "ok: " + std::to_string(id) + " returned to " +
      (env->sender.empty() ? "<> (no notice)" : env->sender);
}

void Scheduler::stop(std::function<void()> on_idle) {
  stopped_ = true;
  timer_.cancel();
  if (running_ == 0) {
    on_idle();
  } else {
    on_idle_ = std::move(on_idle);
  }
}

}  // namespace tern::queue
