// Outbound connections by destination (a relayed domain, or an LMTP server):
// the next hops in order — a [[route]] next hop, else the domain's MX route
// (dns/mx_route.h) or its address literal — tried one after the other on
// connection failure or 4xx (SPEC §4); at most [delivery] max_per_destination
// transactions at once per destination and max_connections remote ones in
// all; connections kept open a few seconds after a transaction so the next
// message to the same destination reuses them (like Postfix's connection
// cache). Lives on the delivery event loop; not thread-safe.
//
// What one attempt may cost (SPEC §4 Robustness): addresses from DNS or the
// envelope pass NextHopPolicy (special-use ones are skipped, and the reason
// ends up in the recipient's reply); at most kMaxHopHosts MX hosts and
// kMaxHopAddresses addresses are tried; nothing runs past Transaction::deadline.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "delivery/next_hop_policy.h"
#include "delivery/outcome.h"
#include "delivery/smtp_client.h"
#include "dns/resolver.h"
#include "net/awaitable.h"
#include "queue/envelope.h"

namespace tern::delivery {

// One attempt tries at most this many MX hosts, and connects to at most this
// many addresses in all (Postfix's smtp_mx_session_limit and
// smtp_mx_address_limit play the same part): a zone with hundreds of records
// cannot make one delivery cost hundreds of connections.
constexpr std::size_t kMaxHopHosts = 5;
constexpr std::size_t kMaxHopAddresses = 10;

struct Transaction {
  const queue::Envelope* envelope = nullptr;
  const std::vector<std::size_t>* recipients = nullptr;  // indices into envelope->recipients
  std::string_view content;
  std::optional<TimePoint> deadline;  // the attempt's time budget ([delivery] attempt_timeout)
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
  // Asked before each transaction's end of data (ClientOptions::may_commit).
  void set_commit_gate(std::function<bool()> gate) { gate_ = std::move(gate); }

 private:
  std::function<bool()> gate_;
  struct Hop {
    std::string name;  // for reports and SNI
    asio::ip::tcp::endpoint endpoint;
  };
  struct Plan {
    std::vector<Hop> hops;
    std::optional<Outcome> failure;  // set when there is no hop to try
    std::vector<std::string> notes;  // hops skipped, and why (bounded)
    std::size_t more_notes = 0;      // skipped beyond those noted
    void note(std::string text);
    std::string notes_text() const;  // "a; b; and 3 more skipped"
  };
  struct Idle {
    std::unique_ptr<SmtpClient> client;
    std::chrono::steady_clock::time_point since;
  };
  struct Destination {
    std::deque<Idle> idle;
    unsigned active = 0;
    bool remote = false;
    bool sweeping = false;  // a sweep() runs for the kept connections
    std::list<asio::steady_timer*> waiting;
  };

  net::awaitable<std::vector<RecipientOutcome>> deliver(const std::string& key, bool lmtp,
                                                        Plan plan, Transaction t);
  net::awaitable<std::optional<std::vector<RecipientOutcome>>> try_idle(Destination& d,
                                                                        Transaction t);
  net::awaitable<Plan> plan_remote(const std::string& domain);
  Plan plan_literal(const std::string& domain) const;
  net::awaitable<Plan> plan_mx(const std::string& domain);
  net::awaitable<Plan> plan_endpoint(const std::string& name, const config::Endpoint& endpoint,
                                     std::uint16_t default_port);
  net::awaitable<void> acquire(Destination& d);
  void release(Destination& d);
  void wake_one(std::list<asio::steady_timer*>& list);
  net::awaitable<void> wait_in(std::list<asio::steady_timer*>& list);
  void keep(const std::string& key, std::unique_ptr<SmtpClient> client);
  net::awaitable<void> sweep(std::string key);
  ClientOptions options(const std::string& peer_name, bool lmtp,
                        std::optional<TimePoint> deadline) const;

  asio::any_io_executor executor_;
  const config::Config& config_;
  dns::Resolver& resolver_;
  std::shared_ptr<asio::ssl::context> tls_;
  NextHopPolicy policy_;
  std::unordered_map<std::string, Destination> destinations_;
  unsigned remote_active_ = 0;                     // remote transactions, all destinations
  std::list<asio::steady_timer*> remote_waiting_;  // waiting for max_connections only
};

// Every outcome is a temporary failure of the connection or host: the next
// host should be tried.
bool host_failure(const std::vector<RecipientOutcome>& outcomes);
// The same outcome for every listed recipient.
std::vector<RecipientOutcome> all_recipients(const std::vector<std::size_t>& recipients,
                                             const Outcome& outcome);

}  // namespace tern::delivery
