// `tern serve`: the event loops (one per core, DESIGN.md principle 2), the
// listeners with their acceptors, the spool and the logs, and the signals —
// SIGTERM/SIGINT for a graceful stop (stop accepting, let sessions finish their
// message, 421 to idle ones, flush the spool), SIGHUP to reload certificates
// and DKIM signing keys.
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "config/config.h"
#include "dns/resolver.h"
#include "log/protocol_log.h"
#include "log/tracking_log.h"
#include "net/awaitable.h"
#include "queue/spool.h"
#include "server/delivery_service.h"
#include "server/server_context.h"

namespace tern::server {

class Server {
 public:
  // Binds every listener and loads the certificates, then calls
  // before_spool (where tern serve drops root, see privileges.h), then opens
  // the spool and the logs; throws std::runtime_error with a message for the
  // administrator when it cannot.
  explicit Server(config::Config config, const std::function<void()>& before_spool = {});
  ~Server();
  // Runs until SIGTERM/SIGINT; returns the process exit code.
  int run();

 private:
  net::awaitable<void> accept_loop(std::size_t listener_index, asio::ip::tcp::acceptor& acceptor);
  // A 421 4.3.2 and a close, on the socket's own loop; the accept loop goes on.
  void refuse_connection(std::size_t listener_index, asio::ip::tcp::socket socket,
                         ServerContext::Admission why);
  // The TLS context of each listener (null without TLS), read from its files.
  std::vector<std::shared_ptr<asio::ssl::context>> read_tls() const;
  void load_tls();
  // The resolver of the event loop running executor (null: no sender checks).
  dns::Resolver* resolver_for(const asio::any_io_executor& executor) const;
  void stop();

  config::Config config_;
  std::unique_ptr<queue::Spool> spool_;
  std::unique_ptr<log::ProtocolLog> protocol_log_;
  std::unique_ptr<log::TrackingLog> tracking_log_;
  std::unique_ptr<ServerContext> context_;
  std::unique_ptr<DeliveryService> delivery_;
  std::vector<std::unique_ptr<asio::io_context>> loops_;
  // One per loop, when [sender_auth] verify is on; destroyed before the loops.
  std::vector<std::unique_ptr<dns::Resolver>> cares_;      // one per inbound loop
  std::vector<std::unique_ptr<dns::Resolver>> resolvers_;  // cares_ behind the shared cache
  // (listener index, acceptor); one per listener and loop
  std::vector<std::pair<std::size_t, std::unique_ptr<asio::ip::tcp::acceptor>>> acceptors_;
  // [admin]: bound before the drop, handed to the delivery loop after it
  std::unique_ptr<asio::ip::tcp::acceptor> admin_acceptor_;
  std::string admin_where_;  // "127.0.0.1:8025"
  std::atomic<bool> stopping_{false};
  std::atomic<unsigned> refusing_{0};  // refusals in progress, over all loops
};

}  // namespace tern::server
