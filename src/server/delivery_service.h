// Outbound delivery inside `tern serve`: its own event loop and thread, with
// the c-ares resolver, the destination pool, the dispatcher, the scheduler,
// the control socket and the admin listener on it. Inbound sessions tell it about new messages
// (enqueue); shutdown lets running attempts finish for a while, then stops.
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/thread_pool.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "config/config.h"
#include "log/tracking_log.h"
#include "queue/spool.h"

namespace tern::dns {
class CaresResolver;
}
namespace tern::delivery {
class DestinationPool;
class Dispatcher;
}  // namespace tern::delivery
namespace tern::queue {
class Scheduler;
}

namespace tern::admin {
class AdminServer;
}

namespace tern::server {

class ControlSocket;

class DeliveryService {
 public:
  // Loads the queue; throws std::runtime_error (DNS servers, control socket).
  DeliveryService(const config::Config& config, queue::Spool& spool, log::TrackingLog& tracking,
                  asio::thread_pool& blocking);
  ~DeliveryService();

  // The admin listener (SPEC §5) on this loop, beside the scheduler, taking
  // over acceptor (bound before tern dropped root); before start().
  void open_admin(asio::ip::tcp::acceptor& acceptor, std::string token, queue::Spool& spool,
                  asio::thread_pool& blocking);
  void start();
  void enqueue(std::uint64_t id, bool local);
  // Stops scheduling, waits up to grace for running attempts, closes kept
  // connections, stops the loop.
  void stop(std::chrono::milliseconds grace);
  std::size_t loaded() const { return loaded_; }

 private:
  std::unique_ptr<asio::io_context> loop_;
  std::unique_ptr<dns::CaresResolver> resolver_;
  std::unique_ptr<delivery::DestinationPool> pool_;
  std::unique_ptr<delivery::Dispatcher> dispatcher_;
  std::unique_ptr<queue::Scheduler> scheduler_;
  std::unique_ptr<ControlSocket> control_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::thread thread_;
  std::size_t loaded_ = 0;
  bool stopped_ = false;
  bool enabled_ = true;  // [delivery] enabled
};

}  // namespace tern::server
