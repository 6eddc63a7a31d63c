// The file loggers behind tern's CSV logs: one file per day (the name is a
// strftime pattern), a header written when a file is started, lines prefixed
// with the UTC time. Lines are formatted by the caller into the file's buffer
// (no thread hand-off per line) and flushed every second by spdlog's flusher,
// and at shutdown: a crash may lose the last second of log lines, never mail.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace tern::log {

std::shared_ptr<spdlog::logger> daily_csv_logger(const std::string& name,
                                                 const std::filesystem::path& pattern,
                                                 const std::string& header);
// Flushes and forgets a logger made by daily_csv_logger.
void release_logger(const std::shared_ptr<spdlog::logger>& logger);

}  // namespace tern::log
