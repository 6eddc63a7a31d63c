#include "delivery/dispatcher.h"

#include <asio/co_spawn.hpp>
#include <asio/use_awaitable.hpp>
#include <map>

#include "delivery/maildir.h"
#include "smtp/address.h"
#include "util/text.h"

namespace tern::delivery {

Dispatcher::Dispatcher(asio::any_io_executor executor, const config::Config& config,
                       asio::thread_pool& blocking, DestinationPool& pool)
    : executor_(std::move(executor)), config_(config), blocking_(blocking), pool_(pool) {}

net::awaitable<Outcome> Dispatcher::to_maildir(const config::Mailbox& mailbox,
                                               const queue::Envelope& envelope,
                                               std::string_view content,
                                               const std::string& recipient) {
  // The task owns copies: it may outlive this coroutine if the server stops.
  auto task = [path = mailbox.maildir, copy = std::string(content), sender = envelope.sender,
               recipient, host = config_.hostname]() -> net::awaitable<Outcome> {
    co_return deliver_to_maildir(path, MaildirMessage{copy, sender, recipient, host});
  };
  co_return co_await asio::co_spawn(blocking_, std::move(task), asio::use_awaitable);
}

net::awaitable<std::vector<RecipientOutcome>> Dispatcher::deliver(
    const queue::Envelope& envelope, std::string_view content,
    const std::vector<std::size_t>& recipients) {
  std::vector<RecipientOutcome> out;
  std::map<std::string, std::vector<std::size_t>> remote;  // domain → recipients
  std::map<std::string, std::pair<config::Endpoint, std::vector<std::size_t>>> lmtp;
  for (auto i : recipients) {
    const auto& r = envelope.recipients[i];
    auto address = smtp::parse_address(r.address);
    if (!r.local) {
      remote[address ? address->domain_key() : std::string()].push_back(i);
      continue;
    }
    const auto* mailbox = config_.find_mailbox(
        address ? address->unquoted_local() + "@" + address->domain : r.address);
    if (!mailbox) {  // removed from the configuration since the message came in
      out.push_back(
          {i, Outcome::permanent_failure(Scope::kRecipient,
                                         smtp::Reply(550, "5.1.1", "User unknown"), "local")});
    } else if (mailbox->lmtp) {
      auto& group = lmtp[mailbox->lmtp->str()];
      group.first = *mailbox->lmtp;
      group.second.push_back(i);
    } else {
      // (GCC 12 miscompiles co_await inside a braced initializer: await first.)
      Outcome outcome = co_await to_maildir(*mailbox, envelope, content, mailbox->address);
      out.push_back({i, std::move(outcome)});
    }
  }
  for (auto& [key, group] : lmtp) {
    auto results = co_await pool_.deliver_lmtp(group.first, {&envelope, &group.second, content});
    out.insert(out.end(), results.begin(), results.end());
  }
  for (auto& [domain, group] : remote) {
    auto results = co_await pool_.deliver_remote(domain, {&envelope, &group, content});
    out.insert(out.end(), results.begin(), results.end());
  }
  co_return out;
}

}  // namespace tern::delivery
