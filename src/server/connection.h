// One inbound connection: drives a Session over a net::Stream. Reads with a
// deadline (the listener's command timeout, RFC 5321 §4.5.3.2.7), batches
// replies while pipelined commands are waiting (RFC 2920) and flushes before
// it waits for input, hands messages to the spool and answers only after the
// sync, performs the STARTTLS handshake and the password check off the loop,
// runs the sender checks of a message (DKIM, SPF, DMARC: DNS awaited on this
// loop) before its commit, and writes the protocol log.
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "dns/resolver.h"
#include "log/metrics.h"
#include "log/protocol_log.h"
#include "net/awaitable.h"
#include "net/stream.h"
#include "server/session.h"
#include "smtp/input_buffer.h"

namespace tern::server {

class ServerContext;

class Connection : public std::enable_shared_from_this<Connection>, private SessionObserver {
 public:
  // resolver: this loop's, for the sender checks (null: no checks).
  Connection(ServerContext& server, const config::Listener& listener, std::size_t listener_index,
             asio::ip::tcp::socket socket, dns::Resolver* resolver = nullptr);
  ~Connection() override;

  net::awaitable<void> run();
  // Server shutdown: an idle session gets 421 4.3.2 now, a busy one after its
  // current message.
  void request_shutdown();

 private:
  enum class Phase { kStarting, kWaitingCommand, kBusy, kClosing };

  net::awaitable<void> converse();
  net::awaitable<void> watchdog();
  net::awaitable<bool> read_more();
  net::awaitable<bool> flush();
  void queue_reply(const smtp::Reply& reply);
  net::awaitable<bool> start_tls();
  net::awaitable<Step> verify_credentials();
  net::awaitable<Step> commit();
  net::awaitable<Step> store_part();
  net::awaitable<Step> check_sender();
  void discard_abandoned();
  void touch();
  void set_read_deadline(bool in_message);

  // SessionObserver
  void received(std::string_view line) override;
  void info(std::string_view text) override;

  ServerContext& server_;
  const config::Listener& listener_;
  std::size_t listener_index_;
  log::ListenerMetrics& metrics_;  // this listener's counters (log/metrics.h)
  dns::Resolver* resolver_;
  net::Stream stream_;
  std::string remote_address_;
  log::ProtocolLog::Session log_;
  std::unique_ptr<Session> session_;
  smtp::InputBuffer in_;
  std::string out_;
  asio::steady_timer timer_;
  std::chrono::steady_clock::time_point deadline_;
  std::optional<std::chrono::steady_clock::time_point> message_deadline_;
  Phase phase_ = Phase::kStarting;
  bool timed_out_ = false;
  bool io_pending_ = false;  // a read, write or handshake is waiting on the peer
  bool shutdown_requested_ = false;
};

}  // namespace tern::server
