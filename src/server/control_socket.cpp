#include "server/control_socket.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <system_error>

#include "util/text.h"

namespace tern::server {

using asio::local::stream_protocol;

namespace {

// The spool folder as an O_PATH descriptor (never through a symbolic link),
// or -1 with errno set.
int open_folder(const std::filesystem::path& spool) {
  return ::open(spool.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

// "/proc/self/fd/<fd>/control.sock": the socket file in the folder of fd,
// whatever the length of that folder's path.
stream_protocol::endpoint control_endpoint(int folder_fd) {
  return stream_protocol::endpoint("/proc/self/fd/" + std::to_string(folder_fd) + "/" +
                                   kControlSocketName);
}

std::optional<ucred> peer_credentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return std::nullopt;
  return cred;
}

bool same_user(stream_protocol::socket& socket) {
  auto cred = peer_credentials(socket.native_handle());
  return cred && (cred->uid == 0 || cred->uid == geteuid());
}

std::optional<uid_t> uid_of(const std::string& user) {
  passwd pw{};
  passwd* found = nullptr;
  char buf[4096];
  if (getpwnam_r(user.c_str(), &pw, buf, sizeof buf, &found) != 0 || !found) return std::nullopt;
  return found->pw_uid;
}

std::string errno_text(int error) {
  return std::system_category().message(error);
}

}  // namespace

ControlSocket::ControlSocket(asio::any_io_executor executor, std::filesystem::path path,
                             queue::Scheduler& scheduler)
    : executor_(executor), path_(std::move(path)), scheduler_(scheduler), acceptor_(executor) {
  const std::string where = (path_ / kControlSocketName).string();
  folder_fd_ = open_folder(path_);
  if (folder_fd_ < 0)
    throw std::runtime_error("cannot open the spool folder " + path_.string() +
                             " for the control socket: " + errno_text(errno));
  // One server per spool (the spool's lock): a socket file left here by a
  // server that was killed is stale. Anything else is not tern's to remove.
  struct stat st {};
  if (fstatat(folder_fd_, kControlSocketName, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      ::close(folder_fd_);
      throw std::runtime_error("cannot create the control socket: " + where +
                               " exists and is not a socket; remove it");
    }
    unlinkat(folder_fd_, kControlSocketName, 0);
  }
  std::error_code ec;
  acceptor_.open(stream_protocol(), ec);
  if (!ec) acceptor_.bind(control_endpoint(folder_fd_), ec);
  if (!ec && fchmodat(folder_fd_, kControlSocketName, 0600, 0) != 0)
    ec = std::error_code(errno, std::system_category());
  if (!ec) acceptor_.listen(16, ec);
  if (ec) {
    ::close(folder_fd_);
    throw std::runtime_error("cannot create the control socket " + where + ": " + ec.message());
  }
}

ControlSocket::~ControlSocket() {
  std::error_code ignored;
  acceptor_.close(ignored);
  unlinkat(folder_fd_, kControlSocketName, 0);
  ::close(folder_fd_);
}

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
    std::string request(util::trim(line));  // a named local: no temporary in the co_await
    answer = co_await execute(request);
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
                                           const std::string& user, const std::string& line) {
  int folder = open_folder(path);
  if (folder < 0) return std::nullopt;  // no spool, or not ours to see: no server to ask
  asio::io_context io;
  stream_protocol::socket socket(io);
  std::error_code ec;
  socket.open(stream_protocol(), ec);
  // Checked right before the connect, relative to the folder: a symbolic link
  // (to some other socket) is never connected to.
  struct stat st {};
  bool present = !ec && fstatat(folder, kControlSocketName, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                 S_ISSOCK(st.st_mode);
  if (present) socket.connect(control_endpoint(folder), ec);
  ::close(folder);
  if (!present || ec) return std::nullopt;  // a stale socket file: no server runs
  // The server must be tern: it never runs as root (a root-started server has
  // dropped to the configured user), so root talks only to that user, and
  // anyone else to that user or to itself.
  auto cred = peer_credentials(socket.native_handle());
  auto expected = uid_of(user);
  const bool as_root = geteuid() == 0;
  bool trusted =
      cred && ((expected && cred->uid == *expected) || (!as_root && cred->uid == geteuid()));
  if (!trusted)
    return "error: the control socket " + (path / kControlSocketName).string() +
           " is served by uid " + (cred ? std::to_string(cred->uid) : std::string("?")) +
           (as_root ? ", which is not user \"" + user + "\""
                    : ", which is neither you nor user \"" + user + "\"") +
           ": refusing to talk to it";
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
