// The file loggers behind tern's CSV logs: one file per day (the name is a
// strftime pattern), a header written when a file is started, lines prefixed
// with the UTC time, a background thread doing the writing.
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

}  // namespace tern::log
