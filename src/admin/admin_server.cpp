// See admin_server.h: the listening socket, the accept loop and one
// connection's requests with their bounds. The routes are admin_routes.cpp.
#include "admin/admin_server.h"

#include <spdlog/spdlog.h>
#include <array>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace tern::admin {

using asio::ip::tcp;

namespace {

// How long an answer may take to leave once the request is read.
constexpr auto kWriteTimeout = std::chrono::seconds(10);

// One connection's socket and its deadline. When the deadline passes, the
// pending read or write is cancelled (expired is set); when it passes again
// (a client that does not read its 408), the socket is closed.
struct Watched {
  explicit Watched(tcp::socket s) : socket(std::move(s)), timer(socket.get_executor()) {}
  tcp::socket socket;
  asio::steady_timer timer;
  bool expired = false;

  static void arm(const std::shared_ptr<Watched>& self, std::chrono::steady_clock::duration d) {
    self->timer.expires_after(d);
    self->timer.async_wait([weak = std::weak_ptr<Watched>(self)](std::error_code ec) {
      auto w = weak.lock();
      if (ec || !w) return;
      std::error_code ignored;
      if (w->expired) {
        w->socket.close(ignored);
      } else {
        w->expired = true;
        w->socket.cancel(ignored);
      }
    });
  }
};

// The count of live connections, given back when the connection ends.
struct Slot {
  std::shared_ptr<std::atomic<unsigned>> count;
  ~Slot() { --*count; }
};

Response error_response(int status, const std::string& message) {
  Response r;
  r.status = status;
  r.body = nlohmann::json{{"error", message}}.dump();
  r.close = true;
  return r;
}

}  // namespace

tcp::acceptor bind_listener(asio::io_context& io, const config::Endpoint& address) {
  std::error_code ec;
  auto ip = asio::ip::make_address(address.host, ec);
  if (ec)
    throw std::runtime_error("[admin] address " + address.str() +
                             ": the host must be an IP address such as 127.0.0.1 or [::1]");
  tcp::endpoint endpoint(ip, address.port);
  tcp::acceptor acceptor(io);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("[admin] cannot listen on " + address.str() + ": " + ec.message());
  return acceptor;
}

AdminServer::AdminServer(asio::any_io_executor executor, tcp::acceptor& acceptor, std::string token,
                         queue::Spool& spool, queue::Scheduler& scheduler,
                         asio::thread_pool& blocking)
    : executor_(executor),
      acceptor_(executor),
      token_(std::move(token)),
      spool_(spool),
      scheduler_(scheduler),
      blocking_(blocking),
      connections_(std::make_shared<std::atomic<unsigned>>(0)) {
  auto protocol = acceptor.local_endpoint().protocol();
  acceptor_.assign(protocol, acceptor.release());
}

AdminServer::~AdminServer() {
  std::error_code ignored;
  acceptor_.close(ignored);
}

void AdminServer::start() {
  asio::co_spawn(executor_, accept_loop(), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::error("admin listener stopped: {}", ex.what());
    }
  });
}

void AdminServer::stop() {
  std::error_code ignored;
  acceptor_.close(ignored);
}

net::awaitable<void> AdminServer::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(net::use_tuple);
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
    if (ec) {  // out of descriptors: breathe, go on
      asio::steady_timer pause(executor_, std::chrono::milliseconds(100));
      co_await pause.async_wait(net::use_tuple);
      continue;
    }
    if (connections_->load() >= kMaxConnections) continue;  // the socket closes here
    ++*connections_;
    asio::co_spawn(executor_, serve(std::move(socket)), [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("admin connection ended by an internal error: {}", ex.what());
      }
    });
  }
}

net::awaitable<void> AdminServer::serve(tcp::socket socket) {
  Slot slot{connections_};
  auto conn = std::make_shared<Watched>(std::move(socket));
  RequestParser parser(kMaxHead, kMaxBody);
  std::array<char, 8192> buffer;
  std::string pending;  // bytes read past the request being answered (pipelining)
  for (;;) {
    // A new request: the connection may sit idle this long before it starts.
    Watched::arm(conn, kIdleTimeout);
    bool started = false;
    std::optional<Response> refusal;
    std::optional<Request> request;
    while (!request && !refusal) {
      if (pending.empty()) {
        auto [ec, n] = co_await conn->socket.async_read_some(asio::buffer(buffer), net::use_tuple);
        if (conn->expired) {
          if (started)
            refusal = error_response(408, "the request took too long");
          else
            co_return;  // idle keep-alive connection: closed quietly
          break;
        }
        if (ec) co_return;  // the client left
        pending.assign(buffer.data(), n);
      }
      auto [status, used] = parser.feed(pending);
      pending.erase(0, used);
      if (!started && parser.started()) {  // the whole request has this long from now
        started = true;
        Watched::arm(conn, kRequestTimeout);
      }
      switch (status) {
        case RequestParser::Status::kComplete:
          request = parser.take();
          break;
        case RequestParser::Status::kIncomplete:
          pending.clear();
          break;
        case RequestParser::Status::kBad:
          refusal = error_response(400, "malformed HTTP request");
          break;
        case RequestParser::Status::kHeadTooLarge:
          refusal = error_response(431, "the request line and header fields exceed 16 KB");
          break;
        case RequestParser::Status::kBodyTooLarge:
          refusal = error_response(413, "the request body exceeds 64 KB");
          break;
      }
    }
    Response response;
    if (refusal) {
      response = std::move(*refusal);
    } else {
      response = co_await respond(*request);
    }
    const bool keep_alive = !refusal && request->keep_alive && !response.close;
    std::string text = serialize(response, keep_alive);
    conn->expired = false;
    Watched::arm(conn, kWriteTimeout);
    auto [ec, n] = co_await asio::async_write(conn->socket, asio::buffer(text), net::use_tuple);
    if (ec || conn->expired || !keep_alive) {
      std::error_code ignored;
      conn->socket.shutdown(tcp::socket::shutdown_send, ignored);
      conn->socket.close(ignored);
      co_return;
    }
  }
}

}  // namespace tern::admin
