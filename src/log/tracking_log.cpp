#include "log/tracking_log.h"

#include <spdlog/spdlog.h>

#include "log/csv.h"
#include "log/spdlog_files.h"

namespace tern::log {

TrackingLog::TrackingLog(const std::filesystem::path& directory)
    : logger_(daily_csv_logger("tracking", directory / "message-tracking-%Y%m%d.log",
                               "#Software: tern\n#Log-type: Message Tracking Log\n"
                               "#Fields: date-time,event,internal-id,message-id,sender,"
                               "recipients,remote,size,detail\n")) {}

TrackingLog::~TrackingLog() {
  flush();
}

void TrackingLog::flush() {
  logger_->flush();
}

void TrackingLog::write(const TrackingEvent& e) {
  std::string line;
  line.reserve(160);
  line += e.event;
  line += ',';
  line += std::to_string(e.id);
  line += ',';
  append_csv_field(line, e.message_id);
  line += ',';
  append_csv_field(line, e.sender);
  line += ',';
  append_csv_field(line, e.recipient);
  line += ',';
  append_csv_field(line, e.remote);
  line += ',';
  line += std::to_string(e.size);
  line += ',';
  append_csv_field(line, e.detail);
  logger_->log(spdlog::level::info, spdlog::string_view_t(line));  // not a format string
  if (sink_) sink_(e);
}

}  // namespace tern::log
