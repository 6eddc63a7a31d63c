#include "server/control_socket.h"

#include <sys/socket.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>
#include <cstdio>
#include <functional>
#include <stdexcept>

#include "util/text.h"

namespace tern::server {

using asio::local::stream_protocol;

namespace {

// "\0tern-control-<hash of the spool's absolute path>"
stream_protocol::endpoint control_endpoint(const std::filesystem::path& spool) {
  std::string key = std::filesystem::absolute(spool).lexically_normal().string();
  std::size_t hash = std::hash<std::string>{}(key);
  char name[64];
  int n = std::snprintf(name, sizeof name, "%ctern-control-%016zx", '\0', hash);
  return stream_protocol::endpoint(std::string(name, static_cast<std::size_t>(n)));
}

bool same_user(stream_protocol::socket& socket) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  return cred.uid == 0 || cred.uid == geteuid();
}

}  // namespace

ControlSocket::ControlSocket(asio::any_io_executor executor, std::filesystem::path path,
                             queue::Scheduler& scheduler)
    : executor_(executor), path_(std::move(path)), scheduler_(scheduler), acceptor_(executor) {
  std::error_code ec;
  acceptor_.open(stream_protocol(), ec);
  if (!ec) acceptor_.bind(control_endpoint(path_), ec);
  if (!ec) acceptor_.listen(16, ec);
  if (ec)
    throw std::runtime_error("cannot create the control socket for spool " + path_.string() + ": " +
                             ec.message());
}

ControlSocket::~ControlSocket() = default;

void ControlSocket::start() {
  asio::co_spawn(executor_, accept_loop(), asio::detached);
}

void ControlSocket::stop() {
  std::error_code ec;
  acceptor_.close(ec);
}

net::awaitable<void> ControlSocket::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(net::use_tuple);
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
    if (!ec) asio::co_spawn(executor_, serve(std::move(socket)), asio::detached);
  }
}

net::awaitable<void> ControlSocket::serve(stream_protocol::socket socket) {
  if (!same_user(socket)) co_return;
  asio::streambuf buffer(4096);
  auto [ec, n] = co_await asio::async_read_until(socket, buffer, '\n', net::use_tuple);
  if (ec) co_return;
  std::string line(asio::buffers_begin(buffer.data()), asio::buffers_begin(buffer.data()) + n - 1);
  std::string answer;
  try {
    answer = co_await execute(std::string(util::trim(line)));
  } catch (const std::exception& e) {  // one failed request, never the server
    answer = std::string("error: ") + e.what();
  }
  answer += "\n";
  co_await asio::async_write(socket, asio::buffer(answer), net::use_tuple);
}

net::awaitable<std::string> ControlSocket::execute(const std::string& line) {
  auto words = util::split(line, ' ');
  if (words.size() == 1 && words[0] == "ping") co_return "ok: pong";
  if (words.size() != 2) co_return "error: expected \"retry|delete|bounce ID\"";
  if (words[0] == "retry" && words[1] == "all") co_return co_await scheduler_.retry(std::nullopt);
  auto id = util::parse_uint(words[1]);
  if (!id) co_return "error: \"" + std::string(words[1]) + "\" is not an InternalId";
  if (words[0] == "retry") co_return co_await scheduler_.retry(*id);
  if (words[0] == "delete") co_return co_await scheduler_.remove(*id);
  if (words[0] == "bounce") co_return co_await scheduler_.bounce(*id);
  co_return "error: unknown action \"" + std::string(words[0]) + "\"";
}

std::optional<std::string> control_request(const std::filesystem::path& path,
                                           const std::string& line) {
  asio::io_context io;
  stream_protocol::socket socket(io);
  std::error_code ec;
  socket.connect(control_endpoint(path), ec);
  if (ec) return std::nullopt;
  asio::write(socket, asio::buffer(line + "\n"), ec);
  if (ec) return std::nullopt;
  asio::streambuf buffer(4096);
  std::size_t n = asio::read_until(socket, buffer, '\n', ec);
  if (ec && n == 0) return std::nullopt;
  if (n == 0) return std::nullopt;
  std::string answer(asio::buffers_begin(buffer.data()),
                     asio::buffers_begin(buffer.data()) + n - 1);
  return std::string(util::trim(answer));
}

}  // namespace tern::server
