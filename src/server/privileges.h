// Least privilege (DESIGN principle 7, SPEC §2 `user`, SPEC §4): started as
// root, tern prepares the folders it writes (0700, owned by the configured
// user), then drops to that user for good before it opens the spool. Used by
// `tern serve` and by every command that opens the spool itself (`tern queue`).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace tern::server {

// A refusal to go on, with a message for the administrator (exit status 1).
class PrivilegeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Account {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

// The account called name (getpwnam); throws PrivilegeError when there is none
// or when it is root (uid 0), whose use would defeat the drop.
Account lookup_account(const std::string& name);

// What a folder tern writes holds, which decides what tern may take over.
enum class FolderKind {
  kSpool,    // RocksDB's files and control.sock
  kLog,      // smtp-receive-*.log and message-tracking-*.log
  kMaildir,  // tmp, new and cur
  // sendmail's drop folder (server/pickup.h): 03733 (local users may create
  // files but not list or read them; files take the folder's group, tern's),
  // owned by tern's user, with bad/ (0700) for files the pickup refused.
  kMaildrop,
};

// A folder tern writes, and what it is called in messages ("spool folder").
struct Folder {
  std::filesystem::path path;
  std::string what;
  FolderKind kind = FolderKind::kMaildir;
  // The spool and the log folder: never a symbolic link (lstat), tern's alone
  // (an existing one with group/other bits is chmod 0700), and any problem
  // with them stops tern. A Maildir's problem is a warning: delivery to it
  // answers 451 until it is fixed, the other mailboxes are served. So is the
  // maildrop's: submissions wait in sendmail's callers until it is fixed.
  bool strict() const { return kind == FolderKind::kSpool || kind == FolderKind::kLog; }
};

// The folders `tern serve` writes: the spool, the log folder, the maildrop,
// each Maildir.
std::vector<Folder> serve_folders(const config::Config& config);

// Whether the current process may use folder: true when it may do everything
// mode asks (R_OK, W_OK, X_OK as for access(2)) on path.
using AccessCheck = std::function<bool(const std::filesystem::path& path, int mode)>;
bool process_access(const std::filesystem::path& path, int mode);

// nullopt when the process can search every ancestor of folder and read,
// write and search folder itself; otherwise why not, naming the ancestor that
// blocks it with its mode and owner ("/root is drwx------ root:root").
std::optional<std::string> unreachable(const std::filesystem::path& folder,
                                       const AccessCheck& check = process_access);

// "drwx------ root:root" (or the numeric ids) for path, from lstat.
std::string describe_mode(const std::filesystem::path& path);

enum class Prepare {
  kCreate,    // create missing folders (serve)
  kExisting,  // only take over folders that exist already (queue on a stopped server)
};

// Readies folders for owner (nullptr: for the current user), without
// switching users:
//  - a missing folder is created 0700 (parents too) with mkdirat, then opened
//    with O_NOFOLLOW and given its mode and owner through that descriptor
//    (fchmod, fchown): a name swapped for a symbolic link meanwhile is refused,
//    never followed, nothing is ever chmod/chown'ed by path;
//  - a spool or log folder that is a symbolic link is refused (PrivilegeError);
//  - an existing folder owned by root is handed to owner, and a spool or log
//    folder with group/other bits is chmod 0700 with a warning, only when the
//    folder is tern's: empty, or holding only the files tern writes there
//    (FolderKind). Otherwise PrivilegeError asks for a folder of tern's own
//    (a `directory = "/var/log"` never hands /var/log to tern);
//  - a Maildir's problem (a symbolic link, which is left untouched, not a
//    folder, not tern's) is logged as a warning instead of thrown.
void prepare_folders(const std::vector<Folder>& folders, const Account* owner, Prepare prepare);

// What serve and queue do before they open the spool: as root, looks the
// account of config.user up, prepare_folders for it, then drop_to it;
// otherwise prepare_folders for the current user (announce logs one line
// when that user is not config.user). Afterwards the spool and log folders
// must be reachable, or PrivilegeError names the ancestor that blocks it; an
// unreachable Maildir is a warning.
void become_user(const config::Config& config, const std::vector<Folder>& folders, Prepare prepare,
                 bool announce);

// Throws PrivilegeError when the process has group 0 among its supplementary
// groups, or when they cannot be read (getgroups sized by getgroups(0)).
void refuse_root_group(const std::string& user);

// Gives the account its groups, gid and uid, permanently; throws
// PrivilegeError when any step fails, when the groups include root's, or when
// setuid(0) still succeeds after.
void drop_to(const Account& account);

// For tests only: called with a folder's path right after prepare_folders
// created it and before it opens it, to swap something in at that moment.
extern std::function<void(const std::filesystem::path&)> after_mkdir_for_tests;

}  // namespace tern::server
