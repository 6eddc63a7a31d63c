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

// A folder tern writes, and what it is called in messages ("spool folder").
struct Folder {
  std::filesystem::path path;
  std::string what;
  // The spool and the log folder: never a symbolic link (lstat), and tern's
  // alone (an existing one with group/other bits is chmod 0700).
  bool strict = false;
};

// The folders `tern serve` writes: the spool, the log folder, each Maildir.
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

// What serve and queue do before they open the spool:
//  - refuses a spool or log folder that is a symlink (PrivilegeError);
//  - as root: looks the account of config.user up, creates the missing folders
//    (0700, parents too) owned by it, hands it the root-owned folders it will
//    write, then sets its groups, gid and uid for good and checks that root
//    cannot be regained; afterwards every folder must be reachable, or
//    PrivilegeError names the ancestor that blocks it;
//  - not root: creates the missing folders as the current user; announce
//    logs one line when that user is not config.user.
//  Existing spool and log folders with group/other bits are chmod 0700 with
//  a warning.
void become_user(const config::Config& config, const std::vector<Folder>& folders, Prepare prepare,
                 bool announce);

// Gives the account its groups, gid and uid, permanently; throws
// PrivilegeError when any step fails or when setuid(0) still succeeds after.
void drop_to(const Account& account);

}  // namespace tern::server
