// The real resolver: c-ares driven by the caller's Asio event loop. c-ares
// sockets are watched with stream_descriptors and its retransmissions timed
// with a steady_timer, so a query never blocks the loop. One c-ares channel per
// CaresResolver: make one per event loop and use it only from that loop's
// thread. Destroy it before its io_context; queries still running then
// complete with a temporary failure.
//
// Each query is sent to the configured servers (in order) with `tries`
// attempts per server, the wait doubling each round: with the defaults, one
// silent server costs 1.5 s + 3 s = 4.5 s before kTemporary is returned.
#pragma once

#include <asio/any_io_executor.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "dns/resolver.h"

namespace tern::dns {

struct CaresOptions {
  // "127.0.0.1:5353", "[::1]:53", "192.0.2.53" (port 53); IP addresses only.
  // Empty: the system's resolvers from /etc/resolv.conf.
  std::vector<std::string> servers;
  std::chrono::milliseconds timeout{1500};  // first attempt; doubles each round
  int tries = 2;                            // attempts per server
};

class CaresResolver final : public Resolver {
 public:
  // Throws std::invalid_argument if a server is not "ip[:port]" (the message
  // names it), std::runtime_error if c-ares cannot start.
  CaresResolver(asio::any_io_executor executor, const CaresOptions& options = {});
  ~CaresResolver() override;
  CaresResolver(const CaresResolver&) = delete;
  CaresResolver& operator=(const CaresResolver&) = delete;

  net::awaitable<MxResult> mx(std::string domain) override;
  net::awaitable<AddressResult> addresses(std::string host) override;
  net::awaitable<TxtResult> txt(std::string name) override;

  struct Channel;  // the c-ares channel and its watchers (resolver_cares.cpp)

 private:
  std::shared_ptr<Channel> channel_;
};

// "ip:port,[ip6]:port" for ares_set_servers_ports_csv from CaresOptions::servers;
// throws std::invalid_argument naming the first entry that is not an IP address.
std::string servers_csv(const std::vector<std::string>& servers);

}  // namespace tern::dns
