// The writing side of a spool's message trail (trail.h): record() queues an
// event in memory (a mutex and a push, safe on an event loop); the writer's own
// thread hands the queued events to the store in one batch, and every sweep
// interval asks it to expire trails older than the retention ([log] trail).
// A store that throws is logged (once a minute at most); mail goes on. Events
// beyond kMaxQueued while the store is slow are dropped and counted.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "log/tracking_log.h"
#include "queue/trail.h"

namespace tern::queue {

// The trail's events for one tracking log line: one per recipient (a RECEIVE
// names them all, joined by ';'), at time_ms; each field cut to kMaxField
// bytes (the reply to kMaxReply).
inline constexpr std::size_t kMaxField = 512;
inline constexpr std::size_t kMaxReply = 1024;
std::vector<TrailEvent> trail_events(const log::TrackingEvent& event, std::int64_t time_ms);

class TrailWriter {
 public:
  // At most ~3 KB each (the field bounds): ~150 MB while the store is stuck.
  static constexpr std::size_t kMaxQueued = 50'000;
  // Once an event is queued the writer waits this long, or for kBatch events,
  // before it writes: one write for many events when mail is busy.
  static constexpr std::chrono::milliseconds kLinger{20};
  static constexpr std::size_t kBatch = 1000;
  using Write = std::function<void(const std::vector<TrailEvent>&)>;
  // Drops the trails whose newest event is older than cutoff_ms (Unix ms) and
  // whose message is no longer queued.
  using Expire = std::function<void(std::int64_t cutoff_ms)>;

  TrailWriter(std::uint64_t retention_ms, Write write, Expire expire);
  ~TrailWriter();
  TrailWriter(const TrailWriter&) = delete;
  TrailWriter& operator=(const TrailWriter&) = delete;

  void record(TrailEvent event);
  // Writes what is queued and stops the thread; later records are dropped.
  void stop();

  // How often the writer sweeps: a quarter of the retention, between 1 s and 1 h.
  static std::chrono::milliseconds sweep_interval(std::uint64_t retention_ms);

 private:
  void run();
  void write_logged(const std::vector<TrailEvent>& batch);

  std::uint64_t retention_ms_;
  Write write_;
  Expire expire_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<TrailEvent> queued_;
  bool stopping_ = false;
  std::uint64_t dropped_ = 0;
  std::chrono::steady_clock::time_point last_error_log_{};
  std::thread thread_;
};

}  // namespace tern::queue
