// See trail_writer.h.
#include "queue/trail_writer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>

namespace tern::queue {

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Each field of an event is kept to a bound: a stranger's message with a
// 998-byte Message-ID and a long reply must not cost kilobytes per recipient
// and event for a month (the RECEIVE of 200 recipients is 200 events).
std::string bounded(std::string_view text, std::size_t limit) {
  return std::string(text.substr(0, limit));
}

}  // namespace

std::vector<TrailEvent> trail_events(const log::TrackingEvent& e, std::int64_t time_ms) {
  std::vector<TrailEvent> out;
  std::string_view rest = e.recipient;
  do {
    auto semi = rest.find(';');
    TrailEvent t;
    t.time_ms = time_ms;
    t.event = e.event;
    t.id = e.id;
    t.message_id = bounded(e.message_id, kMaxField);
    t.sender = bounded(e.sender, kMaxField);
    t.recipient = bounded(rest.substr(0, semi), kMaxField);
    t.remote_host = bounded(e.remote, kMaxField);
    t.reply = bounded(e.detail, kMaxReply);
    out.push_back(std::move(t));
    rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
  } while (!rest.empty());
  return out;
}

TrailWriter::TrailWriter(std::uint64_t retention_ms, Write write, Expire expire)
    : retention_ms_(retention_ms), write_(std::move(write)), expire_(std::move(expire)) {
  thread_ = std::thread([this] { run(); });
}

TrailWriter::~TrailWriter() {
  stop();
}

std::chrono::milliseconds TrailWriter::sweep_interval(std::uint64_t retention_ms) {
  auto quarter = std::chrono::milliseconds(retention_ms / 4);
  return std::clamp<std::chrono::milliseconds>(quarter, std::chrono::seconds(1),
                                               std::chrono::hours(1));
}

void TrailWriter::record(TrailEvent event) {
  std::lock_guard lock(mu_);
  if (stopping_) return;
  if (queued_.size() >= kMaxQueued) {
    ++dropped_;
    return;
  }
  queued_.push_back(std::move(event));
  if (queued_.size() == 1 || queued_.size() == kBatch) cv_.notify_one();
}

void TrailWriter::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

void TrailWriter::write_logged(const std::vector<TrailEvent>& batch) {
  try {
    write_(batch);
  } catch (const std::exception& e) {
    auto now = std::chrono::steady_clock::now();
    if (now - last_error_log_ >= std::chrono::minutes(1)) {
      last_error_log_ = now;
      spdlog::warn("trail: {} event(s) not kept: {}", batch.size(), e.what());
    }
  }
}

// Sweeps once at start (trails that ran out while tern was stopped), then
// every sweep interval; in between, writes whatever was recorded meanwhile.
void TrailWriter::run() {
  auto interval = sweep_interval(retention_ms_);
  auto next_sweep = std::chrono::steady_clock::now();
  std::vector<TrailEvent> batch;
  auto sweep = [&] {
    try {
      expire_(now_ms() - static_cast<std::int64_t>(retention_ms_));
    } catch (const std::exception& e) {
      spdlog::warn("trail: expiry failed: {}", e.what());
    }
    next_sweep = std::chrono::steady_clock::now() + interval;
  };
  sweep();
  for (;;) {
    std::uint64_t dropped = 0;
    bool stopping = false;
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, next_sweep, [&] { return !queued_.empty() || stopping_; });
      // A moment for more to come: fewer, larger writes under load.
      if (!queued_.empty() && queued_.size() < kBatch)
        cv_.wait_for(lock, kLinger, [&] { return stopping_ || queued_.size() >= kBatch; });
      batch.swap(queued_);
      std::swap(dropped, dropped_);
      stopping = stopping_;
    }
    if (dropped > 0) spdlog::warn("trail: {} event(s) dropped while writing lagged", dropped);
    if (!batch.empty()) write_logged(batch);
    batch.clear();
    if (stopping) return;
    if (std::chrono::steady_clock::now() >= next_sweep) sweep();
  }
}

}  // namespace tern::queue
