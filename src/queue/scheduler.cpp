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
// The local lane's messages: every recipient still to do is one of ours.
bool only_local(const Envelope& e) {
  for (const auto& r : e.recipients)
    if (!r.done() && !r.local) return false;
  return true;
}

// How long a status write that failed waits before it is tried again.
std::int64_t write_backoff_ms(std::uint32_t failures) {
  return std::min<std::int64_t>(60'000, 1'000ll << std::min<std::uint32_t>(failures, 6));
}

std::string held_reason(std::uint64_t id, const std::string& what) {
  return "held: processing failed inside tern (" + util::printable(what) +
         "); release with tern queue retry " + std::to_string(id);
}

std::int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Scheduler::Scheduler(asio::any_io_executor executor, const config::Config& config, Spool& spool,
                     log::TrackingLog& tracking, delivery::Deliverer& deliverer, Clock clock)
    : executor_(executor),
      config_(config),
      spool_(spool),
      tracking_(tracking),
      deliverer_(deliverer),
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
  entries_.erase(id);
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
  for (auto id : ids) schedule(id, now, true);
}

void Scheduler::schedule(std::uint64_t id, std::int64_t due, bool fresh) {
  auto [it, created] = entries_.try_emplace(id);
  auto& e = it->second;
  if (created) {
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

// One attempt's state while its groups end. The envelope here is the newest
// state: every write carries it whole, and writes reach the spool in the order
// they are made (Spool::apply), so the last one written is the newest.
struct Scheduler::Recording {
  Recording(std::uint64_t i, Envelope e, std::string c, asio::any_io_executor ex)
      : id(i), env(std::move(e)), content(std::move(c)), idle(ex) {}
  std::uint64_t id;
  Envelope env;
  std::string content;
  std::size_t in_flight = 0;  // writes not yet answered
  asio::steady_timer idle;    // cancelled when in_flight drops to 0
  bool final_submitted = false;
  bool final_failed = false;
  AttemptResult final;  // finished, held, next_attempt_ms of the last write
  // What failed writes carried besides the envelope: the next write takes it.
  std::vector<NewMessage> failed_add;
  std::vector<TrackingRecord> failed_tracking;
  std::vector<std::uint64_t> failed_new;
  std::string internal;            // tern failed inside for some recipient: held
  std::string internal_recipient;  // (for the HOLD line)
  std::string error;               // recording a group threw
};

struct Scheduler::Batch {
  bool final = false;
  std::vector<NewMessage> add;
  std::vector<TrackingRecord> tracking;
  std::vector<std::uint64_t> new_messages;
};

// One attempt. A message whose last outcomes are not yet written is not
// delivered again: its outcomes are written first (rewrite).
net::awaitable<Scheduler::Ended> Scheduler::attempt_once(std::uint64_t id) {
  if (auto unwritten = entries_[id].unwritten) co_return co_await rewrite(id, unwritten);
  std::optional<Envelope> env;
  std::optional<std::string> content;
  std::string unreadable;
  try {
    env = spool_.find(id);
    content = spool_.content(id);
  } catch (const SpoolUnavailable& e) {  // not deleted: the spool is closed for now
    unreadable = e.what();
  }
  if (!unreadable.empty()) co_return co_await spool_unavailable(id, unreadable);
  entries_[id].unavailable = 0;
  // Only the first attempt of a message new in this process is known to have
  // delivered nothing yet; from here on every attempt may be a repeat.
  const bool first = std::exchange(entries_[id].fresh, false);
  if (!env || !content || !env->held.empty()) co_return Ended{true, 0};  // deleted or held
  auto rec = std::make_shared<Recording>(id, std::move(*env), std::move(*content), executor_);
  bool expired = recorder_.expired(rec->env, clock_());
  if (!expired) {
    std::vector<std::size_t> pending;
    for (std::size_t i = 0; i < rec->env.recipients.size(); ++i)
      if (!rec->env.recipients[i].done()) pending.push_back(i);
    const Envelope delivering = rec->env;  // rec->env changes as groups end
    delivery::GroupReport report = [this, rec](std::vector<delivery::RecipientOutcome> outcomes,
                                               bool last) {
      on_group(rec, std::move(outcomes), last);
    };
    std::string failure;
    try {
      co_await deliverer_.deliver(delivering, rec->content, pending, !first, report);
    } catch (const std::exception& e) {
      failure = e.what();
    } catch (...) {
      failure = "unknown error";
    }
    if (failure.empty()) failure = rec->error;
    if (!failure.empty() && rec->internal.empty()) rec->internal = failure;
  }
  // Expiry, groups that never said last, or an error: the rest in one more write.
  if (!rec->final_submitted) {
    try {
      submit(rec, conclude(*rec, {}, expired), true);
    } catch (const std::exception& e) {
      rec->error = e.what();
    }
  }
  co_await all_written(*rec);
  // Not recordable: what the groups' writes stored stays; the boundary holds it.
  if (!rec->final_submitted) throw std::runtime_error(rec->error);
  auto& entry = entries_[id];
  entry.local = only_local(rec->env);  // the lane of the next attempt
  if (rec->final_failed || !rec->failed_add.empty() || !rec->failed_tracking.empty()) {
    auto u = std::make_shared<Unwritten>();
    u->envelope = rec->env;
    u->update = rec->final_failed && !rec->final.finished;
    u->remove = rec->final_failed && rec->final.finished;
    u->add = std::move(rec->failed_add);
    u->tracking = std::move(rec->failed_tracking);
    u->new_messages = std::move(rec->failed_new);
    u->finished = rec->final.finished;
    u->held = rec->final.held;
    u->next_attempt_ms = rec->final.next_attempt_ms;
    entry.unwritten = u;
    co_return Ended{false, clock_() + write_backoff_ms(u->failures)};
  }
  co_return Ended{rec->final.finished || rec->final.held, rec->final.next_attempt_ms};
}

net::awaitable<Scheduler::Ended> Scheduler::spool_unavailable(std::uint64_t id,
                                                              const std::string& why) {
  std::uint32_t failures = ++entries_[id].unavailable;
  if (failures == 1)
    spdlog::error("queue {}: the spool cannot be read now ({}); tried again later", id,
                  util::printable(why));
  // A write makes the spool try to reopen (on its own thread, not this loop).
  co_await apply_async(spool_, SpoolChange{});
  co_return Ended{false, clock_() + write_backoff_ms(failures)};
}

// Writes what an earlier attempt could not; delivers nothing.
net::awaitable<Scheduler::Ended> Scheduler::rewrite(std::uint64_t id,
                                                    std::shared_ptr<Unwritten> u) {
  SpoolChange change;
  if (u->update) change.update.push_back(u->envelope);
  if (u->remove) change.remove.push_back(id);
  change.add = u->add;
  auto written = co_await apply_async(spool_, std::move(change));
  if (written.status != SpoolStatus::kOk) {
    ++u->failures;
    spdlog::error("queue {}: the outcomes of its last attempt still cannot be written: {}", id,
                  written.error);
    co_return Ended{false, clock_() + write_backoff_ms(u->failures)};
  }
  spdlog::info("queue {}: the outcomes of its last attempt are written", id);
  write_tracking(u->envelope, u->tracking);
  for (auto dsn_id : u->new_messages) schedule(dsn_id, clock_(), true);
  if (auto it = entries_.find(id); it != entries_.end()) it->second.unwritten.reset();
  co_return Ended{u->finished || u->held, u->next_attempt_ms};
}

// A group has ended: its outcomes go to the spool now. The last group's write
// carries the rest of the attempt too (conclude).
void Scheduler::on_group(const std::shared_ptr<Recording>& rec,
                         std::vector<delivery::RecipientOutcome> outcomes, bool last) {
  try {
    if (rec->final_submitted) {  // nothing may be written after the last write
      spdlog::error("queue {}: outcomes reported after the attempt ended; ignored", rec->id);
      return;
    }
    for (const auto& o : outcomes)
      if (o.outcome.internal && rec->internal.empty()) {
        rec->internal = o.outcome.reply.lines.empty() ? "" : o.outcome.reply.lines.front();
        rec->internal_recipient = rec->env.recipients.at(o.index).address;
      }
    if (last) {
      submit(rec, conclude(*rec, outcomes, false), true);
      return;
    }
    submit(rec, recorder_.record_group(rec->env, rec->content, outcomes, clock_()), false);
  } catch (const std::exception& e) {  // the attempt's boundary holds the message
    if (rec->error.empty()) rec->error = e.what();
  }
}

// The attempt's last write: the last outcomes (or expiry), the next attempt,
// the delay notice, removal, and what the administrator asked for meanwhile.
AttemptResult Scheduler::conclude(Recording& rec,
                                  const std::vector<delivery::RecipientOutcome>& outcomes,
                                  bool expired) {
  std::int64_t now = clock_();
  AttemptResult result;
  if (expired) {
    auto days = config_.queue.expire_ms / 3'600'000.0;
    result =
        recorder_.fail_pending(rec.env, rec.content,
                               smtp::Reply(550, "5.4.7",
                                           "Delivery time expired: gave up after " +
                                               std::to_string(static_cast<int>(days)) + " hours"),
                               now);
  } else {
    result = recorder_.record(rec.env, rec.content, outcomes, now);
  }
  auto it = entries_.find(rec.id);
  auto after = it != entries_.end() ? it->second.after : Entry::After::kNothing;
  if (after == Entry::After::kBounce && !result.finished) {
    auto more = recorder_.fail_pending(
        rec.env, rec.content, smtp::Reply(550, "5.0.0", "Bounced by the administrator"), now);
    for (auto& m : result.change.add) more.change.add.push_back(std::move(m));
    more.tracking.insert(more.tracking.begin(), result.tracking.begin(), result.tracking.end());
    more.new_messages.insert(more.new_messages.end(), result.new_messages.begin(),
                             result.new_messages.end());
    result = std::move(more);
  } else if (after == Entry::After::kDelete) {
    result.change.update.clear();
    result.change.remove = {rec.id};
    result.finished = true;
  }
  if (after == Entry::After::kBounce || after == Entry::After::kDelete)
    it->second.after = Entry::After::kNothing;  // done with this write
  // tern failed inside for some recipient: what the others reached is recorded
  // (never delivered twice), and the message waits for the administrator.
  if (!rec.internal.empty() && !result.finished) {
    rec.env.held = held_reason(rec.id, rec.internal);
    for (auto& u : result.change.update)
      if (u.id == rec.id) u.held = rec.env.held;
    result.tracking.push_back({"HOLD", rec.id, rec.internal_recipient, "", rec.env.held});
    result.held = true;
  }
  return result;
}

// Hands one write to the spool at once (writes keep their order there). A
// group's write carries the whole current envelope; notices that an earlier
// write failed to store go along.
void Scheduler::submit(const std::shared_ptr<Recording>& rec, AttemptResult result, bool final) {
  auto batch = std::make_shared<Batch>();
  batch->final = final;
  SpoolChange change = std::move(result.change);
  if (!final) change.update.push_back(rec->env);
  for (auto& m : rec->failed_add) change.add.push_back(std::move(m));
  rec->failed_add.clear();
  batch->add = change.add;  // kept to be written again if this write fails
  batch->tracking = std::move(rec->failed_tracking);
  rec->failed_tracking.clear();
  batch->tracking.insert(batch->tracking.end(), result.tracking.begin(), result.tracking.end());
  batch->new_messages = std::move(rec->failed_new);
  rec->failed_new.clear();
  batch->new_messages.insert(batch->new_messages.end(), result.new_messages.begin(),
                             result.new_messages.end());
  if (final) {
    rec->final_submitted = true;
    rec->final.finished = result.finished;
    rec->final.held = result.held;
    rec->final.next_attempt_ms = result.next_attempt_ms;
  }
  ++rec->in_flight;
  auto work = std::make_shared<asio::executor_work_guard<asio::any_io_executor>>(executor_);
  // Called once, on a spool thread: it hands its references to the loop.
  spool_.apply(std::move(change), [this, rec, batch, work](CommitResult r) mutable {
    auto ex = work->get_executor();
    asio::post(ex, [this, rec = std::move(rec), batch = std::move(batch), work = std::move(work),
                    r = std::move(r)] { written(*rec, *batch, r); });
  });
}

void Scheduler::written(Recording& rec, Batch& batch, const CommitResult& result) {
  if (result.status == SpoolStatus::kOk) {
    write_tracking(rec.env, batch.tracking);
    for (auto dsn_id : batch.new_messages) schedule(dsn_id, clock_(), true);
  } else {
    spdlog::error("queue {}: cannot record delivery outcomes: {}; kept, written again later",
                  rec.id, result.error);
    for (auto& m : batch.add) rec.failed_add.push_back(std::move(m));
    rec.failed_tracking.insert(rec.failed_tracking.end(), batch.tracking.begin(),
                               batch.tracking.end());
    rec.failed_new.insert(rec.failed_new.end(), batch.new_messages.begin(),
                          batch.new_messages.end());
    if (batch.final) rec.final_failed = true;
  }
  if (--rec.in_flight == 0) rec.idle.cancel();
}

net::awaitable<void> Scheduler::all_written(Recording& rec) {
  while (rec.in_flight > 0) {
    rec.idle.expires_at(asio::steady_timer::time_point::max());
    co_await rec.idle.async_wait(net::use_tuple);
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
      entries_.erase(it);
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

void Scheduler::write_tracking(const Envelope& env, const std::vector<TrackingRecord>& tracking) {
  for (const auto& t : tracking)
    tracking_.write(
        {t.event, t.id, env.message_id, env.sender, t.recipient, t.remote, env.size, t.detail});
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
