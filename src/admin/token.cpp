// See token.h.
#include "admin/token.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

#include "util/fd.h"
#include "util/random.h"
#include "util/text.h"

namespace tern::admin {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kTokenBytes = 32;
constexpr std::size_t kMinTokenLength = 16;
constexpr std::size_t kMaxTokenFile = 4096;

[[noreturn]] void fail(const fs::path& file, const std::string& why) {
  throw std::runtime_error("admin token_file " + file.string() + ": " + why);
}

std::string errno_text() {
  return std::system_category().message(errno);
}

// Missing folders of file, 0700, handed to owner.
void make_folders(const fs::path& folder, std::optional<Owner> owner) {
  if (folder.empty() || fs::exists(folder)) return;
  make_folders(folder.parent_path(), owner);
  if (::mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create " + folder.string() + ": " + errno_text());
  if (owner && ::chown(folder.c_str(), owner->uid, owner->gid) != 0)
    throw std::runtime_error("cannot give " + folder.string() + " to tern's user: " + errno_text());
}

void create(const fs::path& file, std::optional<Owner> owner) {
  make_folders(file.parent_path(), owner);
  util::Fd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.ok()) {
    if (errno == EEXIST) return;  // someone else made it: read theirs
    fail(file, "cannot create: " + errno_text());
  }
  std::string text = util::random_secret_hex(kTokenBytes) + "\n";
  if (owner && ::fchown(fd.get(), owner->uid, owner->gid) != 0)
    fail(file, "cannot give it to tern's user: " + errno_text());
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      ::fsync(fd.get()) != 0)
    fail(file, "cannot write: " + errno_text());
}

}  // namespace

std::string load_or_create_token(const fs::path& file, std::optional<Owner> owner) {
  util::Fd fd(::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.ok() && errno == ENOENT) {
    create(file, owner);
    fd = util::Fd(::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  }
  if (!fd.ok()) fail(file, "cannot read: " + errno_text());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) fail(file, "not a regular file");
  if (st.st_mode & 077)
    fail(file, "readable by others than its owner (chmod 600 " + file.string() + ")");
  std::string text(kMaxTokenFile, '\0');
  ssize_t n = ::read(fd.get(), text.data(), text.size());
  if (n < 0) fail(file, "cannot read: " + errno_text());
  text.resize(static_cast<std::size_t>(n));
  auto first = text.find_first_not_of(" \t\r\n");
  auto last = text.find_last_not_of(" \t\r\n");
  std::string token = first == std::string::npos ? "" : text.substr(first, last - first + 1);
  if (token.size() < kMinTokenLength || token.find_first_of(" \t\r\n") != std::string::npos)
    fail(file, "must hold one token of at least 16 characters");
  return token;
}

bool bearer_matches(std::string_view authorization, const std::string& token) {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() < kScheme.size() ||
      util::to_lower(authorization.substr(0, kScheme.size())) != kScheme)
    return false;
  std::string_view given = util::trim(authorization.substr(kScheme.size()));
  // The lengths may differ in time (the length is no secret); the bytes do not.
  if (given.size() != token.size() || token.empty()) return false;
  return CRYPTO_memcmp(given.data(), token.data(), token.size()) == 0;
}

}  // namespace tern::admin
