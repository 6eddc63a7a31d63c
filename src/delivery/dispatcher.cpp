#include "delivery/dispatcher.h"

#include <asio/co_spawn.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <map>

#include "delivery/maildir.h"
#include "delivery/smtp_client_wire.h"
#include "log/metrics.h"
#include "smtp/address.h"
#include "util/text.h"

namespace tern::delivery {

Dispatcher::Dispatcher(asio::any_io_executor executor, const config::Config& config,
                       asio::thread_pool& blocking, DestinationPool& pool)
    : executor_(std::move(executor)), config_(config), blocking_(blocking), pool_(pool) {}

net::awaitable<Outcome> Dispatcher::to_maildir(const config::Mailbox& mailbox,
                                               const queue::Envelope& envelope,
                                               std::string_view content,
                                               const std::string& recipient, std::size_t index,
                                               bool may_be_repeat) {
  if (gate_ && !gate_())
    co_return Outcome::temporary_failure(Scope::kRecipient, lease_lost_reply(mailbox.address), {});
  // The task owns copies: it may outlive this coroutine if the server stops.
  MaildirMessage m{{}, envelope.sender, recipient, config_.hostname};
  m.id = envelope.id;  // the file name makes a repeated delivery find the first
  m.arrival_ms = envelope.arrival_ms;
  m.recipient_index = index;
  m.may_be_repeat = may_be_repeat;
  auto task = [path = mailbox.maildir, copy = std::string(content),
               m = std::move(m)]() mutable -> net::awaitable<Outcome> {
    m.content = copy;
    co_return deliver_to_maildir(path, m);
  };
  co_return co_await asio::co_spawn(blocking_, std::move(task), asio::use_awaitable);
}

void Dispatcher::set_commit_gate(std::function<bool()> gate) {
  gate_ = gate;
  pool_.set_commit_gate(std::move(gate));
}

net::awaitable<void> Dispatcher::deliver(const queue::Envelope& envelope, std::string_view content,
                                         const std::vector<std::size_t>& recipients,
                                         bool may_be_repeat, GroupReport report) {
  std::vector<std::pair<std::size_t, std::shared_ptr<const config::Mailbox>>>
      maildir;                                             // null: no mailbox
  std::map<std::string, std::vector<std::size_t>> remote;  // domain → recipients
  std::map<std::string, std::pair<config::Endpoint, std::vector<std::size_t>>> lmtp;
  for (auto i : recipients) {
    const auto& r = envelope.recipients[i];
    auto address = smtp::parse_address(r.address);
    if (!r.local) {
      remote[address ? address->domain_key() : std::string()].push_back(i);
      continue;
    }
    auto mailbox = config_.find_mailbox(address ? address->unquoted_local() + "@" + address->domain
                                                : r.address);
    if (mailbox && mailbox->lmtp) {
      auto& group = lmtp[mailbox->lmtp->str()];
      group.first = *mailbox->lmtp;
      group.second.push_back(i);
    } else {
      maildir.emplace_back(i, mailbox);
    }
  }
  std::size_t groups_left = (maildir.empty() ? 0 : 1) + lmtp.size() + remote.size();
  if (!maildir.empty()) {
    std::vector<RecipientOutcome> out;
    for (const auto& [i, mailbox] : maildir) {
      if (!mailbox) {  // removed from the configuration since the message came in
        out.push_back(
            {i, Outcome::permanent_failure(Scope::kRecipient,
                                           smtp::Reply(550, "5.1.1", "User unknown"), "local")});
        continue;
      }
      // (GCC 12 miscompiles co_await inside a braced initializer: await first.)
      Outcome outcome;
      const auto started = std::chrono::steady_clock::now();
      try {
        outcome =
            co_await to_maildir(*mailbox, envelope, content, mailbox->address, i, may_be_repeat);
      } catch (const std::exception& e) {  // recorded with the others; the message is held
        outcome = internal_failure(e.what());
      }
      log::metrics().delivery_duration(log::Via::kMaildir).observe_since(started);
      out.push_back({i, std::move(outcome)});
    }
    report(std::move(out), --groups_left == 0);
  }
  const TimePoint deadline =
      std::chrono::steady_clock::now() + Millis(config_.delivery.attempt_timeout_ms);
  for (auto& [key, group] : lmtp) {
    std::vector<RecipientOutcome> results;
    std::string failed;
    const auto started = std::chrono::steady_clock::now();
    try {
      results =
          co_await pool_.deliver_lmtp(group.first, {&envelope, &group.second, content, deadline});
    } catch (const std::exception& e) {
      failed = e.what();
    }
    log::metrics().delivery_duration(log::Via::kLmtp).observe_since(started);
    if (!failed.empty()) {
      results.clear();
      for (auto i : group.second) results.push_back({i, internal_failure(failed)});
    }
    report(std::move(results), --groups_left == 0);
  }
  if (!remote.empty()) co_await to_remote(remote, {&envelope, nullptr, content, deadline}, report);
}

// Every domain's transaction at once, each in its own coroutine; each is
// reported as it ends, and this returns when all have ended. Everything lives
// on the delivery loop: no locking.
net::awaitable<void> Dispatcher::to_remote(
    const std::map<std::string, std::vector<std::size_t>>& groups, Transaction base,
    const GroupReport& report) {
  struct Shared {
    std::size_t running = 0;
    asio::steady_timer all_done;
  };
  auto shared = std::make_shared<Shared>(
      Shared{groups.size(), asio::steady_timer(executor_, TimePoint::max())});
  for (const auto& [domain, group] : groups) {
    Transaction t = base;
    t.recipients = &group;
    auto task = [this, &domain, t]() { return pool_.deliver_remote(domain, t); };
    asio::co_spawn(executor_, std::move(task),
                   [shared, &group, &report, started = std::chrono::steady_clock::now()](
                       std::exception_ptr e, std::vector<RecipientOutcome> results) {
                     log::metrics().delivery_duration(log::Via::kSmtp).observe_since(started);
                     // A domain whose delivery threw: its recipients get an internal
                     // failure; what the others reached is recorded.
                     if (e) {
                       std::string what = "unknown error";
                       try {
                         std::rethrow_exception(e);
                       } catch (const std::exception& ex) {
                         what = ex.what();
                       } catch (...) {
                       }
                       results.clear();
                       for (auto i : group) results.push_back({i, internal_failure(what)});
                     }
                     bool last = --shared->running == 0;
                     if (last) shared->all_done.cancel();  // resumes deliver() after this handler
                     report(std::move(results), last);
                   });
  }
  if (shared->running > 0) co_await shared->all_done.async_wait(net::use_tuple);
}

}  // namespace tern::delivery
