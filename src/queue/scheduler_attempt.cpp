// One delivery attempt of the scheduler (scheduler.h): the message read from
// the spool, its recipients handed to the deliverer, and each group's outcomes
// written as that group ends (on_group, submit), the last write carrying the
// next attempt, the notices and the removal (conclude). A write that fails is
// kept (Unwritten) and written again before the message is delivered again
// (rewrite); a spool that cannot be read postpones the attempt.
#include "queue/scheduler.h"

#include <spdlog/spdlog.h>
#include <algorithm>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <memory>

#include "queue/spool_async.h"
#include "util/text.h"

namespace tern::queue {

namespace {
// How long a status write that failed waits before it is tried again.
std::int64_t write_backoff_ms(std::uint32_t failures) {
  return std::min<std::int64_t>(60'000, 1'000ll << std::min<std::uint32_t>(failures, 6));
}
}  // namespace

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
  if (auto u = unwritten_of(*rec)) {
    entry.unwritten = u;
    co_return Ended{false, clock_() + write_backoff_ms(u->failures)};
  }
  co_return Ended{rec->final.finished || rec->final.held, rec->final.next_attempt_ms};
}

// What the attempt's failed writes left to write again; null when all went in.
std::shared_ptr<Scheduler::Unwritten> Scheduler::unwritten_of(Recording& rec) {
  if (!rec.final_failed && rec.failed_add.empty() && rec.failed_tracking.empty()) return nullptr;
  auto u = std::make_shared<Unwritten>();
  u->envelope = rec.env;
  u->update = rec.final_failed && !rec.final.finished;
  u->remove = rec.final_failed && rec.final.finished;
  u->add = std::move(rec.failed_add);
  u->tracking = std::move(rec.failed_tracking);
  u->new_messages = std::move(rec.failed_new);
  u->finished = rec.final.finished;
  u->held = rec.final.held;
  u->next_attempt_ms = rec.final.next_attempt_ms;
  return u;
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

}  // namespace tern::queue
