// Local delivery into a Maildir (maildir(5)); see maildir.h. POSIX calls
// throughout, so every step that can fail is seen and named in the outcome.
// The folders (opened without following symbolic links, cached per maildir,
// the shared fsync of new/) are maildir_folders.cpp's; every step here is
// relative to their descriptors. The file is written as an unnamed inode of
// new/ (O_TMPFILE) and fsync'd, then linked into new/ under its name — or,
// where the file system has no O_TMPFILE, written as tmp/<name> and linked
// (renamed) into new/ — and new/ is fsync'd before success is reported;
// EEXIST from the link means an earlier attempt stored it already.
#include "delivery/maildir.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include "delivery/maildir_folders.h"
#include "util/fd.h"

namespace tern::delivery {

namespace {

using util::Fd;

Outcome outcome_of(const Failure& f) {
  std::string reason = f.error == ELOOP ? f.what + " is a symbolic link; refused, not followed"
                                        : f.what + ": " + std::generic_category().message(f.error);
  if (f.error == ELOOP) spdlog::error("maildir: {}", reason);
  Outcome o = (f.error == ENOSPC || f.error == EDQUOT)
                  ? Outcome::temporary_failure(Scope::kRecipient,
                                               {452, "4.2.2", "Mailbox full (" + reason + ")"})
                  : Outcome::temporary_failure(
                        Scope::kRecipient, {451, "4.3.0", "Maildir delivery failed: " + reason});
  o.remote_host = "maildir";
  return o;
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

// Whether cur/ holds the message: an entry that starts with stable (the name
// up to ",S=") followed by "," (fields a reader added, or the size) or ":" (its
// info, a reader saw it).
bool in_cur(const Folders& f, std::string_view stable) {
  int fd = ::openat(f.cur.get(), ".", kDirFlags);
  if (fd < 0) return false;
  DIR* dir = ::fdopendir(fd);
  if (!dir) {
    ::close(fd);
    return false;
  }
  bool found = false;
  while (dirent* e = ::readdir(dir)) {
    std::string_view entry(e->d_name);
    if (entry.starts_with(stable) && (entry.size() == stable.size() ||
                                      entry[stable.size()] == ',' || entry[stable.size()] == ':')) {
      found = true;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

// Writes data to tmp/name and syncs it. A file of that name is left from an
// attempt that crashed: it is removed first, never truncated (it may be a
// link to the copy in new/).
std::optional<Failure> write_tmp(const Folders& f, const std::filesystem::path& path,
                                 const std::string& name, std::string_view data) {
  constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  Fd fd(::openat(f.tmp.get(), name.c_str(), kFlags, 0600));
  if (!fd.ok() && errno == EEXIST) {
    if (::unlinkat(f.tmp.get(), name.c_str(), 0) != 0 && errno != ENOENT)
      return failure("remove stale", path);
    fd = Fd(::openat(f.tmp.get(), name.c_str(), kFlags, 0600));
  }
  if (!fd.ok()) return failure("create", path);
  std::optional<Failure> error;
  if (!write_all(fd.get(), data))
    error = failure("write", path);
  else if (fsync_retrying(fd.get()) != 0)
    error = failure("fsync", path);
  if (error) ::unlinkat(f.tmp.get(), name.c_str(), 0);
  return error;
}

// tmp/name → new/name without ever replacing a file: link(2), or rename(2)
// with RENAME_NOREPLACE where the file system has no hard links. Sets
// already when new/ had it.
std::optional<Failure> move_into_new(const Folders& f, const std::filesystem::path& to,
                                     const std::string& name, bool& already) {
  int linked = ::linkat(f.tmp.get(), name.c_str(), f.newdir.get(), name.c_str(), 0);
  if (linked == 0 || errno == EEXIST) {
    already = linked != 0;
    ::unlinkat(f.tmp.get(), name.c_str(), 0);
    return std::nullopt;
  }
  if (errno != EPERM && errno != EOPNOTSUPP && errno != ENOSYS && errno != EMLINK) {
    Failure fail = failure("link into", to);
    ::unlinkat(f.tmp.get(), name.c_str(), 0);
    return fail;
  }
  if (::renameat2(f.tmp.get(), name.c_str(), f.newdir.get(), name.c_str(), RENAME_NOREPLACE) == 0)
    return std::nullopt;
  if (errno == EEXIST) {
    already = true;
    ::unlinkat(f.tmp.get(), name.c_str(), 0);
    return std::nullopt;
  }
  Failure fail = failure("rename into", to);
  ::unlinkat(f.tmp.get(), name.c_str(), 0);
  return fail;
}

// The file written as an unnamed inode of new/'s file system (O_TMPFILE),
// synced, then given its name in new/ without ever replacing a file: what
// maildir(5)'s tmp/ is for (no reader ever sees a partial file, a crash leaves
// nothing behind), for two folder entry changes less per delivery. False when
// the file system has no O_TMPFILE: the caller goes through tmp/.
bool write_unnamed(const Folders& f, const std::filesystem::path& to, const std::string& name,
                   std::string_view data, std::optional<Failure>& fail) {
  Fd fd(::openat(f.newdir.get(), ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
  if (!fd.ok()) {
    if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL || errno == ENOENT) return false;
    fail = failure("create in", to.parent_path());
    return true;
  }
  if (!write_all(fd.get(), data)) {
    fail = failure("write", to);
  } else if (fsync_retrying(fd.get()) != 0) {
    fail = failure("fsync", to);
  } else {
    // linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH; the /proc path does not.
    std::string self = "/proc/self/fd/" + std::to_string(fd.get());
    if (::linkat(AT_FDCWD, self.c_str(), f.newdir.get(), name.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      if (errno == ENOENT) return false;                     // no /proc (a chroot): through tmp/
      if (errno != EEXIST) fail = failure("link into", to);  // EEXIST: a repeat, stored already
    }
  }
  return true;
}

std::optional<Failure> store(const std::filesystem::path& maildir, const MaildirMessage& message,
                             const std::string& name, std::string_view data) {
  std::shared_ptr<Handles> h;
  if (auto fail = handles_of(maildir, h)) return fail;
  const Folders& f = h->f;
  std::filesystem::path stored = maildir / "new" / name;
  if (message.may_be_repeat && message.id != 0) {
    // In new/: stored already; only the sync may be missing (the crash may
    // have come before it). Neither writes nor links again: a reader could
    // move it to cur/ meanwhile and the link would make a second copy.
    struct stat st {};
    if (::fstatat(f.newdir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      ::unlinkat(f.tmp.get(), name.c_str(), 0);  // left when the crash came before its unlink
      return sync_new(*h, maildir);
    }
    // In cur/: a reader has seen it. (Looked at after new/: a move between
    // the two looks is found here.)
    if (in_cur(f, std::string_view(name).substr(0, name.rfind(",S=")))) return std::nullopt;
    ::unlinkat(f.tmp.get(), name.c_str(), 0);  // half written by the attempt that crashed
  }
  bool already = false;
  std::optional<Failure> fail;
  if (!write_unnamed(f, stored, name, data, fail)) {  // no O_TMPFILE here: through tmp/
    fail = write_tmp(f, maildir / "tmp" / name, name, data);
    if (!fail) fail = move_into_new(f, stored, name, already);
  }
  // Also when new/ had it already: the crash may have come before this sync.
  // A failure leaves the file: the repeat finds it and syncs again.
  if (!fail) fail = sync_new(*h, maildir);
  if (fail) forget(maildir, h);
  return fail;
}

}  // namespace

std::string maildir_file_name(const MaildirMessage& m, std::size_t size) {
  if (m.id == 0) return unique_name(m.hostname, size);
  // "<arrival seconds>.M<usec>I<InternalId>R<recipient>.<host>,S=<size>"
  std::int64_t seconds = m.arrival_ms / 1000, usec = (m.arrival_ms % 1000) * 1000;
  return std::to_string(seconds) + ".M" + std::to_string(usec) + "I" + std::to_string(m.id) + "R" +
         std::to_string(m.recipient_index) + "." + safe_hostname(m.hostname) +
         ",S=" + std::to_string(size);
}

Outcome deliver_to_maildir(const std::filesystem::path& maildir, const MaildirMessage& message) {
  std::string data = file_content(message);
  std::string name = maildir_file_name(message, data.size());
  if (auto f = store(maildir, message, name, data)) return outcome_of(*f);
  std::string path = (maildir / "new" / name).string();
  Outcome o = Outcome::delivered_by({250, "2.0.0", "Delivered to maildir " + path}, "maildir");
  o.remote = false;  // tern's own reply, not a next hop's
  return o;
}

}  // namespace tern::delivery
