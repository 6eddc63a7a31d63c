// The control socket of a running server: a Unix socket in Linux's abstract
// namespace named after the spool folder (file paths can be too long for a
// socket), answering only the same user or root (SO_PEERCRED).
// `tern queue retry|delete|bounce` send one line — "retry ID",
// "retry all", "delete ID", "bounce ID" — and get one line back ("ok: …" or
// "error: …"). The scheduler does the work on its own loop.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/local/stream_protocol.hpp>
#include <filesystem>
#include <optional>
#include <string>

#include "net/awaitable.h"
#include "queue/scheduler.h"

namespace tern::server {

class ControlSocket {
 public:
  // Binds the socket of the spool at path; throws std::runtime_error.
  ControlSocket(asio::any_io_executor executor, std::filesystem::path path,
                queue::Scheduler& scheduler);
  ~ControlSocket();
  void start();
  void stop();

 private:
  net::awaitable<void> accept_loop();
  net::awaitable<void> serve(asio::local::stream_protocol::socket socket);
  net::awaitable<std::string> execute(const std::string& line);

  asio::any_io_executor executor_;
  std::filesystem::path path_;
  queue::Scheduler& scheduler_;
  asio::local::stream_protocol::acceptor acceptor_;
};

// Client side, for `tern queue`: the answer of the server whose spool is at
// path, or nullopt when none runs.
std::optional<std::string> control_request(const std::filesystem::path& path,
                                           const std::string& line);

}  // namespace tern::server
