// The scheduler on a shared spool (PostgreSQL, SPEC §6): the queue is the
// cluster's, and this node indexes only what it leased. It claims due
// messages as its lanes have room, when told mail was queued and every few
// seconds (notifications can be lost), and releases each message when its
// attempt ends so the next attempt may run on any node (docs/cluster.md).
#include <spdlog/spdlog.h>

#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <chrono>
#include <memory>

#include "queue/scheduler.h"

namespace tern::queue {

void Scheduler::poll() {
  if (stopped_) return;
  signal_due();
  auto every = std::min<std::uint64_t>(2000, config_.cluster.lease_ms / 3);
  poll_timer_.expires_after(std::chrono::milliseconds(every));
  poll_timer_.async_wait([this](std::error_code ec) {
    if (!ec) poll();
  });
}

void Scheduler::signal_due() {
  more_due_local_ = more_due_remote_ = true;
  claim_more();
}

// Each lane is asked for as many as it has room for, and only while there may
// be more of its kind to claim: a full lane keeps its flag until a slot frees.
void Scheduler::claim_more() {
  if (!shared_ || stopped_ || claiming_) return;
  auto room = [](std::size_t limit, std::size_t busy) { return limit > busy ? limit - busy : 0; };
  std::size_t local = more_due_local_ ? room(config_.delivery.max_local_deliveries,
                                             running_local_ + due_local_.size())
                                      : 0;
  std::size_t remote = more_due_remote_ ? room(config_.delivery.max_connections,
                                               running_ - running_local_ + due_.size())
                                        : 0;
  if (local == 0 && remote == 0) return;  // asked again when a slot frees (look_now)
  if (local) more_due_local_ = false;
  if (remote) more_due_remote_ = false;
  claiming_ = true;
  auto work = std::make_shared<asio::executor_work_guard<asio::any_io_executor>>(executor_);
  spool_.claim(local, remote, [this, work, local, remote](std::vector<Claim> got) {
    asio::post(work->get_executor(), [this, got = std::move(got), local, remote]() mutable {
      claimed(std::move(got), local, remote);
    });
  });
}

void Scheduler::claimed(std::vector<Claim> got, std::size_t local, std::size_t remote) {
  claiming_ = false;
  std::size_t got_local = 0;
  for (const auto& c : got) got_local += c.local ? 1 : 0;
  if (local && got_local == local) more_due_local_ = true;  // a full batch: perhaps more
  if (remote && got.size() - got_local == remote) more_due_remote_ = true;
  std::int64_t now = clock_();
  for (auto& c : got) {
    auto [it, created] = entries_.try_emplace(c.id);
    if (stopped_ || !created) {  // leased already (cannot happen) or shutting down
      if (created) entries_.erase(it);
      if (stopped_) spool_.release(c.id);
      continue;
    }
    it->second.local = c.local;
    it->second.due = now;
    if (c.action == "delete" || c.action == "bounce") {  // asked while another node held it
      auto after = c.action == "delete" ? Entry::After::kDelete : Entry::After::kBounce;
      claim(c.id);
      asio::co_spawn(executor_, owned(c.id, after),
                     [id = c.id](std::exception_ptr e, std::string reply) {
                       if (e) reply = "failed";
                       spdlog::info("queue {}: administrator's action: {}", id, reply);
                     });
      continue;
    }
    due_of(it->second).insert({now, c.id});
  }
  look_again();
  claim_more();
}

void Scheduler::forget(std::uint64_t id) {
  entries_.erase(id);
  if (shared_) spool_.release(id);
}

}  // namespace tern::queue
