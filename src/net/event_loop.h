// The last boundary of every event-loop thread (DESIGN principle 6): an
// exception that escapes a handler is logged and the loop runs on, so one
// failure never ends the process. Coroutines have their own, narrower
// boundaries (a connection, a delivery attempt); this is the net below them.
#pragma once

#include <spdlog/spdlog.h>

#include <asio/io_context.hpp>
#include <exception>
#include <string_view>

namespace tern::net {

inline void run_event_loop(asio::io_context& loop, std::string_view name) {
  for (;;) {
    try {
      loop.run();
      return;
    } catch (const std::exception& e) {
      spdlog::error("{}: internal error, the loop goes on: {}", name, e.what());
    } catch (...) {
      spdlog::error("{}: internal error, the loop goes on", name);
    }
  }
}

}  // namespace tern::net
