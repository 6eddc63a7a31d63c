// The control socket of a running server: the Unix socket <spool>/control.sock,
// mode 0600, in the spool folder (0700), reached through
// /proc/self/fd/<the spool folder's descriptor>/ so that a spool path of any
// length fits sun_path's 108 bytes. The server answers only root and its own
// user; the client talks only to a server running as root, as itself or as the
// configured user (SO_PEERCRED on both sides).
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
  // Binds the socket in the spool folder at path (a stale socket file is
  // removed, anything else there is an error); throws std::runtime_error.
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
  int folder_fd_ = -1;  // the spool folder (O_PATH), for the socket file's name
};

// The socket file's name inside the spool folder.
inline constexpr const char* kControlSocketName = "control.sock";

// Client side, for `tern queue`: the answer of the server whose spool is at
// path, or nullopt when none runs (a control.sock that is a symbolic link is
// not connected to). A server whose uid is not that of the account `user`
// (nor, for a client that is not root, ours) gets nothing: the answer is an
// "error: …" line. tern serve never runs as root, so root trusts no uid 0.
std::optional<std::string> control_request(const std::filesystem::path& path,
                                           const std::string& user, const std::string& line);

}  // namespace tern::server
