#include "log/spdlog_files.h"

#include <spdlog/sinks/daily_file_sink.h>
#include <spdlog/spdlog.h>
#include <atomic>

#include <mutex>

namespace tern::log {

std::shared_ptr<spdlog::logger> daily_csv_logger(const std::string& name,
                                                 const std::filesystem::path& pattern,
                                                 const std::string& header) {
  static std::once_flag flusher_once;
  std::call_once(flusher_once, [] { spdlog::flush_every(std::chrono::seconds(1)); });
  static std::atomic<unsigned> serial{0};
  std::filesystem::create_directories(pattern.parent_path());
  spdlog::file_event_handlers handlers;
  handlers.after_open = [header](const spdlog::filename_t&, std::FILE* file) {
    std::fseek(file, 0, SEEK_END);
    if (std::ftell(file) == 0) std::fputs(header.c_str(), file);
  };
  auto sink = std::make_shared<spdlog::sinks::daily_file_format_sink_mt>(pattern.string(), 0, 0,
                                                                         false, 0, handlers);
  auto logger = std::make_shared<spdlog::logger>(name + "-" + std::to_string(serial++), sink);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ,%v", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::info);
  logger->flush_on(spdlog::level::warn);
  spdlog::register_logger(logger);  // for the periodic flush
  return logger;
}

void release_logger(const std::shared_ptr<spdlog::logger>& logger) {
  if (!logger) return;
  logger->flush();
  spdlog::drop(logger->name());
}

}  // namespace tern::log
