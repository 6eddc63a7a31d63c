// The pickup (pickup.h): maildrop files into the spool. The message gets what
// a local submission lacks and RFC 5321 §6.4 lets a submission server add
// (Date:, Message-ID:, From: of RFC 5322 §3.6), a Received: naming the local
// user who wrote the file (from the file's owner, never from its content),
// and an X-Authentication-Warning: when that user set another sender with -f.
#include "server/pickup.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "queue/maildrop.h"
#include "smtp/address.h"
#include "smtp/headers.h"
#include "util/base64.h"
#include "util/fd.h"
#include "util/random.h"
#include "util/text.h"

namespace tern::server {

namespace {

constexpr auto kRescan = std::chrono::seconds(60);
// Per commit: up to this many files or octets share one spool sync.
constexpr std::size_t kBatchFiles = 64;
constexpr std::size_t kBatchBytes = 32 * 1024 * 1024;
// Per scan: names looked at (the rest wait for the next scan, at once).
constexpr std::size_t kScanNames = 10000;
// A temporary file older than this was left by a sendmail that died.
constexpr std::time_t kStaleTemp = 24 * 3600;
// A message that has passed this many hops is looping (as session_data.cpp).
constexpr std::size_t kMaxReceivedHeaders = 50;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string login_of(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  char buf[4096];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found) return found->pw_name;
  return "uid" + std::to_string(uid);
}

// A name from the folder as a file name in bad/: safe characters only.
std::string safe_name(std::string_view name) {
  std::string out;
  for (char c : name.substr(0, 150)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_';
    out += ok ? c : '_';
  }
  return out;
}

// The display name of a From: field (RFC 5322 §3.4): an atom phrase as it
// is, otherwise a quoted-string; non-ASCII as an RFC 2047 encoded-word.
std::string display_name(std::string_view name) {
  if (!util::is_ascii(name)) return "=?UTF-8?B?" + util::base64_encode(name) + "?=";
  bool atoms = true;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == ' ' ||
          std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos))
      atoms = false;
  if (atoms) return std::string(name);
  std::string q = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + "\"";
}

}  // namespace

struct Pickup::Item {
  std::string name;
  queue::NewMessage message;
  std::string recipients;  // joined by ';', for the tracking log
  std::string remote;      // "local uid N (login)"
  bool local = false;
};

Pickup::Pickup(const config::Config& config, queue::Spool& spool, log::TrackingLog& tracking,
               asio::io_context& loop, asio::thread_pool& pool, QueuedHook queued)
    : config_(config),
      spool_(spool),
      tracking_(tracking),
      loop_(loop),
      pool_(pool),
      queued_(std::move(queued)),
      wake_(loop) {
  max_message_ = 0;
  for (const auto& l : config.listeners) max_message_ = std::max(max_message_, l.max_message_size);
  if (const char* fault = std::getenv("TERN_FAULT_PICKUP_AFTER_COMMIT"))
    crash_after_commit_ = std::string_view(fault) == "1";
}

Pickup::~Pickup() = default;

void Pickup::start() {
  // The watch first, then the first scan: nothing that appears in between is missed.
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd >= 0 &&
      ::inotify_add_watch(fd, config_.spool.maildrop.c_str(),
                          IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR | IN_DONT_FOLLOW) >= 0) {
    inotify_ = std::make_unique<asio::posix::stream_descriptor>(loop_, fd);
    asio::co_spawn(loop_, watch(), asio::detached);
  } else {
    spdlog::warn("maildrop {}: no inotify watch ({}): new submissions are picked up every {} s",
                 config_.spool.maildrop.string(), std::strerror(errno), kRescan.count());
    if (fd >= 0) ::close(fd);
  }
  asio::co_spawn(loop_, run(), asio::detached);
}

void Pickup::stop() {
  stopping_ = true;
  asio::post(loop_, [this] {
    wake_.cancel();
    if (inotify_) {
      std::error_code ignored;
      inotify_->close(ignored);
    }
  });
}

net::awaitable<void> Pickup::watch() {
  char buf[4096];
  for (;;) {
    auto [ec, n] = co_await inotify_->async_read_some(asio::buffer(buf), net::use_tuple);
    if (ec || stopping_) co_return;  // the periodic scans go on
    dirty_ = true;
    wake_.cancel();
  }
}

net::awaitable<void> Pickup::run() {
  for (;;) {
    if (stopping_) co_return;
    if (!dirty_) {
      wake_.expires_after(kRescan);
      auto waited = co_await wake_.async_wait(net::use_tuple);  // cancelled: woken
      (void)waited;
      if (stopping_) co_return;
    }
    dirty_ = false;
    bool more = co_await asio::co_spawn(
        pool_, [this]() -> net::awaitable<bool> { co_return scan_guarded(); }, asio::use_awaitable);
    if (more) dirty_ = true;
  }
}

bool Pickup::scan_guarded() {
  try {
    return scan();
  } catch (const std::exception& e) {
    spdlog::error("maildrop {}: {}", config_.spool.maildrop.string(), e.what());
    return false;
  }
}

// The folder's entries, at most kScanNames finished submissions (names) and
// kScanNames temporary files (temps) apart, so that any number of temporary
// files never takes the place of a finished one; true when names were left.
bool Pickup::list(int dir, std::vector<std::string>& names, std::vector<std::string>& temps) {
  int copy = ::dup(dir);
  DIR* d = copy < 0 ? nullptr : ::fdopendir(copy);
  if (!d) {
    if (copy >= 0) ::close(copy);
    throw std::runtime_error(std::string("cannot list: ") + std::strerror(errno));
  }
  ::rewinddir(d);
  bool more = false;
  while (const dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name == "." || name == ".." || name == maildrop::kBadFolder) continue;
    if (stuck_.count(std::string(name))) continue;
    const bool temp = name.rfind(maildrop::kTempPrefix, 0) == 0;
    if (temp ? temps.size() >= kScanNames : names.size() >= kScanNames) {
      more = more || !temp;
      continue;
    }
    (temp ? temps : names).emplace_back(name);
  }
  ::closedir(d);
  return more;
}

// Temporary files left for a day, by their change time, which their owner
// cannot set back (mtime can be).
void Pickup::set_aside_stale(int dir, const std::vector<std::string>& temps) {
  for (const auto& name : temps) {
    struct stat st {};
    if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        st.st_ctime + kStaleTemp < ::time(nullptr))
      set_aside(dir, name, "a temporary file left for a day");
  }
}

bool Pickup::scan() {
  util::Fd dir(
      ::open(config_.spool.maildrop.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir.ok()) {
    if (failing_ != "open")
      spdlog::error("maildrop {}: cannot open: {}", config_.spool.maildrop.string(),
                    std::strerror(errno));
    failing_ = "open";
    return false;
  }
  if (failing_ == "open") {
    spdlog::info("maildrop {}: open again", config_.spool.maildrop.string());
    failing_.clear();
  }
  if (!cleaned_) {
    // Files whose messages were committed just before a crash: gone now.
    for (const auto& name : spool_.picked_up_names()) {
      if (!maildrop::valid_name(name)) continue;
      if (::unlinkat(dir.get(), name.c_str(), 0) == 0 || errno == ENOENT) forget_.push_back(name);
    }
    ::fsync(dir.get());
    cleaned_ = true;
  }
  std::vector<std::string> names;
  std::vector<std::string> temps;  // maildrop::kTempPrefix…
  bool more = list(dir.get(), names, temps);
  // Files queued or set aside by this scan: another scan at once only when
  // it got somewhere (10000 fresh temporary files must not make it spin).
  std::size_t progress = 0;
  std::sort(names.begin(), names.end());
  std::vector<Item> batch;
  std::size_t batch_bytes = 0;
  set_aside_stale(dir.get(), temps);
  for (const auto& name : names) {
    if (stopping_) break;
    if (!maildrop::valid_name(name)) {
      if (set_aside(dir.get(), name, "not a maildrop file name")) ++progress;
      continue;
    }
    if (spool_.was_picked_up(name)) {  // queued already; its removal was cut short
      if (::unlinkat(dir.get(), name.c_str(), 0) == 0 || errno == ENOENT) forget_.push_back(name);
      ++progress;
      continue;
    }
    Item item;
    std::string why;
    if (!read_file(dir.get(), name, item, why)) {
      if (set_aside(dir.get(), name, why)) ++progress;
      continue;
    }
    batch_bytes += item.message.envelope.size;
    batch.push_back(std::move(item));
    ++progress;
    if (batch.size() >= kBatchFiles || batch_bytes >= kBatchBytes) {
      if (!commit(dir.get(), batch)) return false;  // the files stay: next scan
      batch.clear();
      batch_bytes = 0;
    }
  }
  if (!batch.empty() && !commit(dir.get(), batch)) return false;
  if (!forget_.empty()) {
    ::fsync(dir.get());
    queue::SpoolChange change;
    change.forget_picked_up = forget_;
    if (spool_.apply_and_wait(std::move(change)).status == queue::SpoolStatus::kOk) forget_.clear();
  }
  return more && progress > 0 && !stopping_;
}

bool Pickup::read_file(int dir, const std::string& name, Item& item, std::string& why) {
  struct stat st {};
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    why = std::strerror(errno);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    why = S_ISLNK(st.st_mode) ? "a symbolic link" : "not a regular file";
    return false;
  }
  // O_NONBLOCK: a FIFO swapped in meanwhile, or a lease, never blocks the pickup.
  util::Fd fd(
      ::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd.ok()) {
    why = std::string("cannot open: ") + std::strerror(errno);
    return false;
  }
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    why = "not a regular file";
    return false;
  }
  if (st.st_nlink != 1) {  // a hard link to a file of someone else's
    why = "a file with " + std::to_string(st.st_nlink) + " links";
    return false;
  }
  const std::size_t limit = max_message_ + maildrop::kMaxEnvelope;
  if (static_cast<std::uint64_t>(st.st_size) > limit) {
    why = "too large (" + std::to_string(st.st_size) + " octets)";
    return false;
  }
  std::string data;
  data.resize(static_cast<std::size_t>(st.st_size) + 1);
  std::size_t got = 0;
  for (;;) {
    if (got == data.size()) {
      if (data.size() > limit) break;
      data.resize(std::min(limit + 1, data.size() * 2 + 4096));
    }
    ssize_t n = ::read(fd.get(), data.data() + got, data.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      why = std::string("cannot read: ") + std::strerror(errno);
      return false;
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  data.resize(got);
  if (got > limit) {
    why = "too large (it grew while read)";
    return false;
  }
  maildrop::Submission sub;
  try {
    sub = maildrop::decode(data, max_message_);
  } catch (const maildrop::BadDropFile& e) {
    why = e.what();
    return false;
  }
  data = std::string();

  const uid_t uid = st.st_uid;
  const std::string login = login_of(uid);
  const std::string& host = config_.hostname;
  std::string own = login + "@" + host;
  if (!smtp::parse_address(own, false)) own = "uid" + std::to_string(uid) + "@" + host;
  const bool trusted = uid == 0 || uid == ::geteuid();
  auto scan = smtp::scan_headers(sub.message);
  if (scan.received_count >= kMaxReceivedHeaders) {
    why = "a mail loop (" + std::to_string(scan.received_count) + " Received: fields)";
    return false;
  }

  auto& e = item.message.envelope;
  e.id = spool_.next_id();
  e.sender = sub.sender.value_or(own);
  for (const auto& text : sub.recipients) {
    auto address = smtp::parse_address(text, true);  // checked by decode
    std::string r = address->str();
    bool seen = false;
    for (const auto& x : e.recipients) seen |= util::iequals(x.address, r);
    if (seen) continue;
    queue::Recipient rcpt;
    rcpt.address = r;
    rcpt.local = config_.accepts_domain(address->domain_key());
    rcpt.notify = sub.notify;
    if (!address->is_ascii()) e.smtputf8 = true;
    item.recipients += (item.recipients.empty() ? "" : ";") + r;
    e.recipients.push_back(std::move(rcpt));
  }
  if (!util::is_ascii(e.sender)) e.smtputf8 = true;
  if (sub.ret == "FULL") e.ret = smtp::DsnRet::kFull;
  if (sub.ret == "HDRS") e.ret = smtp::DsnRet::kHeaders;
  e.envid = sub.envid;
  if (!util::is_ascii(sub.message)) e.body = smtp::BodyType::k8BitMime;

  // "from local user UID": who wrote the file, as the kernel says.
  std::string prefix = "Received: by " + host + " (tern, from local user " + std::to_string(uid) +
                       " " + login + ")\r\n\tid " + std::to_string(e.id) + "; " +
                       smtp::rfc5322_date_now() + "\r\n";
  if (sub.sender && !trusted && *sub.sender != own)
    prefix += "X-Authentication-Warning: " + host + ": " + login + " set sender to " +
              (sub.sender->empty() ? std::string("<>") : *sub.sender) + " using -f\r\n";
  if (!smtp::header_value(sub.message, "Date"))
    prefix += "Date: " + smtp::rfc5322_date_now() + "\r\n";
  if (scan.message_id) {
    e.message_id = scan.message_id->substr(0, 998);
  } else {
    e.message_id = "<" + util::random_uuid() + "@" + host + ">";
    prefix += "Message-ID: " + e.message_id + "\r\n";
  }
  if (!smtp::header_value(sub.message, "From")) {
    std::string address = e.sender.empty() ? own : e.sender;
    prefix +=
        "From: " +
        (sub.full_name.empty() ? address : display_name(sub.full_name) + " <" + address + ">") +
        "\r\n";
  }
  e.arrival_ms = e.next_attempt_ms = now_ms();
  e.client_address = "local";
  e.client_helo = login;
  e.listener = "sendmail";
  item.name = name;
  item.remote = "local uid " + std::to_string(uid) + " (" + login + ")";
  item.local = queue::only_local(e);
  item.message.prefix = std::move(prefix);
  item.message.content = std::move(sub.message);
  e.size = item.message.prefix.size() + item.message.content.size();
  return true;
}

bool Pickup::commit(int dir, std::vector<Item>& items) {
  queue::SpoolChange change;
  struct Done {
    std::string name, message_id, sender, recipients, remote;
    std::uint64_t id, size;
    bool local;
  };
  std::vector<Done> done;
  for (auto& it : items) {
    const auto& e = it.message.envelope;
    done.push_back(
        {it.name, e.message_id, e.sender, it.recipients, it.remote, e.id, e.size, it.local});
    change.picked_up.push_back(it.name);
    change.add.push_back(std::move(it.message));
  }
  if (!spool_.keeps_pickup_records()) change.picked_up.clear();
  change.forget_picked_up = forget_;
  auto result = spool_.apply_and_wait(std::move(change));
  if (result.status != queue::SpoolStatus::kOk) {
    if (failing_ != result.error)
      spdlog::warn("maildrop: {} submission(s) not queued now, kept for the next scan: {}",
                   items.size(), result.error);
    failing_ = result.error;
    return false;
  }
  failing_.clear();
  forget_.clear();
  if (crash_after_commit_) ::raise(SIGKILL);  // the window the records close (tests)
  for (const auto& d : done) {
    tracking_.write(
        {"RECEIVE", d.id, d.message_id, d.sender, d.recipients, d.remote, d.size, "sendmail"});
    if (queued_) queued_(d.id, d.local);
  }
  for (const auto& d : done) {
    if (::unlinkat(dir, d.name.c_str(), 0) == 0 || errno == ENOENT) {
      if (spool_.keeps_pickup_records()) forget_.push_back(d.name);
    } else
      spdlog::warn("maildrop: {} queued but not removed: {}", d.name, std::strerror(errno));
  }
  ::fsync(dir);  // the removals are durable before their records are forgotten
  return true;
}

bool Pickup::set_aside(int dir, const std::string& name, const std::string& why) {
  std::string target = std::to_string(::time(nullptr)) + "." + safe_name(name);
  // bad/ opened without following a link, and only when it is tern's: a
  // folder someone swapped in is never a place files are moved to.
  util::Fd bad(::openat(dir, std::string(maildrop::kBadFolder).c_str(),
                        O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  struct stat st {};
  const bool bad_ok = bad.ok() && ::fstat(bad.get(), &st) == 0 && st.st_uid == ::geteuid();
  if (bad_ok && ::renameat2(dir, name.c_str(), bad.get(), target.c_str(), RENAME_NOREPLACE) == 0) {
    spdlog::warn("maildrop: {} refused ({}): moved to {}/{}", util::printable(name, 200), why,
                 maildrop::kBadFolder, target);
    return true;
  }
  if (errno == ENOENT) return true;
  int error = bad_ok ? errno : ENOTDIR;
  if (::unlinkat(dir, name.c_str(), 0) == 0) {
    spdlog::warn("maildrop: {} refused ({}) and removed (not movable: {})",
                 util::printable(name, 200), why, std::strerror(error));
    return true;
  }
  error = errno;
  // Logged once per entry; past the bound, entries are skipped in silence
  // (the scan does not count them as progress, so it does not spin on them).
  if (stuck_.size() < kScanNames && stuck_.insert(name).second)
    spdlog::error("maildrop: {} refused ({}); it cannot be moved or removed: {}",
                  util::printable(name, 200), why, std::strerror(error));
  return false;
}

}  // namespace tern::server
