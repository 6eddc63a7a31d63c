// The admin listener of `tern serve` (SPEC §5): HTTP/1.1 on the delivery
// loop, beside the scheduler whose actions it calls, one coroutine per
// connection. GET /metrics and the web queue viewer (GET /, /viewer.js,
// /viewer.css) need no token; every /api/ route needs
// "Authorization: Bearer <token>" (else 401). Bounds: a request's head
// 16 KB (431), its body 64 KB (413), the whole request 10 s from its first
// byte (408), an idle keep-alive connection 30 s, 64 connections at once.
// Blocking spool reads run on the blocking pool, never on the loop.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/thread_pool.hpp>
#include <atomic>
#include <memory>
#include <string>

#include "admin/http.h"
#include "config/config.h"
#include "net/awaitable.h"

namespace tern::queue {
class Scheduler;
class Spool;
}  // namespace tern::queue

namespace tern::admin {

inline constexpr std::size_t kMaxHead = 16 * 1024;
inline constexpr std::size_t kMaxBody = 64 * 1024;
inline constexpr auto kRequestTimeout = std::chrono::seconds(10);
inline constexpr auto kIdleTimeout = std::chrono::seconds(30);
inline constexpr unsigned kMaxConnections = 64;

// A listening socket for [admin] address, bound (before tern drops root)
// on io; throws std::runtime_error naming the address.
asio::ip::tcp::acceptor bind_listener(asio::io_context& io, const config::Endpoint& address);

class AdminServer {
 public:
  // acceptor: a listening socket, whose descriptor the server takes over on
  // executor (the scheduler's).
  AdminServer(asio::any_io_executor executor, asio::ip::tcp::acceptor& acceptor, std::string token,
              queue::Spool& spool, queue::Scheduler& scheduler, asio::thread_pool& blocking);
  ~AdminServer();
  void start();
  // Closes the listening socket; called on the server's executor.
  void stop();

  // The answer to one request (admin_routes.cpp); never throws.
  net::awaitable<Response> respond(const Request& request);

 private:
  struct Shared;
  net::awaitable<void> accept_loop();
  net::awaitable<void> serve(asio::ip::tcp::socket socket);
  net::awaitable<Response> route(const Request& request);
  net::awaitable<Response> api(const Request& request, const std::vector<std::string>& path,
                               const Target& target);
  net::awaitable<Response> message(const std::string& method, std::uint64_t id,
                                   const std::string& action);
  net::awaitable<Response> trail(const Target& target);
  net::awaitable<Response> metrics();

  asio::any_io_executor executor_;
  asio::ip::tcp::acceptor acceptor_;
  std::string token_;
  queue::Spool& spool_;
  queue::Scheduler& scheduler_;
  asio::thread_pool& blocking_;
  std::shared_ptr<std::atomic<unsigned>> connections_;
};

}  // namespace tern::admin
