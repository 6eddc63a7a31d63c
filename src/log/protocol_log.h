// The SMTP protocol log (SPEC §5), as Exchange's receive connector writes it:
// one CSV line per event — date-time, connector (listener), session id,
// sequence number, local endpoint, remote endpoint, event (+ connect,
// < received, > sent, * information, - disconnect), data. One file per day in
// the log folder, written by a background thread so sessions never wait on it.
#pragma once

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace spdlog {
class logger;
}

namespace tern::log {

class ProtocolLog {
 public:
  // A disabled log (enabled = false) costs one branch per event.
  ProtocolLog(const std::filesystem::path& directory, bool enabled);
  ~ProtocolLog();
  bool enabled() const { return logger_ != nullptr; }
  void flush();

  // One session's view of the log; keeps the sequence number.
  class Session {
   public:
    Session(ProtocolLog* log, std::string listener, std::string local, std::string remote);
    void event(char kind, std::string_view data);
    const std::string& id() const { return id_; }
    bool enabled() const { return log_ != nullptr; }

   private:
    ProtocolLog* log_;
    std::string listener_, local_, remote_, id_;
    unsigned sequence_ = 0;
  };

 private:
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace tern::log
