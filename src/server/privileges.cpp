#include "server/privileges.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <system_error>
#include <utility>

#include "queue/maildrop.h"
#include "util/fd.h"

namespace tern::server {

namespace fs = std::filesystem;

std::function<void(const fs::path&)> after_mkdir_for_tests;

namespace {

std::string in_quotes(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

std::string errno_text(int error) {
  return std::system_category().message(error);
}

std::string user_name(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  char buf[4096];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found) return found->pw_name;
  return std::to_string(uid);
}

std::string group_name(gid_t gid) {
  group gr{};
  group* found = nullptr;
  char buf[4096];
  if (getgrgid_r(gid, &gr, buf, sizeof buf, &found) == 0 && found) return found->gr_name;
  return std::to_string(gid);
}

using util::Fd;

// A folder opened for fchmod/fchown, never through a symbolic link.
constexpr int kFolderFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
// An ancestor, only to create or open names in it: it may be a symbolic link
// the administrator made (/var/mail -> /var/spool/mail).
constexpr int kAncestorFlags = O_PATH | O_DIRECTORY | O_CLOEXEC;

// 0700 and the owner's (when there is one), through the open folder fd.
void secure(int fd, const fs::path& dir, const Account* owner) {
  if (::fchmod(fd, 0700) != 0)
    throw PrivilegeError("cannot chmod 0700 " + dir.string() + ": " + errno_text(errno));
  if (owner && ::fchown(fd, owner->uid, owner->gid) != 0)
    throw PrivilegeError("cannot give " + dir.string() + " to user " + in_quotes(owner->name) +
                         ": " + errno_text(errno));
}

// mkdirat of dir (named name in the open folder parent), mode 0700 whatever
// the umask, owned by owner when there is one; the new folder, open. An
// invalid Fd when the name exists already (made by someone else meanwhile).
Fd make_folder(int parent, const std::string& name, const fs::path& dir, const Account* owner,
               const Folder& folder) {
  if (::mkdirat(parent, name.c_str(), 0700) != 0) {
    if (errno == EEXIST) return Fd();
    throw PrivilegeError("cannot create " + folder.what + " " + dir.string() + ": " +
                         errno_text(errno));
  }
  if (after_mkdir_for_tests) after_mkdir_for_tests(dir);
  // Whoever may write to the parent may have replaced the new folder by now:
  // with a symbolic link (O_NOFOLLOW refuses it) or a folder of their own
  // (not ours: refused too).
  Fd fd(::openat(parent, name.c_str(), kFolderFlags));
  int error = errno;
  struct stat st {};
  if (!fd.ok() || ::fstat(fd.get(), &st) != 0 || st.st_uid != ::geteuid())
    throw PrivilegeError(
        "the " + folder.what + " " + dir.string() + " was replaced while tern created it (" +
        (fd.ok()                              ? std::string("by a folder of another user")
         : error == ELOOP || error == ENOTDIR ? std::string("by a symbolic link or a file")
                                              : errno_text(error)) +
        "): nothing was changed through it; check who may write to " + dir.parent_path().string());
  secure(fd.get(), dir, owner);
  return fd;
}

// Creates dir and its missing parents. False when dir itself turned out to
// exist (someone made it meanwhile): the caller treats it as an existing one.
bool create_folder(const fs::path& dir, const Account* owner, const Folder& folder) {
  Fd at(::open(dir.root_path().c_str(), kAncestorFlags));
  if (!at.ok()) throw PrivilegeError("cannot open / : " + errno_text(errno));
  std::vector<fs::path> parts;
  for (const auto& part : dir.relative_path())
    if (!part.empty()) parts.push_back(part);
  fs::path sofar = dir.root_path();
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string name = parts[i].string();
    sofar /= parts[i];
    const bool last = i + 1 == parts.size();
    struct stat st {};
    Fd next;
    if (::fstatat(at.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      next = make_folder(at.get(), name, sofar, owner, folder);
    if (next.ok()) {
      at = std::move(next);
      continue;
    }
    if (last) return false;
    at = Fd(::openat(at.get(), name.c_str(), kAncestorFlags));
    if (!at.ok())
      throw PrivilegeError("cannot create " + folder.what + " " + dir.string() + ": " +
                           sofar.string() + ": " + errno_text(errno));
  }
  return true;
}

// Whether name is one tern writes in a folder of that kind.
bool terns_file(FolderKind kind, std::string_view name) {
  auto starts = [&](std::string_view p) { return name.substr(0, p.size()) == p; };
  auto ends = [&](std::string_view s) {
    return name.size() > s.size() && name.substr(name.size() - s.size()) == s;
  };
  switch (kind) {
    case FolderKind::kSpool: {  // RocksDB's names, and the control socket
      if (name == "CURRENT" || name == "IDENTITY" || name == "LOCK" || name == "LOG" ||
          name == "control.sock" || starts("LOG.old.") || starts("MANIFEST-") || starts("OPTIONS-"))
        return true;
      auto dot = name.find('.');
      if (dot == 0 || dot == std::string_view::npos) return false;
      for (char c : name.substr(0, dot))
        if (c < '0' || c > '9') return false;
      return ends(".log") || ends(".sst") || ends(".blob") || ends(".dbtmp");
    }
    case FolderKind::kLog:
      return starts("smtp-receive-") || starts("message-tracking-");
    case FolderKind::kMaildir:
      return name == "tmp" || name == "new" || name == "cur";
    case FolderKind::kMaildrop:
      return name == maildrop::kBadFolder || maildrop::valid_name(name) ||
             starts(maildrop::kTempPrefix);
  }
  return false;
}

// The first entry of the open folder fd that tern would not have written
// there, or nullopt when there is none (an empty folder, or tern's own).
std::optional<std::string> foreign_entry(int fd, FolderKind kind) {
  int copy = ::dup(fd);
  DIR* d = copy < 0 ? nullptr : ::fdopendir(copy);
  if (!d) {
    if (copy >= 0) ::close(copy);
    return "(unreadable: " + errno_text(errno) + ")";
  }
  std::optional<std::string> found;
  while (const dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    if (!terns_file(kind, name)) {
      found = std::string(name);
      break;
    }
  }
  ::closedir(d);
  return found;
}

void prepare_folder(const Folder& folder, const Account* owner, Prepare prepare) {
  const fs::path dir = fs::absolute(folder.path).lexically_normal();
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    if (prepare == Prepare::kExisting) return;
    if (create_folder(dir, owner, folder)) return;
    if (::lstat(dir.c_str(), &st) != 0)
      throw PrivilegeError("cannot create " + folder.what + " " + dir.string() + ": " +
                           errno_text(errno));
  }
  if (S_ISLNK(st.st_mode))
    throw PrivilegeError(
        "the " + folder.what + " " + dir.string() +
        " is a symbolic link: tern does not follow it; " +
        (folder.strict() ? "configure the folder it points to instead" : "it is left as it is"));
  if (!S_ISDIR(st.st_mode))
    throw PrivilegeError("the " + folder.what + " " + dir.string() + " is not a folder");
  const uid_t keeper = owner ? owner->uid : ::geteuid();
  auto open_to_others = [&](const struct stat& s) {
    return folder.strict() && folder.kind != FolderKind::kMaildrop && (s.st_mode & 077) &&
           (s.st_uid == keeper || s.st_uid == 0);
  };
  auto take_over = [&](const struct stat& s) { return owner && s.st_uid == 0; };
  if (!open_to_others(st) && !take_over(st)) return;
  // From here on only through a descriptor: a symbolic link swapped in since
  // the lstat is refused, never followed.
  Fd fd(::open(dir.c_str(), kFolderFlags));
  if (!fd.ok() || ::fstat(fd.get(), &st) != 0)
    throw PrivilegeError("cannot open the " + folder.what + " " + dir.string() + ": " +
                         errno_text(errno));
  const bool chmod_it = open_to_others(st);
  const bool chown_it = take_over(st);
  if (!chmod_it && !chown_it) return;
  // root's folder is taken over only when it is tern's: empty, or holding
  // only what tern writes there (never /var/log or a home folder).
  if (st.st_uid == 0 && st.st_uid != keeper) {
    if (auto other = foreign_entry(fd.get(), folder.kind))
      throw PrivilegeError("the " + folder.what + " " + dir.string() +
                           " belongs to root and holds " + in_quotes(*other) +
                           ", which is not tern's: tern takes over only an empty folder or one "
                           "with its own files; give tern a folder of its own (for example " +
                           (dir / (folder.strict()                        ? "tern"
                                   : folder.kind == FolderKind::kMaildrop ? "maildrop"
                                                                          : "Maildir"))
                               .string() +
                           ")");
  }
  if (chmod_it) {
    spdlog::warn("the {} {} was open to others ({}): now 0700", folder.what, dir.string(),
                 describe_mode(dir));
    if (::fchmod(fd.get(), 0700) != 0)
      throw PrivilegeError("cannot chmod 0700 " + dir.string() + ": " + errno_text(errno));
  }
  // A folder root made for tern (an installer's mkdir) becomes the user's; what
  // is inside is left as it is (chown -R it when a tern running as root wrote it).
  if (chown_it) {
    if (::fchown(fd.get(), owner->uid, owner->gid) != 0)
      throw PrivilegeError("cannot give " + dir.string() + " to user " + in_quotes(owner->name) +
                           ": " + errno_text(errno));
    spdlog::info("the {} {} now belongs to user {}", folder.what, dir.string(), owner->name);
  }
}

bool is_root() {
  return ::geteuid() == 0;
}

// What a problem with a folder that is not strict() costs until it is fixed.
const char* consequence(const Folder& f) {
  return f.kind == FolderKind::kMaildrop ? "sendmail cannot submit and tern picks nothing up"
                                         : "delivery to it answers 451";
}

constexpr mode_t kMaildropMode = 03733;

// The maildrop after prepare_folder made it tern's: mode 03733 with the
// group of tern's user (files made in it take that group, so tern reads them
// while other users cannot), and bad/ (0700) inside. Only through
// descriptors opened without following symbolic links.
void finish_maildrop(const Folder& folder, const Account* owner) {
  const fs::path dir = fs::absolute(folder.path).lexically_normal();
  const uid_t keeper = owner ? owner->uid : ::geteuid();
  const gid_t group = owner ? owner->gid : ::getegid();
  Fd fd(::open(dir.c_str(), kFolderFlags));
  struct stat st {};
  if (!fd.ok() || ::fstat(fd.get(), &st) != 0)
    throw PrivilegeError("cannot open the " + folder.what + " " + dir.string() + ": " +
                         errno_text(errno));
  if (st.st_uid != keeper)
    throw PrivilegeError("the " + folder.what + " " + dir.string() + " is " + describe_mode(dir) +
                         ", not tern's user's: give tern a folder of its own ([spool] maildrop)");
  if (st.st_gid != group && ::fchown(fd.get(), static_cast<uid_t>(-1), group) != 0)
    throw PrivilegeError("cannot give " + dir.string() +
                         " the group of tern's user: " + errno_text(errno));
  if ((st.st_mode & 07777) != kMaildropMode && ::fchmod(fd.get(), kMaildropMode) != 0)
    throw PrivilegeError("cannot chmod 3733 " + dir.string() + ": " + errno_text(errno));
  const std::string bad(maildrop::kBadFolder);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (::fstatat(fd.get(), bad.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (::mkdirat(fd.get(), bad.c_str(), 0700) != 0 && errno != EEXIST)
        throw PrivilegeError("cannot create " + (dir / bad).string() + ": " + errno_text(errno));
      continue;
    }
    if (S_ISDIR(st.st_mode) && st.st_uid == keeper) break;
    if (st.st_uid != keeper && st.st_uid != ::geteuid()) {
      // Made by a local user before tern: set aside under a name the pickup
      // moves into bad/ itself once that exists.
      std::string aside = ".foreign-bad." + maildrop::new_name();
      if (::renameat(fd.get(), bad.c_str(), fd.get(), aside.c_str()) != 0)
        throw PrivilegeError("cannot move " + (dir / bad).string() +
                             " aside: " + errno_text(errno));
      spdlog::warn("{} was not tern's: renamed {}", (dir / bad).string(), aside);
      continue;
    }
    break;
  }
  Fd bad_fd(::openat(fd.get(), bad.c_str(), kFolderFlags));
  if (!bad_fd.ok() || ::fstat(bad_fd.get(), &st) != 0)
    throw PrivilegeError("cannot open " + (dir / bad).string() + ": " + errno_text(errno));
  if (::fchmod(bad_fd.get(), 0700) != 0 ||
      (owner && ::fchown(bad_fd.get(), owner->uid, owner->gid) != 0))
    throw PrivilegeError("cannot give " + (dir / bad).string() +
                         " to tern's user: " + errno_text(errno));
  // Local users reach the maildrop only through searchable ancestors.
  for (fs::path p = dir.parent_path(); !p.empty(); p = p.parent_path()) {
    struct stat a {};
    if (::stat(p.c_str(), &a) == 0 && !(a.st_mode & S_IXOTH)) {
      spdlog::warn(
          "{} is {}: local users other than tern's cannot reach the maildrop {} "
          "(sendmail answers EX_NOPERM for them); chmod o+x {}",
          p.string(), describe_mode(p), dir.string(), p.string());
      break;
    }
    if (p == p.root_path()) break;
  }
}

}  // namespace

Account lookup_account(const std::string& name) {
  passwd pw{};
  passwd* found = nullptr;
  char buf[16384];
  int rc = getpwnam_r(name.c_str(), &pw, buf, sizeof buf, &found);
  if (rc != 0 || !found)
    throw PrivilegeError("user " + in_quotes(name) +
                         " does not exist: create it (useradd --system --no-create-home " + name +
                         ") or set user in the configuration");
  if (found->pw_uid == 0 || found->pw_gid == 0)
    throw PrivilegeError("user " + in_quotes(name) +
                         " is root (uid or gid 0): tern does not run as root; create a user for "
                         "it (useradd --system --no-create-home tern) and set user to it");
  return Account{found->pw_name, found->pw_uid, found->pw_gid};
}

std::vector<Folder> serve_folders(const config::Config& config) {
  std::vector<Folder> folders{{config.spool.path, "spool folder", FolderKind::kSpool},
                              {config.log.directory, "log folder", FolderKind::kLog},
                              {config.spool.maildrop, "maildrop folder", FolderKind::kMaildrop}};
  std::set<fs::path> seen;
  for (const auto& m : config.mailboxes) {
    if (m.maildir.empty()) continue;
    fs::path p = fs::absolute(m.maildir).lexically_normal();
    if (seen.insert(p).second)
      folders.push_back({p, "Maildir of " + m.address, FolderKind::kMaildir});
  }
  return folders;
}

bool process_access(const fs::path& path, int mode) {
  return ::access(path.c_str(), mode) == 0;
}

std::string describe_mode(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return "missing (" + errno_text(errno) + ")";
  std::string text = S_ISDIR(st.st_mode) ? "d" : S_ISLNK(st.st_mode) ? "l" : "-";
  const char* letters = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) text += (st.st_mode & (0400 >> i)) ? letters[i] : '-';
  return text + " " + user_name(st.st_uid) + ":" + group_name(st.st_gid);
}

std::optional<std::string> unreachable(const fs::path& folder, const AccessCheck& check) {
  const fs::path dir = fs::absolute(folder).lexically_normal();
  fs::path sofar = dir.root_path();
  for (const auto& part : dir.relative_path()) {
    if (part.empty()) continue;
    if (!check(sofar, X_OK))
      return sofar.string() + " is " + describe_mode(sofar) +
             ", which it may not search (x): make it searchable (chmod o+x " + sofar.string() +
             ") or move the folder elsewhere";
    sofar /= part;
  }
  if (!check(dir, R_OK | W_OK | X_OK))
    return dir.string() + " itself is " + describe_mode(dir) +
           ", which it may not read and write: give it to that user";
  return std::nullopt;
}

void refuse_root_group(const std::string& user) {
  int n = ::getgroups(0, nullptr);
  std::vector<gid_t> groups(n > 0 ? n : 0);
  if (n > 0) n = ::getgroups(n, groups.data());
  if (n < 0)
    throw PrivilegeError("cannot read the groups of user " + in_quotes(user) + ": " +
                         errno_text(errno));
  for (int i = 0; i < n; ++i)
    if (groups[i] == 0)
      throw PrivilegeError("user " + in_quotes(user) +
                           " is a member of group root: tern does not run with it");
}

void drop_to(const Account& account) {
  if (::initgroups(account.name.c_str(), account.gid) != 0)
    throw PrivilegeError("cannot set the groups of user " + in_quotes(account.name) + ": " +
                         errno_text(errno));
  refuse_root_group(account.name);
  if (::setgid(account.gid) != 0)
    throw PrivilegeError("cannot set group id " + std::to_string(account.gid) + ": " +
                         errno_text(errno));
  if (::setuid(account.uid) != 0)
    throw PrivilegeError("cannot set user id " + std::to_string(account.uid) + ": " +
                         errno_text(errno));
  // For good: neither the real nor the saved ids may give root back.
  if (::setuid(0) == 0 || ::seteuid(0) == 0 || ::setgid(0) == 0 || ::getuid() != account.uid ||
      ::geteuid() != account.uid || ::getgid() != account.gid || ::getegid() != account.gid)
    throw PrivilegeError("the switch to user " + in_quotes(account.name) +
                         " did not hold: root could be regained; stopping");
}

void prepare_folders(const std::vector<Folder>& folders, const Account* owner, Prepare prepare) {
  for (const auto& f : folders) {
    if (f.strict()) {
      prepare_folder(f, owner, prepare);
      continue;
    }
    try {
      prepare_folder(f, owner, prepare);
      if (f.kind == FolderKind::kMaildrop && (prepare == Prepare::kCreate || fs::exists(f.path)))
        finish_maildrop(f, owner);
    } catch (const PrivilegeError& e) {  // one mailbox, or sendmail's folder, never the server
      spdlog::warn("{}: {} until this is fixed", e.what(), consequence(f));
    }
  }
}

void become_user(const config::Config& config, const std::vector<Folder>& folders, Prepare prepare,
                 bool announce) {
  ::umask(077);  // whatever tern creates from here on: 0600 files, 0700 folders
  std::optional<Account> account;
  if (is_root()) account = lookup_account(config.user);
  prepare_folders(folders, account ? &*account : nullptr, prepare);
  if (account) {
    drop_to(*account);
  } else if (announce) {
    std::string me = user_name(::geteuid());
    if (me != config.user)
      spdlog::info("running as user {}, not as {} (only a tern started as root switches users)", me,
                   in_quotes(config.user));
  }
  if (announce) {
    for (const auto& l : config.listeners) {
      if (l.tls == config::TlsMode::kNone) continue;
      for (const auto& file : {l.certificate, l.private_key})
        if (!process_access(file, R_OK))
          spdlog::warn("listener {}: {} is not readable by user {}: SIGHUP cannot reload it",
                       l.name, file.string(), user_name(::geteuid()));
    }
    for (const auto& k : config.dkim)
      if (!process_access(k.private_key, R_OK))
        spdlog::warn("[[dkim]] domain {}: {} is not readable by user {}: SIGHUP cannot reload it",
                     k.domain, k.private_key.string(), user_name(::geteuid()));
  }
  for (const auto& f : folders) {
    struct stat st {};
    if (::stat(f.path.c_str(), &st) != 0 && prepare == Prepare::kExisting) continue;
    auto why = unreachable(f.path);
    if (!why) continue;
    std::string text = "user " + user_name(::geteuid()) + " cannot use the " + f.what + " " +
                       fs::absolute(f.path).lexically_normal().string() + ": " + *why;
    if (f.strict()) throw PrivilegeError(text);
    spdlog::warn("{}; {} until this is fixed", text, consequence(f));
  }
}

}  // namespace tern::server
