#include "server/server_context.h"

#include <asio/post.hpp>

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
      per_listener_(config.listeners.size()) {}

ServerContext::~ServerContext() {
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

bool ServerContext::attach(const std::shared_ptr<Connection>& c, std::size_t listener) {
  std::lock_guard lock(registry_mu_);
  if (shutting_down_ || per_listener_[listener] >= config_.listeners[listener].max_connections)
    return false;
  connections_.emplace(c.get(), c);
  ++per_listener_[listener];
  ++live_;
  return true;
}

void ServerContext::detach(Connection* c, std::size_t listener) {
  std::function<void()> idle;
  {
    std::lock_guard lock(registry_mu_);
    if (connections_.erase(c) == 0) return;
    --per_listener_[listener];
    if (--live_ == 0 && shutting_down_ && on_idle_) idle = std::move(on_idle_);
  }
  if (idle) idle();
}

void ServerContext::shutdown(std::function<void()> on_idle) {
  std::vector<std::shared_ptr<Connection>> live;
  {
    std::lock_guard lock(registry_mu_);
    shutting_down_ = true;
    if (connections_.empty()) {
      on_idle();
      return;
    }
    on_idle_ = std::move(on_idle);
    for (auto& [ptr, weak] : connections_)
      if (auto c = weak.lock()) live.push_back(std::move(c));
  }
  for (auto& c : live) c->request_shutdown();
}

}  // namespace tern::server
