// The administrator's actions on the queue (tern queue retry, delete, bounce
// through the control socket), on the delivery loop beside the attempts: an
// action owns its message from before its first suspension until it ends, so
// no attempt starts on it meanwhile, and one on a message being delivered is
// carried out by that attempt's last write (Scheduler::conclude).
#include "queue/scheduler.h"

#include <spdlog/spdlog.h>

#include <limits>

#include "queue/spool_async.h"
#include "util/text.h"

namespace tern::queue {

namespace {
std::string unavailable_reply(const std::string& what) {
  return "error: the spool cannot be read now (" + util::printable(what) + "); try again later";
}
}  // namespace

void Scheduler::claim(std::uint64_t id) {
  admin_.insert(id);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  if (!it->second.running) due_of(it->second).erase({it->second.due, id});
  it->second.running = true;
}

void Scheduler::release(std::uint64_t id, bool removed) {
  admin_.erase(id);
  if (removed) held_.erase(id);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  if (removed || shared_) {  // shared spool: the next attempt may run on any node
    forget(id);
    return;
  }
  it->second.running = false;
  due_of(it->second).insert({it->second.due, id});
  timer_.cancel();
}

std::string Scheduler::busy(std::uint64_t id) const {
  return "error: " + std::to_string(id) +
         " is being changed by another queue command; try again when it has ended";
}

net::awaitable<std::string> Scheduler::retry(std::optional<std::uint64_t> id) {
  std::int64_t now = clock_();
  if (id && admin_.count(*id)) co_return busy(*id);
  if (id && !entries_.count(*id)) {  // not scheduled: perhaps held, then released
    std::optional<Envelope> env;
    std::string unreadable;
    try {
      env = spool_.find(*id);
    } catch (const SpoolUnavailable& e) {
      unreadable = e.what();
    } catch (const std::exception& e) {
      co_return "error: " + std::to_string(*id) + " cannot be read (" + e.what() +
          "); it stays held: tern queue delete removes it";
    }
    if (!unreadable.empty()) co_return unavailable_reply(unreadable);
    if (!env || env->held.empty())
      co_return "error: no message with InternalId " + std::to_string(*id) + " in the queue";
    env->held.clear();
    env->next_attempt_ms = now;
    SpoolChange change;
    change.update.push_back(*env);
    claim(*id);
    auto written = co_await apply_async(spool_, std::move(change));
    release(*id, false);
    if (written.status != SpoolStatus::kOk) co_return "error: " + written.error;
    held_.erase(*id);
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
  co_return co_await act(id, Entry::After::kDelete);
}

net::awaitable<std::string> Scheduler::bounce(std::uint64_t id) {
  co_return co_await act(id, Entry::After::kBounce);
}

net::awaitable<std::string> Scheduler::act(std::uint64_t id, Entry::After what) {
  const bool remove = what == Entry::After::kDelete;
  if (admin_.count(id)) co_return busy(id);
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.running) {
    it->second.after = what;
    co_return "ok: " + std::to_string(id) +
        (remove ? " will be deleted when its current attempt ends"
                : " will be returned to its sender when its current attempt ends");
  }
  claim(id);  // before the first suspension: no attempt starts on it now
  co_return co_await owned(id, what);
}

net::awaitable<std::string> Scheduler::owned(std::uint64_t id, Entry::After what) {
  bool removed = false;
  std::string reply;
  try {
    if (what == Entry::After::kDelete)
      reply = co_await remove_owned(id, removed);
    else
      reply = co_await bounce_owned(id, removed);
  } catch (...) {
    release(id, removed);
    throw;
  }
  release(id, removed);
  co_return reply;
}

net::awaitable<std::string> Scheduler::remove_owned(std::uint64_t id, bool& removed) {
  std::shared_ptr<Unwritten> u;
  if (auto it = entries_.find(id); it != entries_.end()) u = it->second.unwritten;
  std::optional<Envelope> env;
  std::string unreadable;
  try {
    env = spool_.find(id);
  } catch (const SpoolUnavailable& e) {
    unreadable = e.what();
  } catch (const std::exception&) {  // unreadable: still the administrator's to remove
    env = Envelope{};
    env->id = id;
  }
  if (!env && u) env = u->envelope;
  if (!unreadable.empty()) co_return unavailable_reply(unreadable);
  if (!env) co_return "error: no message with InternalId " + std::to_string(id) + " in the queue";
  SpoolChange change;
  change.remove.push_back(id);
  if (u) change.add = u->add;  // notices owed for outcomes already known
  auto r = co_await apply_async(spool_, std::move(change));
  if (r.status != SpoolStatus::kOk) co_return "error: " + r.error;
  removed = true;
  if (u) {
    write_tracking(u->envelope, u->tracking);
    for (auto dsn_id : u->new_messages) schedule(dsn_id, clock_(), true);
  }
  tracking_.write({"FAIL", id, env->message_id, env->sender, "", "", env->size,
                   "deleted by the administrator"});
  co_return "ok: " + std::to_string(id) + " deleted (no notice sent)";
}

net::awaitable<std::string> Scheduler::bounce_owned(std::uint64_t id, bool& removed) {
  std::shared_ptr<Unwritten> u;
  if (auto it = entries_.find(id); it != entries_.end()) u = it->second.unwritten;
  // The newest state: outcomes not yet written count (never returned after delivery).
  std::optional<Envelope> env;
  std::optional<std::string> content;
  std::string unreadable;
  try {
    env = u ? std::optional<Envelope>(u->envelope) : spool_.find(id);
    content = spool_.content(id);
  } catch (const SpoolUnavailable& e) {
    unreadable = e.what();
  }
  if (!unreadable.empty()) co_return unavailable_reply(unreadable);
  if (!env || !content)
    co_return "error: no message with InternalId " + std::to_string(id) + " in the queue";
  auto result = recorder_.fail_pending(
      *env, *content, smtp::Reply(550, "5.0.0", "Bounced by the administrator"), clock_());
  if (u) {
    result.change.add.insert(result.change.add.begin(), u->add.begin(), u->add.end());
    result.tracking.insert(result.tracking.begin(), u->tracking.begin(), u->tracking.end());
    result.new_messages.insert(result.new_messages.end(), u->new_messages.begin(),
                               u->new_messages.end());
  }
  auto r = co_await apply_async(spool_, result.change);
  if (r.status != SpoolStatus::kOk) co_return "error: " + r.error;
  removed = true;
  write_tracking(*env, result.tracking);
  for (auto dsn_id : result.new_messages) schedule(dsn_id, clock_(), true);
  co_return "ok: " + std::to_string(id) + " returned to " +
      (env->sender.empty() ? "<> (no notice)" : env->sender);
}

// What tern_queue_messages shows (the metrics scrape posts this to the loop).
log::QueueCounts Scheduler::queue_counts() const {
  log::QueueCounts c;
  c.active = static_cast<std::int64_t>(running_);
  const std::pair<std::int64_t, std::uint64_t> now{clock_(),
                                                   std::numeric_limits<std::uint64_t>::max()};
  for (const auto* lane : {&due_, &due_local_}) {
    // Both ends walk towards now: the cost is the smaller side, not the queue.
    auto split = lane->upper_bound(now);
    auto front = lane->begin(), back = lane->end();
    std::int64_t steps = 0;
    while (front != split && back != split) {
      ++front;
      --back;
      ++steps;
    }
    auto size = static_cast<std::int64_t>(lane->size());
    std::int64_t due = front == split ? steps : size - steps;
    c.queued += due;
    c.deferred += size - due;
  }
  for (const auto& [id, quarantined] : held_) ++(quarantined ? c.quarantined : c.held);
  return c;
}

}  // namespace tern::queue
