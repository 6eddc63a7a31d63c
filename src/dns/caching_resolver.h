// A TTL-respecting DNS cache shared by every event loop (DnsCache) and the
// Resolver that consults it before asking the one it wraps (CachingResolver).
// Answers live as long as their TTL (RFC 1035 §3.2.1, RFC 2181 §5.2: the
// lowest of the RRset), NXDOMAIN and NODATA as long as RFC 2308 §5 says but
// never longer than a cap; temporary failures are never cached. Bounded in
// entries and in bytes: the least recently used answers go first.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>

#include "dns/resolver.h"

namespace tern::dns {

struct DnsCacheLimits {
  std::size_t max_entries = 20000;          // least recently used answers go first
  std::size_t max_bytes = 32u << 20;        // names and record data, roughly
  std::uint32_t max_ttl = 86400;            // a day, whatever the zone says
  std::uint32_t max_negative_ttl = 900;     // RFC 2308 §5 allows hours; mail retries sooner
  std::uint32_t default_negative_ttl = 60;  // NXDOMAIN/NODATA without an SOA record
};

// Thread-safe: one mutex around a map and an LRU list. Each event loop has
// its own Resolver; they all share one DnsCache.
class DnsCache {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  explicit DnsCache(DnsCacheLimits limits = {}, Clock clock = {});

  // A cached answer with its records' TTLs reduced by the time spent in the
  // cache, or nothing. Names are compared without case and trailing dot.
  std::optional<MxResult> find_mx(const std::string& name);
  std::optional<AddressResult> find_addresses(const std::string& name);
  std::optional<TxtResult> find_txt(const std::string& name);

  // Keeps an answer for its TTL; temporary failures and TTL 0 are not kept.
  void store(const std::string& name, const MxResult& result);
  void store(const std::string& name, const AddressResult& result);
  void store(const std::string& name, const TxtResult& result);

  std::size_t size() const;   // entries
  std::size_t bytes() const;  // what they hold, as counted against max_bytes
  void clear();

  // The cache of the process, for the server's resolvers and sender checks.
  static DnsCache& shared();

 private:
  using Answer = std::variant<MxResult, AddressResult, TxtResult>;
  struct Entry {
    Answer answer;
    std::chrono::steady_clock::time_point stored, expires;
    std::list<std::string>::iterator position;  // in lru_, most recent first
    std::size_t bytes = 0;                      // counted against max_bytes
  };

  template <typename Result>
  std::optional<Result> find(char type, const std::string& name);
  template <typename Result>
  void put(char type, const std::string& name, const Result& result);
  void erase(std::unordered_map<std::string, Entry>::iterator it);  // with the lock held

  DnsCacheLimits limits_;
  Clock clock_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  std::list<std::string> lru_;
  std::size_t bytes_ = 0;
};

// Answers from the cache when it can, else asks inner and caches the answer.
// Lives on inner's event loop; both must outlive the calls awaited on it.
class CachingResolver final : public Resolver {
 public:
  CachingResolver(Resolver& inner, DnsCache& cache) : inner_(inner), cache_(cache) {}

  net::awaitable<MxResult> mx(std::string domain) override;
  net::awaitable<AddressResult> addresses(std::string host) override;
  net::awaitable<TxtResult> txt(std::string name) override;

  DnsCache& cache() { return cache_; }

 private:
  Resolver& inner_;
  DnsCache& cache_;
};

}  // namespace tern::dns
