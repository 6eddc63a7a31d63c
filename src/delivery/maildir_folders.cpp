// The folders of one Maildir; see maildir_folders.h. Every step after the
// maildir is opened (create, open, fsync) is relative to the open descriptors,
// so a symbolic link swapped in is never followed.
#include "delivery/maildir_folders.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <unordered_map>
#include <utility>

namespace tern::delivery {

Failure failure(std::string what, const std::filesystem::path& path) {
  if (errno == ELOOP) return {ELOOP, path.string()};  // "<path> is a symbolic link"
  return {errno, std::move(what) + " " + path.string()};
}

int fsync_retrying(int fd) {
  int rc;
  do rc = ::fsync(fd);
  while (rc != 0 && errno == EINTR);
  return rc;
}

namespace {

using util::Fd;

// fsync(2) of a folder by path, so that entries made in it survive a crash.
std::optional<Failure> sync_dir(const std::filesystem::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.ok()) return failure("open", dir);
  if (fsync_retrying(fd.get()) != 0) return failure("fsync", dir);
  return std::nullopt;
}

// One parent folder of the maildir, mode 0700, its own parent synced when it
// is new; fine when it is a folder already. (The administrator's path up to
// the maildir may go through symbolic links; the maildir itself may not.)
std::optional<Failure> make_dir(const std::filesystem::path& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0)
    return sync_dir(dir.has_parent_path() ? dir.parent_path() : std::filesystem::path("."));
  int error = errno;
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return std::nullopt;
  errno = error == EEXIST ? ENOTDIR : error;
  return failure("create folder", dir);
}

// openat(dir, name) of a folder without following a symbolic link. Linux
// answers ENOTDIR (O_DIRECTORY) or ELOOP (O_NOFOLLOW) for a link: errno is
// ELOOP whenever the entry is one, so that the outcome names it.
Fd open_folder(int dir, const char* name) {
  Fd fd(::openat(dir, name, kDirFlags));
  if (!fd.ok() && (errno == ENOTDIR || errno == ELOOP)) {
    int error = errno;
    struct stat st {};
    errno =
        ::fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode) ? ELOOP : error;
  }
  return fd;
}

// sub (cur, new or tmp) of the open maildir: created 0700 when missing (the
// maildir synced then), opened without following a symbolic link.
std::optional<Failure> open_sub(const Fd& maildir, const std::filesystem::path& path,
                                const char* sub, Fd& out) {
  if (::mkdirat(maildir.get(), sub, 0700) == 0) {
    if (fsync_retrying(maildir.get()) != 0) return failure("fsync", path);
  } else if (errno != EEXIST) {
    return failure("create folder", path / sub);
  }
  out = open_folder(maildir.get(), sub);
  if (!out.ok()) return failure("open", path / sub);
  return std::nullopt;
}

// The maildir with its parents (mkdir -p), then cur/, new/ and tmp/.
std::optional<Failure> open_maildir(const std::filesystem::path& maildir, Folders& f) {
  f.maildir = open_folder(AT_FDCWD, maildir.c_str());
  if (!f.maildir.ok() && errno == ENOENT) {
    std::filesystem::path sofar;
    for (const auto& part : maildir) {
      if (part.empty()) continue;
      sofar /= part;
      if (sofar == maildir) break;
      if (auto fail = make_dir(sofar)) return fail;
    }
    if (::mkdir(maildir.c_str(), 0700) == 0) {
      if (auto fail = sync_dir(maildir.has_parent_path() ? maildir.parent_path()
                                                         : std::filesystem::path(".")))
        return fail;
    } else if (errno != EEXIST) {
      return failure("create folder", maildir);
    }
    f.maildir = open_folder(AT_FDCWD, maildir.c_str());
  }
  if (!f.maildir.ok()) return failure("open", maildir);
  if (auto fail = open_sub(f.maildir, maildir, "cur", f.cur)) return fail;
  if (auto fail = open_sub(f.maildir, maildir, "new", f.newdir)) return fail;
  if (auto fail = open_sub(f.maildir, maildir, "tmp", f.tmp)) return fail;
  return std::nullopt;
}

// Whether the folder entry name of dir (AT_FDCWD: a path) is still the folder
// that was opened: a real folder, same device and inode.
bool same_folder(int dir, const char* name, const struct stat& opened) {
  struct stat st {};
  return ::fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
         st.st_dev == opened.st_dev && st.st_ino == opened.st_ino;
}

bool still_valid(const std::filesystem::path& maildir, const Handles& h) {
  return same_folder(AT_FDCWD, maildir.c_str(), h.maildir_st) &&
         same_folder(h.f.maildir.get(), "tmp", h.tmp_st) &&
         same_folder(h.f.maildir.get(), "new", h.new_st) &&
         same_folder(h.f.maildir.get(), "cur", h.cur_st);
}

std::optional<Failure> open_handles(const std::filesystem::path& maildir,
                                    std::shared_ptr<Handles>& out) {
  auto h = std::make_shared<Handles>();
  if (auto fail = open_maildir(maildir, h->f)) return fail;
  // (An fstat that fails leaves zeros: the next check fails and reopens.)
  ::fstat(h->f.maildir.get(), &h->maildir_st);
  ::fstat(h->f.tmp.get(), &h->tmp_st);
  ::fstat(h->f.newdir.get(), &h->new_st);
  ::fstat(h->f.cur.get(), &h->cur_st);
  out = std::move(h);
  return std::nullopt;
}

// The cache: maildir path → its handles, at most kMaxCached (then emptied).
constexpr std::size_t kMaxCached = 256;
std::mutex cache_mutex;
std::unordered_map<std::string, std::shared_ptr<Handles>> cache;

}  // namespace

std::optional<Failure> handles_of(const std::filesystem::path& maildir,
                                  std::shared_ptr<Handles>& out) {
  {
    std::lock_guard lock(cache_mutex);
    if (auto it = cache.find(maildir.native()); it != cache.end()) out = it->second;
  }
  if (out && still_valid(maildir, *out)) return std::nullopt;
  out.reset();
  if (auto fail = open_handles(maildir, out)) {
    std::lock_guard lock(cache_mutex);
    cache.erase(maildir.native());
    return fail;
  }
  std::lock_guard lock(cache_mutex);
  if (cache.size() >= kMaxCached) cache.clear();  // in use ones live on in their callers
  cache[maildir.native()] = out;
  return std::nullopt;
}

// Forgets the cached folders after a failure: the next delivery opens them
// afresh (and names what is wrong, a symbolic link for instance).
void forget(const std::filesystem::path& maildir, const std::shared_ptr<Handles>& h) {
  std::lock_guard lock(cache_mutex);
  if (auto it = cache.find(maildir.native()); it != cache.end() && it->second == h) cache.erase(it);
}

std::optional<Failure> sync_new(Handles& h, const std::filesystem::path& maildir) {
  std::unique_lock lock(h.sync_mutex);
  const std::uint64_t needed = h.started + 1;  // the first to start after the link
  while (h.done < needed) {
    if (h.syncing) {
      h.synced.wait(lock);
      continue;
    }
    h.syncing = true;
    const std::uint64_t generation = ++h.started;
    lock.unlock();
    int rc = fsync_retrying(h.f.newdir.get());
    int error = rc == 0 ? 0 : errno;
    lock.lock();
    h.syncing = false;
    h.done = generation;
    if (rc != 0) {
      h.failed = generation;
      h.failed_error = error;
    }
    h.synced.notify_all();
  }
  // A failed sync from `needed` on may not have covered the link (pessimistic:
  // the repeat finds the file in new/ and syncs again).
  if (h.failed >= needed) {
    errno = h.failed_error;
    return failure("fsync", maildir / "new");
  }
  return std::nullopt;
}

}  // namespace tern::delivery
