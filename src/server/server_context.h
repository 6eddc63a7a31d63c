// What every inbound connection shares: configuration, spool, logs, TLS
// contexts, the pools for blocking work (password checks apart from disk
// work, so an AUTH flood does not slow delivery), the connection limits, and
// the registry of live connections that shutdown walks. Owned by Server;
// connections hold a reference. Safe to use from every event loop.
#pragma once

#include <algorithm>
#include <asio/any_io_executor.hpp>
#include <asio/ip/address.hpp>
#include <asio/ssl/context.hpp>
#include <asio/thread_pool.hpp>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "log/protocol_log.h"
#include "log/tracking_log.h"
#include "queue/spool.h"
#include "server/auth.h"
#include "server/auth_throttle.h"
#include "server/connection_limits.h"

namespace tern::server {

class Connection;

class ServerContext {
 public:
  ServerContext(const config::Config& config, queue::Spool& spool, log::ProtocolLog& protocol_log,
                log::TrackingLog& tracking_log);
  ~ServerContext();

  const config::Config& config() const { return config_; }
  queue::Spool& spool() { return spool_; }
  const Authenticator* authenticator() const {
    return authenticator_.has_users() ? &authenticator_ : nullptr;
  }
  log::ProtocolLog& protocol_log() { return protocol_log_; }
  log::TrackingLog& tracking_log() { return tracking_log_; }
  AuthThrottle& auth_throttle() { return throttle_; }
  // Disk work: Maildir writes and other blocking file system calls of delivery.
  asio::thread_pool& blocking_pool() { return blocking_; }
  // Password checks (crypt(3) is slow on purpose): their own threads.
  asio::thread_pool& auth_pool() { return auth_; }
  // Writing parts of messages as they stream in, apart from delivery's disk
  // work, so uploads and Maildir writes do not wait for each other.
  asio::thread_pool& spool_pool() { return spool_io_; }
  // At shutdown, once the event loops have stopped: lets the work still on
  // the pools finish while everything it points to is alive.
  void join_pools() {
    auth_.join();
    spool_io_.join();
    blocking_.join();
  }

  // Tells delivery that a message was queued (set by Server when delivery
  // runs); local: every recipient is local (the scheduler's local lane).
  void set_queued_hook(std::function<void(std::uint64_t, bool)> hook) {
    queued_hook_ = std::move(hook);
  }
  void message_queued(std::uint64_t id, bool local) {
    if (queued_hook_) queued_hook_(id, local);
  }

  // The TLS context of a listener (null for tls = none); replaced on SIGHUP.
  std::shared_ptr<asio::ssl::context> tls_context(std::size_t listener) const;
  void set_tls_context(std::size_t listener, std::shared_ptr<asio::ssl::context> context);

  // Live connections, for shutdown and limits. admit() counts a new connection
  // from source, or says why it must be refused (a 421 4.3.2, SPEC §3); an
  // admitted one is attached before it runs and detached when it ends.
  enum class Admission { kAdmitted, kShuttingDown, kListenerFull, kSourceFull };
  Admission admit(std::size_t listener, const asio::ip::address& source);
  void attach(const std::shared_ptr<Connection>& connection, std::size_t listener,
              const asio::ip::address& source);
  // Gives back an admitted connection that was never attached.
  void release(std::size_t listener, const asio::ip::address& source);
  void detach(Connection* connection, std::size_t listener);
  std::size_t live_connections() const { return live_.load(); }
  // Asks every connection to finish; on_idle runs once none is left.
  void shutdown(std::function<void()> on_idle);
  bool shutting_down() const { return shutting_down_.load(); }

 private:
  static std::size_t blocking_threads(const config::Config& config) {
    return std::clamp<std::size_t>(config.delivery.max_local_deliveries, 2, 4);
  }
  const config::Config& config_;
  queue::Spool& spool_;
  log::ProtocolLog& protocol_log_;
  log::TrackingLog& tracking_log_;
  Authenticator authenticator_;
  AuthThrottle throttle_;
  // Maildir writes wait on fsync (the disk): as many threads as local
  // deliveries may run, 2 to 4, so their syncs overlap and share the fsync of
  // new/ (delivery/maildir.h). Measured (bench local, 10 sessions): 4 threads
  // delivered 2.7x Postfix against 2.3x with 2; with 8 the Maildir threads
  // used as much CPU or more and accepting slowed to the delivery rate.
  asio::thread_pool blocking_{blocking_threads(config_)};
  asio::thread_pool auth_{2};
  asio::thread_pool spool_io_{2};

  mutable std::mutex tls_mu_;
  std::vector<std::shared_ptr<asio::ssl::context>> tls_;

  struct Attached {
    std::weak_ptr<Connection> connection;
    asio::ip::address source;
  };
  std::mutex registry_mu_;
  std::unordered_map<Connection*, Attached> connections_;
  ConnectionLimits limits_;
  std::atomic<std::size_t> live_{0};
  std::atomic<bool> shutting_down_{false};
  std::function<void()> on_idle_;
  std::function<void(std::uint64_t, bool)> queued_hook_;
};

}  // namespace tern::server
