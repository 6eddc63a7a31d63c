// The message tracking log (SPEC §5): one CSV line per event in a message's
// life — RECEIVE, DELIVER, SEND, DEFER, FAIL, DSN — with the InternalId,
// Message-ID, sender, recipient, remote host and the reply or reason.
// One file per day in the log folder. A sink (the spool's message trail) gets
// every event too; it is set once before the first write.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace spdlog {
class logger;
}

namespace tern::log {

struct TrackingEvent {
  std::string_view event;  // "RECEIVE", ...
  std::uint64_t id = 0;
  std::string_view message_id;
  std::string_view sender;
  std::string_view recipient;  // one address, or several joined by ';'
  std::string_view remote;     // client address (RECEIVE) or next hop
  std::uint64_t size = 0;
  std::string_view detail;  // the reply or reason
};

class TrackingLog {
 public:
  TrackingLog(const std::filesystem::path& directory);
  ~TrackingLog();
  using Sink = std::function<void(const TrackingEvent&)>;
  void set_sink(Sink sink) { sink_ = std::move(sink); }
  void write(const TrackingEvent& event);
  void flush();

 private:
  std::shared_ptr<spdlog::logger> logger_;
  Sink sink_;
};

}  // namespace tern::log
