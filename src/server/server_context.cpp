#include "server/server_context.h"

#include <asio/post.hpp>

#include "log/metrics.h"
#include "server/connection.h"

namespace tern::server {

ServerContext::ServerContext(const config::Config& config, queue::Spool& spool,
                             log::ProtocolLog& protocol_log, log::TrackingLog& tracking_log)
    : config_(config),
      spool_(spool),
      protocol_log_(protocol_log),
      tracking_log_(tracking_log),
      authenticator_(config),
      tls_(config.listeners.size()),
      limits_(config.listeners) {
  std::vector<std::string> names;
  for (const auto& l : config.listeners) names.push_back(l.name);
  log::metrics().set_listeners(names);
}

ServerContext::~ServerContext() {
  auth_.join();
  blocking_.join();
}

std::shared_ptr<asio::ssl::context> ServerContext::tls_context(std::size_t listener) const {
  std::lock_guard lock(tls_mu_);
  return tls_.at(listener);
}

void ServerContext::set_tls_context(std::size_t listener, std::shared_ptr<asio::ssl::context> c) {
  std::lock_guard lock(tls_mu_);
  tls_.at(listener) = std::move(c);
}

std::shared_ptr<const DkimKeyring> ServerContext::dkim_keys() const {
  std::lock_guard lock(tls_mu_);
  return dkim_keys_;
}

void ServerContext::set_dkim_keys(std::shared_ptr<const DkimKeyring> keys) {
  std::lock_guard lock(tls_mu_);
  dkim_keys_ = std::move(keys);
}

ServerContext::Admission ServerContext::admit(std::size_t listener,
                                              const asio::ip::address& source) {
  std::lock_guard lock(registry_mu_);
  if (shutting_down_) return Admission::kShuttingDown;
  switch (limits_.admit(listener, source)) {
    case ConnectionLimits::Verdict::kListenerFull:
      return Admission::kListenerFull;
    case ConnectionLimits::Verdict::kSourceFull:
      return Admission::kSourceFull;
    case ConnectionLimits::Verdict::kAdmitted:
      break;
  }
  ++live_;  // from here on, shutdown waits for this connection
  return Admission::kAdmitted;
}

void ServerContext::attach(const std::shared_ptr<Connection>& c, std::size_t listener,
                           const asio::ip::address& source) {
  auto& m = log::metrics().listener(listener);
  m.connections_total.inc();
  m.connections.add();
  bool late;
  {
    std::lock_guard lock(registry_mu_);
    connections_.emplace(c.get(), Attached{c, source});
    late = shutting_down_;  // shutdown began after admit(): it did not see this one
  }
  if (late) c->request_shutdown();
}

void ServerContext::release(std::size_t listener, const asio::ip::address& source) {
  std::function<void()> idle;
  {
    std::lock_guard lock(registry_mu_);
    limits_.release(listener, source);
    if (--live_ == 0 && shutting_down_ && on_idle_) idle = std::move(on_idle_);
  }
  if (idle) idle();
}

void ServerContext::detach(Connection* c, std::size_t listener) {
  std::function<void()> idle;
  {
    std::lock_guard lock(registry_mu_);
    auto it = connections_.find(c);
    if (it == connections_.end()) return;
    limits_.release(listener, it->second.source);
    connections_.erase(it);
    log::metrics().listener(listener).connections.sub();
    if (--live_ == 0 && shutting_down_ && on_idle_) idle = std::move(on_idle_);
  }
  if (idle) idle();
}

void ServerContext::shutdown(std::function<void()> on_idle) {
  std::vector<std::shared_ptr<Connection>> live;
  {
    std::lock_guard lock(registry_mu_);
    shutting_down_ = true;
    if (live_ == 0) {
      on_idle();
      return;
    }
    on_idle_ = std::move(on_idle);
    for (auto& [ptr, attached] : connections_)
      if (auto c = attached.connection.lock()) live.push_back(std::move(c));
  }
  for (auto& c : live) c->request_shutdown();
}

}  // namespace tern::server
