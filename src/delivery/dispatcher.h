// Delivers one queued message to its pending recipients and reports an
// outcome for each (SPEC §4): recipients in accepted domains go to their
// [[mailbox]] — a Maildir (written on the blocking pool) or an LMTP server —
// and the others, grouped by domain, to the next hops of DestinationPool, the
// domains side by side so a slow one does not hold the others back. The whole
// attempt ends within [delivery] attempt_timeout; an error inside one group
// is passed on after the others have ended (the scheduler holds the message
// with the reason). Lives on the delivery event loop.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/thread_pool.hpp>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "delivery/destination_pool.h"
#include "delivery/outcome.h"
#include "net/awaitable.h"
#include "queue/envelope.h"

namespace tern::delivery {

class Dispatcher {
 public:
  Dispatcher(asio::any_io_executor executor, const config::Config& config,
             asio::thread_pool& blocking, DestinationPool& pool);

  // Outcomes for the listed recipients (indices into envelope.recipients), in
  // no particular order, one for each.
  net::awaitable<std::vector<RecipientOutcome>> deliver(const queue::Envelope& envelope,
                                                        std::string_view content,
                                                        const std::vector<std::size_t>& recipients);

 private:
  net::awaitable<Outcome> to_maildir(const config::Mailbox& mailbox,
                                     const queue::Envelope& envelope, std::string_view content,
                                     const std::string& recipient, std::size_t index);
  net::awaitable<std::vector<RecipientOutcome>> to_remote(
      const std::map<std::string, std::vector<std::size_t>>& groups, Transaction base);

  asio::any_io_executor executor_;
  const config::Config& config_;
  asio::thread_pool& blocking_;
  DestinationPool& pool_;
};

}  // namespace tern::delivery
