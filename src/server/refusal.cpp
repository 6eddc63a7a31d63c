// One 421 and a close for a connection that is not admitted (refusal.h).
#include "server/refusal.h"

#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <chrono>

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

  asio::steady_timer deadline(socket.get_executor(), kRefusalDeadline);
  deadline.async_wait([&socket](std::error_code ec) {
    if (ec) return;  // cancelled: the refusal ended first
    std::error_code ignored;
    socket.cancel(ignored);
  });
  std::string wire = reply.wire();
  auto [ec, n] = co_await asio::async_write(socket, asio::buffer(wire), net::use_tuple);
  if (!ec) {
    // FIN after the reply, then wait for the client to close: closing with
    // unread input would reset the connection, and the client could lose the
    // 421 before it read it.
    std::error_code ignored;
    socket.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    char discard[512];
    for (;;) {
      auto [read_error, got] =
          co_await socket.async_read_some(asio::buffer(discard), net::use_tuple);
      if (read_error) break;
    }
  }
  deadline.cancel();
  std::error_code ignored;
  socket.close(ignored);
  log.event('-', "");
}

}  // namespace tern::server
