#include "log/protocol_log.h"

#include <spdlog/sinks/daily_file_sink.h>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "log/csv.h"
#include "log/spdlog_files.h"
#include "util/random.h"

namespace tern::log {

ProtocolLog::ProtocolLog(const std::filesystem::path& directory, bool enabled) {
  if (!enabled) return;
  logger_ = daily_csv_logger(
      "protocol", directory / "smtp-receive-%Y%m%d.log",
      "#Software: tern\n#Log-type: SMTP Receive Protocol Log\n"
      "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,"
      "event,data\n");
}

ProtocolLog::~ProtocolLog() {
  flush();
}

void ProtocolLog::flush() {
  if (logger_) logger_->flush();
}

ProtocolLog::Session::Session(ProtocolLog* log, std::string listener, std::string local,
                              std::string remote)
    : log_(log && log->enabled() ? log : nullptr),
      listener_(std::move(listener)),
      local_(std::move(local)),
      remote_(std::move(remote)) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llX", static_cast<unsigned long long>(util::random_u64()));
  id_ = buf;
}

void ProtocolLog::Session::event(char kind, std::string_view data) {
  if (!log_) return;
  std::string line;
  line.reserve(96 + data.size());
  append_csv_field(line, listener_);
  line += ',';
  line += id_;
  line += ',';
  line += std::to_string(sequence_++);
  line += ',';
  line += local_;
  line += ',';
  line += remote_;
  line += ',';
  line += kind;
  line += ',';
  append_csv_field(line, data);
  log_->logger_->log(spdlog::level::info, spdlog::string_view_t(line));  // not a format string
}

}  // namespace tern::log
