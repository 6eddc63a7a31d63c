// Local delivery into a Maildir (maildir(5)); see maildir.h. POSIX calls
// throughout, so every step that can fail is seen and named in the outcome:
// tmp/<unique> is written and fsync'd, linked into new/ (rename where the file
// system has no hard links), and new/ is fsync'd before success is reported.
#include "delivery/maildir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <optional>
#include <string>
#include <system_error>

namespace tern::delivery {

namespace {

// A failed step: the errno and what was being done ("write /x/tmp/y").
struct Failure {
  int error = 0;
  std::string what;
};

Failure failure(std::string what, const std::filesystem::path& path) {
  return {errno, std::move(what) + " " + path.string()};
}

Outcome outcome_of(const Failure& f) {
  std::string reason = f.what + ": " + std::generic_category().message(f.error);
  Outcome o = (f.error == ENOSPC || f.error == EDQUOT)
                  ? Outcome::temporary_failure(Scope::kRecipient,
                                               {452, "4.2.2", "Mailbox full (" + reason + ")"})
                  : Outcome::temporary_failure(
                        Scope::kRecipient, {451, "4.3.0", "Maildir delivery failed: " + reason});
  o.remote_host = "maildir";
  return o;
}

int fsync_retrying(int fd) {
  int rc;
  do rc = ::fsync(fd);
  while (rc != 0 && errno == EINTR);
  return rc;
}

// fsync(2) of a folder, so that entries made in it survive a crash.
std::optional<Failure> sync_dir(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return failure("open", dir);
  std::optional<Failure> error;
  if (fsync_retrying(fd) != 0) error = failure("fsync", dir);
  ::close(fd);
  return error;
}

// One folder, mode 0700, its parent synced when it is new; fine when it is a
// folder already.
std::optional<Failure> make_dir(const std::filesystem::path& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0)
    return sync_dir(dir.has_parent_path() ? dir.parent_path() : std::filesystem::path("."));
  int error = errno;
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return std::nullopt;
  errno = error == EEXIST ? ENOTDIR : error;
  return failure("create folder", dir);
}

// The maildir with its parents (mkdir -p), then cur/, new/ and tmp/.
std::optional<Failure> make_maildir(const std::filesystem::path& maildir) {
  struct stat st {};
  if (::stat(maildir.c_str(), &st) != 0) {
    std::filesystem::path sofar;
    for (const auto& part : maildir) {
      if (part.empty()) continue;
      sofar /= part;
      if (auto f = make_dir(sofar)) return f;
    }
  }
  for (const char* sub : {"cur", "new", "tmp"})
    if (auto f = make_dir(maildir / sub)) return f;
  return std::nullopt;
}

// maildir(5): "/" and ":" in the host name become \057 and \072; "," and "\"
// too, so that ",S=" and the escapes stay unambiguous.
std::string safe_hostname(std::string_view host) {
  std::string out;
  for (unsigned char c : host) {
    if (c == '/' || c == ':' || c == ',' || c == '\\' || c <= 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\%03o", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  if (out.empty()) out = "localhost";
  return out;
}

// "<seconds>.M<usec>P<pid>Q<n>.<host>,S=<size>": unique within this process by
// the counter, across processes by the pid, across machines by the host name.
std::string unique_name(std::string_view hostname, std::size_t size) {
  static std::atomic<std::uint64_t> counter{0};
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return std::to_string(now.tv_sec) + ".M" + std::to_string(now.tv_nsec / 1000) + "P" +
         std::to_string(::getpid()) + "Q" + std::to_string(++counter) + "." +
         safe_hostname(hostname) + ",S=" + std::to_string(size);
}

// A header value on one line, whatever the caller passed.
std::string field_value(std::string_view value) {
  std::string out;
  for (char c : value)
    if (c != '\r' && c != '\n') out += c;
  return out;
}

// The stored file: Return-Path and Delivered-To, then the message with LF line ends.
std::string file_content(const MaildirMessage& m) {
  std::string out = "Return-Path: <" + field_value(m.return_path) + ">\n";
  out += "Delivered-To: " + field_value(m.delivered_to) + "\n";
  out.reserve(out.size() + m.content.size());
  for (std::size_t i = 0; i < m.content.size(); ++i) {
    if (m.content[i] == '\r' && i + 1 < m.content.size() && m.content[i + 1] == '\n') continue;
    out += m.content[i];
  }
  return out;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Writes data to a new file at path and syncs it; removes it on failure.
std::optional<Failure> write_file(const std::filesystem::path& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return failure("create", path);
  std::optional<Failure> error;
  if (!write_all(fd, data))
    error = failure("write", path);
  else if (fsync_retrying(fd) != 0)
    error = failure("fsync", path);
  if (::close(fd) != 0 && !error && errno != EINTR) error = failure("close", path);
  if (error) ::unlink(path.c_str());
  return error;
}

// tmp/name → new/name without ever replacing a file: link(2), or rename(2)
// where the file system has no hard links.
std::optional<Failure> move_into_new(const std::filesystem::path& from,
                                     const std::filesystem::path& to) {
  if (::link(from.c_str(), to.c_str()) == 0) {
    ::unlink(from.c_str());
    return std::nullopt;
  }
  if (errno != EPERM && errno != EOPNOTSUPP && errno != ENOSYS && errno != EMLINK)
    return failure("link into", to);
  if (::rename(from.c_str(), to.c_str()) != 0) return failure("rename into", to);
  return std::nullopt;
}

std::optional<Failure> store(const std::filesystem::path& maildir, const std::string& name,
                             std::string_view data) {
  if (auto f = make_maildir(maildir)) return f;
  std::filesystem::path tmp = maildir / "tmp" / name, stored = maildir / "new" / name;
  if (auto f = write_file(tmp, data)) return f;
  if (auto f = move_into_new(tmp, stored)) {
    ::unlink(tmp.c_str());
    return f;
  }
  if (auto f = sync_dir(maildir / "new")) {
    ::unlink(stored.c_str());  // not durable: report failure, leave no duplicate
    return f;
  }
  return std::nullopt;
}

}  // namespace

Outcome deliver_to_maildir(const std::filesystem::path& maildir, const MaildirMessage& message) {
  std::string data = file_content(message);
  std::string name = unique_name(message.hostname, data.size());
  if (auto f = store(maildir, name, data)) return outcome_of(*f);
  std::string path = (maildir / "new" / name).string();
  Outcome o = Outcome::delivered_by({250, "2.0.0", "Delivered to maildir " + path}, "maildir");
  o.remote = false;  // tern's own reply, not a next hop's
  return o;
}

}  // namespace tern::delivery
