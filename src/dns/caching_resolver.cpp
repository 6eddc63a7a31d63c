// The shared DNS cache and the caching resolver; see caching_resolver.h.
#include "dns/caching_resolver.h"

#include <algorithm>

namespace tern::dns {

namespace {

std::string key_of(char type, std::string name) {
  if (!name.empty() && name.back() == '.') name.pop_back();
  for (char& c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return std::string(1, type) + name;
}

std::size_t record_bytes(const MxRecord& r) {
  return sizeof r + r.host.size();
}
std::size_t record_bytes(const AddressRecord& r) {
  return sizeof r + r.address.size();
}
std::size_t record_bytes(const TxtRecord& r) {
  return sizeof r + r.text.size();
}

template <typename Result>
std::size_t result_bytes(const std::string& key, const Result& result) {
  std::size_t n = 2 * key.size() + sizeof(Result) + result.message.size() + 64;
  for (const auto& record : result.records) n += record_bytes(record);
  return n;
}

}  // namespace

DnsCache::DnsCache(DnsCacheLimits limits, Clock clock)
    : limits_(limits), clock_(clock ? std::move(clock) : Clock(std::chrono::steady_clock::now)) {}

DnsCache& DnsCache::shared() {
  static DnsCache cache;
  return cache;
}

template <typename Result>
std::optional<Result> DnsCache::find(char type, const std::string& name) {
  std::string key = key_of(type, name);
  auto now = clock_();
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  Entry& entry = it->second;
  const Result* cached = std::get_if<Result>(&entry.answer);
  if (cached == nullptr || now >= entry.expires) {
    erase(it);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, entry.position);
  Result result = *cached;
  auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(now - entry.stored).count();
  for (auto& record : result.records) {
    record.ttl = record.ttl > elapsed ? record.ttl - static_cast<std::uint32_t>(elapsed) : 0;
  }
  return result;
}

template <typename Result>
void DnsCache::put(char type, const std::string& name, const Result& result) {
  std::uint32_t ttl = 0;
  if (result.ok()) {
    ttl = limits_.max_ttl;
    for (const auto& record : result.records) ttl = std::min(ttl, record.ttl);
  } else if (result.error == DnsError::kNxDomain || result.error == DnsError::kNoData) {
    ttl = result.negative_ttl > 0 ? result.negative_ttl : limits_.default_negative_ttl;
    ttl = std::min(ttl, limits_.max_negative_ttl);
  }
  if (ttl == 0 || limits_.max_entries == 0) return;  // temporary, or not to be cached
  std::string key = key_of(type, name);
  std::size_t bytes = result_bytes(key, result);
  if (bytes > limits_.max_bytes) return;
  auto now = clock_();
  std::lock_guard lock(mutex_);
  if (auto it = entries_.find(key); it != entries_.end()) erase(it);
  while (!lru_.empty() &&
         (entries_.size() >= limits_.max_entries || bytes_ + bytes > limits_.max_bytes)) {
    erase(entries_.find(lru_.back()));
  }
  lru_.push_front(key);
  bytes_ += bytes;
  entries_.emplace(std::move(key),
                   Entry{result, now, now + std::chrono::seconds(ttl), lru_.begin(), bytes});
}

void DnsCache::erase(std::unordered_map<std::string, Entry>::iterator it) {
  bytes_ -= it->second.bytes;
  lru_.erase(it->second.position);
  entries_.erase(it);
}

std::optional<MxResult> DnsCache::find_mx(const std::string& name) {
  return find<MxResult>('M', name);
}
std::optional<AddressResult> DnsCache::find_addresses(const std::string& name) {
  return find<AddressResult>('A', name);
}
std::optional<TxtResult> DnsCache::find_txt(const std::string& name) {
  return find<TxtResult>('T', name);
}
void DnsCache::store(const std::string& name, const MxResult& result) {
  put('M', name, result);
}
void DnsCache::store(const std::string& name, const AddressResult& result) {
  put('A', name, result);
}
void DnsCache::store(const std::string& name, const TxtResult& result) {
  put('T', name, result);
}

std::size_t DnsCache::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

std::size_t DnsCache::bytes() const {
  std::lock_guard lock(mutex_);
  return bytes_;
}

void DnsCache::clear() {
  std::lock_guard lock(mutex_);
  entries_.clear();
  lru_.clear();
  bytes_ = 0;
}

net::awaitable<MxResult> CachingResolver::mx(std::string domain) {
  DnsCache& cache = cache_;
  if (auto hit = cache.find_mx(domain)) co_return std::move(*hit);
  auto result = co_await inner_.mx(domain);
  cache.store(domain, result);
  co_return result;
}

net::awaitable<AddressResult> CachingResolver::addresses(std::string host) {
  DnsCache& cache = cache_;
  if (auto hit = cache.find_addresses(host)) co_return std::move(*hit);
  auto result = co_await inner_.addresses(host);
  cache.store(host, result);
  co_return result;
}

net::awaitable<TxtResult> CachingResolver::txt(std::string name) {
  DnsCache& cache = cache_;
  if (auto hit = cache.find_txt(name)) co_return std::move(*hit);
  auto result = co_await inner_.txt(name);
  cache.store(name, result);
  co_return result;
}

}  // namespace tern::dns
