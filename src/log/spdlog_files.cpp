#include "log/spdlog_files.h"

#include <spdlog/sinks/daily_file_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <mutex>

namespace tern::log {

namespace {

// A log file that cannot be written (ENOSPC, EIO) costs its lines, never the
// mail: the file sink's errors stop here. One line on stderr when an episode
// starts, one when lines are written again.
class GuardedSink final : public spdlog::sinks::sink {
 public:
  GuardedSink(std::string name, std::shared_ptr<spdlog::sinks::sink> inner)
      : name_(std::move(name)), inner_(std::move(inner)) {}

  void log(const spdlog::details::log_msg& msg) override {
    try {
      inner_->log(msg);  // into the file's buffer: only a flush tells it reached the file
      if (failing_.load(std::memory_order_relaxed)) written_since_failure_.fetch_add(1);
    } catch (const std::exception& e) {
      failed(e.what());
    }
  }
  void flush() override {
    try {
      inner_->flush();
      ok();
    } catch (const std::exception& e) {
      failed(e.what());
    }
  }
  void set_pattern(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
    inner_->set_formatter(std::move(formatter));
  }

 private:
  // A flush that wrote lines logged since the failure: the file takes lines
  // again (a flush with nothing to write proves nothing).
  void ok() {
    if (!failing_.load(std::memory_order_relaxed)) return;
    if (written_since_failure_.exchange(0) == 0) return;
    if (failing_.exchange(false))
      std::fprintf(stderr, "tern: %s log written again (%llu failed write(s) meanwhile)\n",
                   name_.c_str(), static_cast<unsigned long long>(dropped_.exchange(0)));
  }
  void failed(const char* what) {
    dropped_.fetch_add(1);
    written_since_failure_.store(0);
    if (!failing_.exchange(true))
      std::fprintf(stderr, "tern: %s log cannot be written, dropping lines until it can: %s\n",
                   name_.c_str(), what);
  }

  std::string name_;
  std::shared_ptr<spdlog::sinks::sink> inner_;
  std::atomic<bool> failing_{false};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> written_since_failure_{0};
};

}  // namespace

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
  auto file = std::make_shared<spdlog::sinks::daily_file_format_sink_mt>(pattern.string(), 0, 0,
                                                                         false, 0, handlers);
  auto sink = std::make_shared<GuardedSink>(name, std::move(file));
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
