// One 421 and a close for a connection that is not admitted (refusal.h).
#include "server/refusal.h"

#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <memory>

namespace tern::server {

namespace {
// Long enough for any client to read a few dozen bytes, short enough that a
// flood of refused connections does not pile up.
constexpr auto kRefusalDeadline = std::chrono::seconds(5);
}  // namespace

net::awaitable<void> refuse(asio::ip::tcp::socket socket, smtp::Reply reply, std::string reason,
                            log::ProtocolLog::Session log) {
  log.event('+', "");
  log.event('*', reason);
  std::string text = std::to_string(reply.code) + " " + reply.enhanced;
  for (const auto& line : reply.lines) text += " " + line;
  log.event('>', text);

  // The timer's handler may already be queued when the refusal ends (a FIN
  // and the deadline in the same pass): it shares ownership of the socket
  // instead of pointing into this coroutine's frame.
  struct Refused {
    asio::ip::tcp::socket socket;
    bool done = false;
  };
  auto r = std::make_shared<Refused>(Refused{std::move(socket)});
  asio::steady_timer deadline(r->socket.get_executor(), kRefusalDeadline);
  deadline.async_wait([r](std::error_code ec) {
    if (ec || r->done) return;  // cancelled, or the refusal ended first
    std::error_code ignored;
    r->socket.cancel(ignored);
  });
  std::string wire = reply.wire();
  auto [ec, n] = co_await asio::async_write(r->socket, asio::buffer(wire), net::use_tuple);
  if (!ec) {
    // FIN after the reply, then wait for the client to close: closing with
    // unread input would reset the connection, and the client could lose the
    // 421 before it read it.
    std::error_code ignored;
    r->socket.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    char discard[512];
    for (;;) {
      auto [read_error, got] =
          co_await r->socket.async_read_some(asio::buffer(discard), net::use_tuple);
      if (read_error) break;
    }
  }
  r->done = true;
  deadline.cancel();
  std::error_code ignored;
  r->socket.close(ignored);
  log.event('-', "");
}

}  // namespace tern::server
