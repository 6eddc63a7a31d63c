// Delivers one queued message to its pending recipients and reports an
// outcome for each (SPEC §4): recipients in accepted domains go to their
// [[mailbox]] — a Maildir (written on the blocking pool) or an LMTP server —
// and the others, grouped by domain, to the next hops of DestinationPool, the
// domains side by side so a slow one does not hold the others back. Outcomes
// are reported per group as each ends (delivery/deliverer.h): every Maildir
// recipient of the message as one group first, then each LMTP server, then
// each remote domain. The whole attempt ends within [delivery]
// attempt_timeout; an error inside one group becomes an internal failure of
// its recipients (the scheduler holds the message with the reason). Lives on
// the delivery event loop.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/thread_pool.hpp>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "delivery/deliverer.h"
#include "delivery/destination_pool.h"
#include "delivery/outcome.h"
#include "net/awaitable.h"
#include "queue/envelope.h"

namespace tern::delivery {

class Dispatcher final : public Deliverer {
 public:
  Dispatcher(asio::any_io_executor executor, const config::Config& config,
             asio::thread_pool& blocking, DestinationPool& pool);

  net::awaitable<void> deliver(const queue::Envelope& envelope, std::string_view content,
                               const std::vector<std::size_t>& recipients, bool may_be_repeat,
                               GroupReport report) override;
  // Asked before each local or remote delivery completes; false: a
  // temporary failure instead (a cluster node whose lease may have run out).
  void set_commit_gate(std::function<bool()> gate);

 private:
  net::awaitable<Outcome> to_maildir(const config::Mailbox& mailbox,
                                     const queue::Envelope& envelope, std::string_view content,
                                     const std::string& recipient, std::size_t index,
                                     bool may_be_repeat);
  // Every domain at once, each reported as it ends (they are the last groups).
  net::awaitable<void> to_remote(const std::map<std::string, std::vector<std::size_t>>& groups,
                                 Transaction base, const GroupReport& report);

  asio::any_io_executor executor_;
  const config::Config& config_;
  asio::thread_pool& blocking_;
  DestinationPool& pool_;
  std::function<bool()> gate_;
};

}  // namespace tern::delivery
