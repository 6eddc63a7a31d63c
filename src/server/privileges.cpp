#include "server/privileges.h"

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

namespace tern::server {

namespace fs = std::filesystem;

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

// mkdir of one missing folder, mode 0700 (whatever the umask), owned by owner
// when there is one.
void make_folder(const fs::path& dir, const Account* owner, const Folder& folder) {
  if (::mkdir(dir.c_str(), 0700) != 0) {
    int error = errno;
    struct stat st {};
    if (error == EEXIST && ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return;
    throw PrivilegeError("cannot create " + folder.what + " " + dir.string() + ": " +
                         errno_text(error));
  }
  ::chmod(dir.c_str(), 0700);
  if (owner && ::lchown(dir.c_str(), owner->uid, owner->gid) != 0)
    throw PrivilegeError("cannot give " + dir.string() + " to user " + in_quotes(owner->name) +
                         ": " + errno_text(errno));
}

void prepare_folder(const Folder& folder, const Account* owner, Prepare prepare) {
  const fs::path dir = fs::absolute(folder.path).lexically_normal();
  struct stat st {};
  bool exists = ::lstat(dir.c_str(), &st) == 0;
  if (exists && S_ISLNK(st.st_mode)) {
    if (folder.strict)
      throw PrivilegeError("the " + folder.what + " " + dir.string() +
                           " is a symbolic link: tern does not follow it; configure the folder it "
                           "points to instead");
    exists = ::stat(dir.c_str(), &st) == 0;
  }
  if (exists && !S_ISDIR(st.st_mode))
    throw PrivilegeError("the " + folder.what + " " + dir.string() + " is not a folder");
  if (!exists) {
    if (prepare == Prepare::kExisting) return;
    fs::path sofar = dir.root_path();
    for (const auto& part : dir.relative_path()) {
      if (part.empty()) continue;
      sofar /= part;
      struct stat s {};
      if (::lstat(sofar.c_str(), &s) != 0) make_folder(sofar, owner, folder);
    }
    return;
  }
  uid_t keeper = owner ? owner->uid : ::geteuid();
  if (folder.strict && (st.st_mode & 077) && (st.st_uid == keeper || st.st_uid == 0)) {
    spdlog::warn("the {} {} was open to others ({}): now 0700", folder.what, dir.string(),
                 describe_mode(dir));
    if (::chmod(dir.c_str(), 0700) != 0)
      throw PrivilegeError("cannot chmod 0700 " + dir.string() + ": " + errno_text(errno));
  }
  // A folder root made for tern (an installer's mkdir) becomes the user's; what
  // is inside is left as it is (chown -R it when a tern running as root wrote it).
  if (owner && st.st_uid == 0) {
    if (::lchown(dir.c_str(), owner->uid, owner->gid) != 0)
      throw PrivilegeError("cannot give " + dir.string() + " to user " + in_quotes(owner->name) +
                           ": " + errno_text(errno));
    spdlog::info("the {} {} now belongs to user {}", folder.what, dir.string(), owner->name);
  }
}

bool is_root() {
  return ::geteuid() == 0;
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
  std::vector<Folder> folders{{config.spool.path, "spool folder", true},
                              {config.log.directory, "log folder", true}};
  std::set<fs::path> seen;
  for (const auto& m : config.mailboxes) {
    if (m.maildir.empty()) continue;
    fs::path p = fs::absolute(m.maildir).lexically_normal();
    if (seen.insert(p).second) folders.push_back({p, "Maildir of " + m.address, false});
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

void drop_to(const Account& account) {
  if (::initgroups(account.name.c_str(), account.gid) != 0)
    throw PrivilegeError("cannot set the groups of user " + in_quotes(account.name) + ": " +
                         errno_text(errno));
  gid_t groups[256];
  int n = ::getgroups(256, groups);
  for (int i = 0; i < n; ++i)
    if (groups[i] == 0)
      throw PrivilegeError("user " + in_quotes(account.name) +
                           " is a member of group root: tern does not run with it");
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

void become_user(const config::Config& config, const std::vector<Folder>& folders, Prepare prepare,
                 bool announce) {
  ::umask(077);  // whatever tern creates from here on: 0600 files, 0700 folders
  std::optional<Account> account;
  if (is_root()) account = lookup_account(config.user);
  for (const auto& f : folders) prepare_folder(f, account ? &*account : nullptr, prepare);
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
  }
  for (const auto& f : folders) {
    struct stat st {};
    if (::stat(f.path.c_str(), &st) != 0 && prepare == Prepare::kExisting) continue;
    if (auto why = unreachable(f.path))
      throw PrivilegeError("user " + user_name(::geteuid()) + " cannot use the " + f.what + " " +
                           fs::absolute(f.path).lexically_normal().string() + ": " + *why);
  }
}

}  // namespace tern::server
