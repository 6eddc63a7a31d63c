// Outbound connections by destination (a relayed domain, or an LMTP server):
// the next hops in order — a [[route]] next hop, else the domain's MX route
// (dns/mx_route.h) — tried one after the other on connection failure or 4xx
// (SPEC §4); at most [delivery] max_per_destination transactions at once per
// destination; connections kept open a few seconds after a transaction so the
// next message to the same destination reuses them (like Postfix's connection
// cache). Lives on the delivery event loop; not thread-safe.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "delivery/outcome.h"
#include "delivery/smtp_client.h"
#include "dns/resolver.h"
#include "net/awaitable.h"
#include "queue/envelope.h"

namespace tern::delivery {

struct Transaction {
  const queue::Envelope* envelope = nullptr;
  const std::vector<std::size_t>* recipients = nullptr;  // indices into envelope->recipients
  std::string_view content;
};

class DestinationPool {
 public:
  DestinationPool(asio::any_io_executor executor, const config::Config& config,
                  dns::Resolver& resolver, std::shared_ptr<asio::ssl::context> tls);
  ~DestinationPool();

  // Relayed mail for domain (lower case; "[192.0.2.1]" for an address literal).
  net::awaitable<std::vector<RecipientOutcome>> deliver_remote(const std::string& domain,
                                                               Transaction t);
  // Local mail for mailboxes served over LMTP (RFC 2033) at endpoint.
  net::awaitable<std::vector<RecipientOutcome>> deliver_lmtp(const config::Endpoint& endpoint,
                                                             Transaction t);
  // Closes the kept connections (shutdown).
  net::awaitable<void> close_idle();

 private:
  struct Hop {
    std::string name;  // for reports and SNI
    asio::ip::tcp::endpoint endpoint;
  };
  struct Plan {
    std::vector<Hop> hops;
    std::optional<Outcome> failure;  // set when there is no hop to try
  };
  struct Idle {
    std::unique_ptr<SmtpClient> client;
    std::chrono::steady_clock::time_point since;
  };
  struct Destination {
    std::deque<Idle> idle;
    unsigned active = 0;
    bool sweeping = false;  // a sweep() runs for the kept connections
    std::list<asio::steady_timer*> waiting;
  };

  net::awaitable<std::vector<RecipientOutcome>> deliver(const std::string& key, bool lmtp,
                                                        Plan plan, Transaction t);
  net::awaitable<std::optional<std::vector<RecipientOutcome>>> try_idle(Destination& d,
                                                                        Transaction t);
  net::awaitable<Plan> plan_remote(const std::string& domain);
  net::awaitable<Plan> plan_endpoint(const std::string& name, const config::Endpoint& endpoint,
                                     std::uint16_t default_port);
  net::awaitable<void> acquire(Destination& d);
  void release(Destination& d);
  void keep(const std::string& key, std::unique_ptr<SmtpClient> client);
  net::awaitable<void> sweep(std::string key);
  ClientOptions options(const std::string& peer_name, bool lmtp) const;

  asio::any_io_executor executor_;
  const config::Config& config_;
  dns::Resolver& resolver_;
  std::shared_ptr<asio::ssl::context> tls_;
  std::unordered_map<std::string, Destination> destinations_;
};

// Every outcome is a temporary failure of the connection or host: the next
// host should be tried.
bool host_failure(const std::vector<RecipientOutcome>& outcomes);
// The same outcome for every listed recipient.
std::vector<RecipientOutcome> all_recipients(const std::vector<std::size_t>& recipients,
                                             const Outcome& outcome);

}  // namespace tern::delivery
