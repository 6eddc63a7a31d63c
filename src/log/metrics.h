// tern's metrics (SPEC §5): counters, gauges and histograms kept in atomics by
// the code that sees the event (sessions, the scheduler, the spool), rendered
// in the Prometheus text exposition format 0.0.4 for `GET /metrics`.
//
// Contract: updating a metric is lock-free and never allocates on the hot
// path; labels stay bounded (listener name, result class — never an address or
// a domain). render_metrics() may block briefly (gauges read at scrape time)
// and is called off the event loops.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tern::log {

// A value that only grows (relaxed: a scrape needs no ordering with the event).
class Counter {
 public:
  void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down (open connections).
class Gauge {
 public:
  void add(std::int64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  void sub(std::int64_t n = 1) { value_.fetch_sub(n, std::memory_order_relaxed); }
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

// Durations in fixed buckets (seconds, from a Maildir fsync to a slow remote
// host). Each observation lands in one bucket; the cumulative counts of the
// exposition format are summed at scrape time.
class Histogram {
 public:
  static constexpr std::array<double, 16> kBounds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

  void observe(std::chrono::nanoseconds d);
  void observe_since(std::chrono::steady_clock::time_point start) {
    observe(std::chrono::steady_clock::now() - start);
  }

  struct Snapshot {
    std::array<std::uint64_t, kBounds.size() + 1> buckets{};  // not cumulative; last: +Inf
    std::uint64_t count = 0;                                  // the sum of buckets
    double sum_seconds = 0;
  };
  Snapshot snapshot() const;

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<std::uint64_t> sum_ns_{0};
};

// How a recipient was delivered: the label `via` of the delivery series.
enum class Via : std::uint8_t { kMaildir, kLmtp, kSmtp };
inline constexpr std::size_t kVias = 3;
std::string_view via_name(Via via);

// What one [[listener]] counts. Its own cache line: each is updated from
// every event loop.
struct alignas(64) ListenerMetrics {
  Gauge connections;               // open now
  Counter connections_total;       // admitted
  Counter refused;                 // refused with 421 (connection limits, shutdown)
  Counter received;                // messages queued (250 after DATA / BDAT LAST)
  std::array<Counter, 4> replies;  // replies sent, by class 2, 3, 4, 5
  Counter auth_failures;           // AUTH with wrong credentials
  void reply(int code) {
    int cls = code / 100;
    if (cls >= 2 && cls <= 5) replies[static_cast<std::size_t>(cls - 2)].inc();
  }
};

// The queue by state, read at scrape time (tern_queue_messages{state}).
struct QueueCounts {
  std::int64_t queued = 0;       // due now, waiting for a delivery slot
  std::int64_t active = 0;       // an attempt is running
  std::int64_t deferred = 0;     // waiting for its next retry
  std::int64_t held = 0;         // held until the administrator releases it
  std::int64_t quarantined = 0;  // its record does not decode: only delete removes it
};

class Registry {
 public:
  // Listeners past this many share the last slot (a configuration of more
  // listeners than this is not expected; memory stays fixed).
  static constexpr std::size_t kMaxListeners = 64;

  Registry();

  // The [[listener]] names, in configuration order (the index Connection
  // and Server use). Called before the listeners accept.
  void set_listeners(const std::vector<std::string>& names);
  ListenerMetrics& listener(std::size_t index) {
    return listeners_[index < kMaxListeners ? index : kMaxListeners - 1];
  }

  // Per recipient, counted when the outcome is written to the spool.
  Counter& delivered(Via via) { return delivered_[static_cast<std::size_t>(via)]; }
  Counter deferred;
  Counter failed;
  Counter dsns;  // delivery status notifications tern generated
  // One attempt of a Maildir recipient, an LMTP group or a remote domain.
  Histogram& delivery_duration(Via via) { return duration_[static_cast<std::size_t>(via)]; }
  // One group commit of the spool (one synced batch, one transaction).
  Histogram spool_commit;

  // What reads the queue's state at scrape time (blocking allowed; nullopt:
  // unknown now, the series is left out). Replacing it waits for a read in
  // progress, so its owner may clear it (nullptr) and then go away.
  using QueueSource = std::function<std::optional<QueueCounts>()>;
  void set_queue_source(QueueSource source);

  // Every series in the text exposition format 0.0.4.
  std::string render();

 private:
  std::array<ListenerMetrics, kMaxListeners> listeners_;
  std::array<Counter, kVias> delivered_;
  std::array<Histogram, kVias> duration_;
  std::chrono::system_clock::time_point started_;
  std::chrono::steady_clock::time_point started_steady_;
  std::mutex names_mu_;
  std::vector<std::string> names_;
  std::mutex source_mu_;  // held while the source runs
  QueueSource queue_source_;
};

// The process's registry.
Registry& metrics();

// Every tern_* series, in text format 0.0.4.
std::string render_metrics();

// A label value as the exposition format writes it: \ " and newline escaped.
std::string escape_label_value(std::string_view value);

}  // namespace tern::log
