#include "server/auth_throttle.h"

#include <algorithm>

namespace tern::server {

namespace {
constexpr auto kForget = std::chrono::hours(1);
constexpr std::size_t kMaxEntries = 100000;  // bounded memory under a spray of addresses
}  // namespace

std::chrono::milliseconds AuthThrottle::delay_for(const std::string& address) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(address);
  if (it == entries_.end() || it->second.failures == 0) return std::chrono::milliseconds(0);
  if (std::chrono::steady_clock::now() - it->second.last > kForget) {
    entries_.erase(it);
    return std::chrono::milliseconds(0);
  }
  unsigned shift = std::min(it->second.failures - 1, 4u);
  return std::chrono::milliseconds(500 << shift);
}

void AuthThrottle::failed(const std::string& address) {
  std::lock_guard lock(mu_);
  if (entries_.size() >= kMaxEntries) entries_.clear();
  auto& e = entries_[address];
  ++e.failures;
  e.last = std::chrono::steady_clock::now();
}

void AuthThrottle::succeeded(const std::string& address) {
  std::lock_guard lock(mu_);
  entries_.erase(address);
}

}  // namespace tern::server
