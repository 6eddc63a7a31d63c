#include "server/server.h"

#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include "admin/admin_server.h"
#include "admin/token.h"
#include "dns/caching_resolver.h"
#include "dns/resolver_cares.h"
#include "log/metrics.h"
#include "net/endpoint.h"
#include "net/event_loop.h"
#include "queue/trail_writer.h"
#include "server/connection.h"
#include "server/privileges.h"
#include "server/refusal.h"
#include "server/service_notify.h"
#include "smtp/replies.h"
#include "tls/context.h"

namespace tern::server {

namespace {
// How long sessions may take to finish their message after SIGTERM.
constexpr auto kShutdownGrace = std::chrono::seconds(30);
// How long running delivery attempts may take to finish after that.
constexpr auto kDeliveryGrace = std::chrono::seconds(10);
// Refused connections being told so at once; past this (a flood), a refused
// connection is closed without its 421, so refusals cannot pile up descriptors.
constexpr unsigned kMaxRefusing = 1024;

asio::ip::tcp::endpoint resolve_listener(const config::Listener& l) {
  std::error_code ec;
  auto address = asio::ip::make_address(l.address.host, ec);
  if (!ec) return {address, l.address.port};
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  auto results = resolver.resolve(l.address.host, std::to_string(l.address.port), ec);
  if (ec || results.empty())
    throw std::runtime_error("listener " + l.name + ": cannot resolve " + l.address.host);
  return results.begin()->endpoint();
}
}  // namespace

namespace {
// Each connection is a descriptor: take the hard limit as the soft one (as
// nginx's worker_rlimit_nofile does), so max_connections is not cut at 1024.
void raise_descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}
}  // namespace

Server::Server(config::Config config, const std::function<void()>& before_spool)
    : config_(std::move(config)) {
  raise_descriptor_limit();
  unsigned n =
      config_.threads ? config_.threads : std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i) loops_.push_back(std::make_unique<asio::io_context>(1));

  // One acceptor per listener and event loop, all on the same port
  // (SO_REUSEPORT): the kernel spreads new connections over the loops, and a
  // connection never changes threads.
  for (std::size_t i = 0; i < config_.listeners.size(); ++i) {
    const auto& l = config_.listeners[i];
    auto endpoint = resolve_listener(l);
    if (endpoint.port() != 0) {
      // SO_REUSEPORT would let a second tern share the port silently: first
      // make sure nobody listens there.
      asio::ip::tcp::acceptor probe(*loops_[0]);
      std::error_code ec;
      probe.open(endpoint.protocol(), ec);
      if (!ec) probe.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
      if (!ec) probe.bind(endpoint, ec);
      if (ec)
        throw std::runtime_error("listener " + l.name + ": cannot listen on " + l.address.str() +
                                 ": " + ec.message());
    }
    for (auto& loop : loops_) {
      auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(*loop);
      std::error_code ec;
      acceptor->open(endpoint.protocol(), ec);
      if (!ec) acceptor->set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
      if (!ec) {
        int one = 1;
        if (setsockopt(acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
          ec = std::error_code(errno, std::system_category());
      }
      if (!ec) acceptor->bind(endpoint, ec);
      if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
      if (ec)
        throw std::runtime_error("listener " + l.name + ": cannot listen on " + l.address.str() +
                                 ": " + ec.message());
      endpoint = acceptor->local_endpoint();  // port 0: the others take the port the first got
      acceptors_.push_back({i, std::move(acceptor)});
    }
  }
  // The admin listener (SPEC §5) and its token, like the SMTP listeners
  // before the drop; a token file created as root is given to tern's user.
  std::string admin_token;
  if (config_.admin.address) {
    admin_acceptor_ = std::make_unique<asio::ip::tcp::acceptor>(
        admin::bind_listener(*loops_[0], *config_.admin.address));
    admin_where_ = net::endpoint_text(admin_acceptor_->local_endpoint());
    std::optional<admin::Owner> owner;
    if (geteuid() == 0) {
      auto account = lookup_account(config_.user);
      owner = admin::Owner{account.uid, account.gid};
    }
    admin_token = admin::load_or_create_token(config_.admin.token_file, owner);
  }
  // Every file tern reads at start is read before the drop; the folders it
  // writes are opened after it, as the user who owns them.
  auto tls = read_tls();
  auto dkim_keys = DkimKeyring::load(config_);
  if (before_spool) before_spool();
  spool_ = queue::open_spool(config_, queue::OpenMode::kServe);
  protocol_log_ = std::make_unique<log::ProtocolLog>(config_.log.directory, config_.log.protocol);
  tracking_log_ = std::make_unique<log::TrackingLog>(config_.log.directory);
  // Every tracking event also goes to the message trail in the spool (SPEC §1 `tern trail`).
  if (auto* trail = spool_->trail())
    tracking_log_->set_sink([trail](const log::TrackingEvent& e) {
      auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
      for (auto& t : queue::trail_events(e, now)) trail->record(std::move(t));
    });
  context_ = std::make_unique<ServerContext>(config_, *spool_, *protocol_log_, *tracking_log_);
  for (std::size_t i = 0; i < tls.size(); ++i)
    if (tls[i]) context_->set_tls_context(i, tls[i]);
  context_->set_dkim_keys(std::move(dkim_keys));
  // The sender checks look up DNS from the loop of their connection: one
  // resolver per inbound loop (c-ares channels are not shared between
  // threads), each behind the one TTL cache every lookup shares.
  if (config_.sender_auth.verify) {
    dns::CaresOptions dns_options;
    dns_options.servers = config_.dns.servers;
    for (auto& loop : loops_) {
      cares_.push_back(std::make_unique<dns::CaresResolver>(loop->get_executor(), dns_options));
      resolvers_.push_back(
          std::make_unique<dns::CachingResolver>(*cares_.back(), dns::DnsCache::shared()));
    }
  }
  delivery_ = std::make_unique<DeliveryService>(config_, *spool_, *tracking_log_,
                                                context_->blocking_pool());
  if (admin_acceptor_)
    delivery_->open_admin(*admin_acceptor_, std::move(admin_token), *spool_,
                          context_->blocking_pool());
  context_->set_queued_hook(
      [this](std::uint64_t id, bool local) { delivery_->enqueue(id, local); });
  pickup_ = std::make_unique<Pickup>(
      config_, *spool_, *tracking_log_, *loops_[0], context_->blocking_pool(),
      [this](std::uint64_t id, bool local) { context_->message_queued(id, local); });
}

Server::~Server() = default;

std::vector<std::shared_ptr<asio::ssl::context>> Server::read_tls() const {
  std::vector<std::shared_ptr<asio::ssl::context>> contexts(config_.listeners.size());
  for (std::size_t i = 0; i < config_.listeners.size(); ++i) {
    const auto& l = config_.listeners[i];
    if (l.tls != config::TlsMode::kNone)
      contexts[i] = tls::server_context(l.certificate, l.private_key);
  }
  return contexts;
}

// SIGHUP: all or nothing, so one unreadable key keeps every old certificate.
void Server::load_tls() {
  auto contexts = read_tls();
  for (std::size_t i = 0; i < contexts.size(); ++i)
    if (contexts[i]) context_->set_tls_context(i, contexts[i]);
}

dns::Resolver* Server::resolver_for(const asio::any_io_executor& executor) const {
  for (std::size_t i = 0; i < resolvers_.size(); ++i)
    if (loops_[i]->get_executor() == executor) return resolvers_[i].get();
  return nullptr;
}

net::awaitable<void> Server::accept_loop(std::size_t index, asio::ip::tcp::acceptor& acceptor) {
  const auto& listener = config_.listeners[index];
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(net::use_tuple);
    if (stopping_ || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Out of descriptors or memory: say so, breathe, go on.
      spdlog::warn("listener {}: accept failed: {}", listener.name, ec.message());
      asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(100));
      co_await pause.async_wait(net::use_tuple);
      continue;
    }
    std::error_code ignored;
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    std::error_code gone;
    auto remote = socket.remote_endpoint(gone);
    if (gone) continue;  // the client has left already
    auto source = net::unmapped(remote.address());
    auto admission = context_->admit(index, source);
    if (admission != ServerContext::Admission::kAdmitted) {
      log::metrics().listener(index).refused.inc();
      refuse_connection(index, std::move(socket), admission);
      continue;
    }
    std::shared_ptr<Connection> connection;
    try {
      connection = std::make_shared<Connection>(*context_, listener, index, std::move(socket),
                                                resolver_for(acceptor.get_executor()));
    } catch (const std::exception& e) {
      context_->release(index, source);
      spdlog::error("listener {}: connection not started: {}", listener.name, e.what());
      continue;
    }
    context_->attach(connection, index, source);
    asio::co_spawn(acceptor.get_executor(), connection->run(), [connection](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("session ended by an internal error: {}", ex.what());
      }
    });
  }
}

void Server::refuse_connection(std::size_t index, asio::ip::tcp::socket socket,
                               ServerContext::Admission why) {
  const auto& listener = config_.listeners[index];
  if (refusing_.load() >= kMaxRefusing) return;  // the socket closes here
  std::error_code ec;
  auto local = socket.local_endpoint(ec);
  auto remote = socket.remote_endpoint(ec);
  if (ec) return;
  smtp::Reply reply = smtp::replies::kServiceNotAvailable;
  std::string reason = "refused: shutting down";
  if (why == ServerContext::Admission::kSourceFull) {
    reply = smtp::replies::kTooManyConnectionsFromSource;
    reason = "refused: " + net::unmapped(remote.address()).to_string() + " already has " +
             std::to_string(listener.max_connections_per_source) +
             " connections (max_connections_per_source)";
  } else if (why == ServerContext::Admission::kListenerFull) {
    reply = smtp::replies::kTooManyConnections;
    reason = "refused: the listener has " + std::to_string(listener.max_connections) +
             " connections (max_connections)";
  }
  log::ProtocolLog::Session log(protocol_log_.get(), listener.name, net::endpoint_text(local),
                                net::endpoint_text(remote));
  auto executor = socket.get_executor();
  ++refusing_;
  asio::co_spawn(executor,
                 refuse(std::move(socket), std::move(reply), std::move(reason), std::move(log)),
                 [this](std::exception_ptr e) {
                   --refusing_;
                   if (!e) return;
                   try {
                     std::rethrow_exception(e);
                   } catch (const std::exception& ex) {
                     spdlog::error("refusing a connection: {}", ex.what());
                   }
                 });
}

// SIGHUP: the certificates, the [[dkim]] keys and the [[mailbox]] table, each
// all or nothing (one unreadable key keeps every old certificate), each apart
// from the others: a key tern's user cannot read (it was read as root at
// start) must not stop a renewed certificate. New sessions and deliveries see
// the new ones; other changes to the file wait for a restart.
void Server::reload() {
  notify_reloading();
  try {
    load_tls();
    spdlog::info("certificates reloaded");
  } catch (const std::exception& e) {
    spdlog::error("certificates not reloaded, keeping the old ones: {}", e.what());
  }
  if (!config_.dkim.empty()) {
    try {
      context_->set_dkim_keys(DkimKeyring::load(config_));
      spdlog::info("DKIM keys reloaded");
    } catch (const std::exception& e) {
      spdlog::error("DKIM keys not reloaded, keeping the old ones: {}", e.what());
    }
  }
  try {
    auto fresh = config::load(config_.file);
    const auto count = fresh.mailboxes.size();
    config_.live_mailboxes->replace(std::move(fresh.mailboxes));
    spdlog::info("mailboxes reloaded ({} [[mailbox]] entries)", count);
  } catch (const std::exception& e) {
    spdlog::error("mailboxes not reloaded, keeping the old ones: {}", e.what());
  }
  notify_ready("reloaded");
}

void Server::stop() {
  if (stopping_) return;
  stopping_ = true;
  notify_stopping();
  std::fprintf(stderr, "tern: stopping\n");
  pickup_->stop();
  for (auto& [index, a] : acceptors_) {
    // Closed on its own loop: the accept in progress there is cancelled.
    asio::post(a->get_executor(), [acceptor = a.get()] {
      std::error_code ignored;
      acceptor->close(ignored);
    });
  }
  auto finish = [this] {
    asio::post(*loops_[0], [this] {
      for (auto& loop : loops_) loop->stop();
    });
  };
  auto grace = std::make_shared<asio::steady_timer>(*loops_[0], kShutdownGrace);
  grace->async_wait([grace, finish](std::error_code ec) {
    if (!ec) finish();
  });
  context_->shutdown(finish);
}

int Server::run() {
  for (const auto& [index, acceptor] : acceptors_) {
    if (acceptor->get_executor() == loops_[0]->get_executor()) {
      auto ep = acceptor->local_endpoint();
      std::string where = ep.address().is_v6()
                              ? "[" + ep.address().to_string() + "]:" + std::to_string(ep.port())
                              : ep.address().to_string() + ":" + std::to_string(ep.port());
      std::fprintf(stderr, "tern: listening %s %s\n", config_.listeners[index].name.c_str(),
                   where.c_str());
    }
    asio::co_spawn(acceptor->get_executor(), accept_loop(index, *acceptor), asio::detached);
  }

  if (!admin_where_.empty())
    std::fprintf(stderr, "tern: listening admin %s\n", admin_where_.c_str());

  asio::signal_set signals(*loops_[0], SIGINT, SIGTERM, SIGHUP);
  std::function<void(std::error_code, int)> on_signal = [&](std::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      reload();
      signals.async_wait(on_signal);
      return;
    }
    stop();
  };
  signals.async_wait(on_signal);

  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work;
  for (auto& loop : loops_) work.push_back(asio::make_work_guard(*loop));
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < loops_.size(); ++i)
    threads.emplace_back([this, i] { net::run_event_loop(*loops_[i], "event loop"); });
  delivery_->start();
  pickup_->start();
  std::fprintf(stderr, "tern: ready (%zu event loops, spool %s, %zu queued)\n", loops_.size(),
               config_.spool.path.c_str(), delivery_->loaded());
  std::fflush(stderr);
  notify_ready(std::to_string(acceptors_.size()) + " listeners, " +
               std::to_string(delivery_->loaded()) + " messages queued at start");
  net::run_event_loop(*loops_[0], "event loop");
  for (auto& t : threads) t.join();
  signals.cancel();
  delivery_->stop(kDeliveryGrace);
  context_->join_pools();
  spool_->close();
  protocol_log_->flush();
  tracking_log_->flush();
  std::fprintf(stderr, "tern: stopped\n");
  return 0;
}

}  // namespace tern::server
