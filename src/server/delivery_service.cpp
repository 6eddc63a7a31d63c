#include "server/delivery_service.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <future>

#include "admin/admin_server.h"
#include "delivery/destination_pool.h"
#include "delivery/dispatcher.h"
#include "dns/resolver_cares.h"
#include "log/metrics.h"
#include "net/event_loop.h"
#include "queue/scheduler.h"
#include "server/control_socket.h"
#include "tls/context.h"

namespace tern::server {

namespace {
// How long a scrape waits for the delivery loop to count its queue.
constexpr auto kQueueCountWait = std::chrono::seconds(2);
}  // namespace

DeliveryService::DeliveryService(const config::Config& config, queue::Spool& spool,
                                 log::TrackingLog& tracking, asio::thread_pool& blocking)
    : loop_(std::make_unique<asio::io_context>(1)) {
  auto ex = loop_->get_executor();
  dns::CaresOptions dns_options;
  dns_options.servers = config.dns.servers;
  resolver_ = std::make_unique<dns::CaresResolver>(ex, dns_options);
  pool_ = std::make_unique<delivery::DestinationPool>(ex, config, *resolver_,
                                                      tls::client_context(false));
  dispatcher_ = std::make_unique<delivery::Dispatcher>(ex, config, blocking, *pool_);
  if (spool.shared())  // a cluster node completes no delivery once its lease may be gone
    dispatcher_->set_commit_gate(
        [&spool] { return std::chrono::steady_clock::now() < spool.leases_until(); });
  scheduler_ = std::make_unique<queue::Scheduler>(ex, config, spool, tracking, *dispatcher_);
  control_ = std::make_unique<ControlSocket>(ex, config.spool.path, *scheduler_);
  enabled_ = config.delivery.enabled;
  if (enabled_) loaded_ = scheduler_->load();
  // tern_queue_messages at scrape time (off the loops): the cluster's queue
  // from the database, else the scheduler's index read on its own loop.
  if (spool.shared()) {
    log::metrics().set_queue_source([&spool] { return spool.count_states(); });
  } else if (enabled_) {
    log::metrics().set_queue_source([this]() -> std::optional<log::QueueCounts> {
      auto counted = std::make_shared<std::promise<log::QueueCounts>>();
      auto future = counted->get_future();
      asio::post(*loop_, [this, counted] { counted->set_value(scheduler_->queue_counts()); });
      if (future.wait_for(kQueueCountWait) != std::future_status::ready) return std::nullopt;
      try {
        return future.get();
      } catch (const std::future_error&) {  // the loop went away first
        return std::nullopt;
      }
    });
  }
}

DeliveryService::~DeliveryService() {
  stop(std::chrono::milliseconds(0));
  // Components first (they cancel their timers and sockets on a live loop),
  // then the loop, which destroys the coroutines that were still waiting.
  admin_.reset();
  control_.reset();
  scheduler_.reset();
  dispatcher_.reset();
  pool_.reset();
  resolver_.reset();
  loop_.reset();
}

void DeliveryService::open_admin(asio::ip::tcp::acceptor& acceptor, std::string token,
                                 queue::Spool& spool, asio::thread_pool& blocking) {
  admin_ = std::make_unique<admin::AdminServer>(loop_->get_executor(), acceptor, std::move(token),
                                                spool, *scheduler_, blocking);
}

void DeliveryService::start() {
  if (enabled_) scheduler_->start();
  control_->start();
  if (admin_) admin_->start();
  thread_ = std::thread([this] {
    auto work = asio::make_work_guard(*loop_);
    net::run_event_loop(*loop_, "delivery loop");
  });
}

void DeliveryService::enqueue(std::uint64_t id, bool local) {
  if (enabled_) scheduler_->enqueue(id, local);
}

void DeliveryService::stop(std::chrono::milliseconds grace) {
  log::metrics().set_queue_source(nullptr);  // waits for a scrape reading it
  if (stopped_) return;
  stopped_ = true;
  if (thread_.joinable()) {
    auto idle = std::make_shared<std::promise<void>>();
    asio::post(*loop_, [this, idle] {
      control_->stop();
      if (admin_) admin_->stop();
      scheduler_->stop([idle] { idle->set_value(); });
    });
    idle->get_future().wait_for(grace);
    auto closed = std::make_shared<std::promise<void>>();
    asio::co_spawn(*loop_, pool_->close_idle(),
                   [closed](std::exception_ptr) { closed->set_value(); });
    closed->get_future().wait_for(std::chrono::seconds(2));
    loop_->stop();
    thread_.join();
  }
}

}  // namespace tern::server
