// The folders of one Maildir for maildir.cpp (internal): the maildir and its
// tmp/, new/, cur/ made when missing and opened with O_NOFOLLOW|O_DIRECTORY (a
// symbolic link is refused with ELOOP, never followed), kept open per maildir in
// a bounded cache that is checked against the paths before each use, and the
// fsync of new/ that deliveries into one maildir at the same time share.
// Blocking, thread-safe.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "util/fd.h"

namespace tern::delivery {

// A failed step: the errno and what was being done ("write /x/tmp/y").
struct Failure {
  int error = 0;
  std::string what;
};

// The Failure of the step just failed (errno): ELOOP names the path as a
// symbolic link.
Failure failure(std::string what, const std::filesystem::path& path);

// fsync(2), repeated when a signal interrupts it.
int fsync_retrying(int fd);

// How every folder is opened: read only, a folder, never through a symbolic link.
inline constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

// The folders of one maildir, opened without following symbolic links.
struct Folders {
  util::Fd maildir, tmp, cur, newdir;
};

// One maildir's open folders, kept between deliveries (a bounded cache), with
// what they were when opened, so that a folder replaced since (removed,
// renamed, a symbolic link put in its place) is noticed and opened afresh;
// and the state that lets deliveries into it share one fsync of new/.
struct Handles {
  Folders f;
  struct stat maildir_st {};  // each folder as opened (device, inode)
  struct stat tmp_st {};
  struct stat new_st {};
  struct stat cur_st {};
  // Sync generations of new/: a sync covers every link made before it started.
  std::mutex sync_mutex;
  std::condition_variable synced;
  std::uint64_t started = 0;  // syncs started
  std::uint64_t done = 0;     // the last one ended (they run one at a time)
  std::uint64_t failed = 0;   // the last one that failed
  int failed_error = 0;
  bool syncing = false;
};

// The maildir's folders: the cached ones while they are still the folders at
// that path, else opened (and made, mkdir -p, mode 0700) afresh.
std::optional<Failure> handles_of(const std::filesystem::path& maildir,
                                  std::shared_ptr<Handles>& out);

// Forgets the cached folders after a failure: the next delivery opens them
// afresh (and names what is wrong, a symbolic link for instance).
void forget(const std::filesystem::path& maildir, const std::shared_ptr<Handles>& h);

// fsync of new/ once every link this thread made there is covered: a sync
// that started after the link. Deliveries into the same maildir at the same
// time share one: at most one runs; a link made after it started waits for
// the next, which one of the waiters runs.
std::optional<Failure> sync_new(Handles& h, const std::filesystem::path& maildir);

}  // namespace tern::delivery
