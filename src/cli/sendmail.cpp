// `sendmail` and `mailq` (SPEC §1): the tern binary called through a link of
// that name. sendmail reads a message from standard input with the flags of
// Postfix's sendmail(1) and leaves it, with its envelope, in the maildrop
// (queue/maildrop.h), where tern serve picks it up — also if it is down now:
// exit 0 only once the file is durable (fsync of the file, then of the
// folder). Exit codes from <sysexits.h>. mailq is `tern queue list`.
#include <fcntl.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.h"
#include "config/config.h"
#include "queue/maildrop.h"
#include "server/privileges.h"
#include "smtp/address.h"
#include "smtp/params.h"
#include "util/fd.h"
#include "util/text.h"

namespace tern::cli {

namespace {

constexpr std::size_t kDefaultMaxMessage = 36 * 1024 * 1024;

struct Failure {
  int code;
  std::string text;
};

// Out of line: GCC 12 warns falsely (stringop-overread) on the inlined moves.
[[gnu::noinline]] std::optional<Failure> usage(std::string text) {
  return Failure{EX_USAGE, std::move(text)};
}

int fail(int code, const std::string& text) {
  std::fprintf(stderr, "sendmail: %s\n", util::printable(text).c_str());
  return code;
}

struct Options {
  std::string config;
  bool extract = false;      // -t
  bool ignore_dots = false;  // -i, -oi
  std::optional<std::string> sender;
  std::string full_name;
  bool list_queue = false;         // -bp
  std::string notify, ret, envid;  // -N, -R, -V (RFC 3461)
  std::vector<std::string> recipients;
};

// -C, else $TERN_CONFIG, else the configuration next to this binary's prefix:
// $(PREFIX)/etc/tern/tern.toml where `make install` puts it ($(PREFIX)/sbin/
// sendmail -> tern), or etc/tern.toml of the source tree for build/tern. Never
// a file of the current folder: root running sendmail in a folder another user
// controls must not take that user's configuration (its maildrop path).
std::string default_config() {
  const char* env = std::getenv("TERN_CONFIG");
  if (env && *env) return env;
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "/usr/local/etc/tern/tern.toml";
  const auto prefix = self.parent_path().parent_path();
  for (const auto& candidate :
       {prefix / "etc" / "tern" / "tern.toml", prefix / "etc" / "tern.toml"})
    if (std::filesystem::exists(candidate, ec)) return candidate.string();
  return (prefix / "etc" / "tern" / "tern.toml").string();
}

// Whether a maildrop this configuration names may be made by root: only when
// the file is root's and nobody else may change it.
bool trusted_by_root(const std::filesystem::path& file) {
  struct stat st {};
  return ::stat(file.c_str(), &st) == 0 && st.st_uid == 0 && (st.st_mode & 022) == 0;
}

// Postfix's sendmail(1) option letters; those taking an argument take it
// attached (-fSENDER) or as the next word (-f SENDER). Parsing stops at the
// first word that is not an option, or after "--".
std::optional<Failure> parse(int argc, char** argv, Options& o) {
  const std::string_view with_argument = "ABCFLNOVXRbefhopqr";
  int i = 1;
  for (; i < argc; ++i) {
    std::string_view word = argv[i];
    if (word == "--") {
      ++i;
      break;
    }
    if (word.size() < 2 || word[0] != '-') break;
    for (std::size_t k = 1; k < word.size(); ++k) {
      char flag = word[k];
      std::string value;
      if (with_argument.find(flag) != std::string_view::npos) {
        if (k + 1 < word.size()) {
          value = std::string(word.substr(k + 1));
        } else if (i + 1 < argc) {
          value = argv[++i];
        } else {
          return usage(std::string("option -") + flag + " needs an argument");
        }
        k = word.size();
      }
      switch (flag) {
        case 't':
          o.extract = true;
          break;
        case 'i':
          o.ignore_dots = true;
          break;
        case 'f':
        case 'r':
          o.sender = value;
          break;
        case 'F':
          o.full_name = value;
          break;
        case 'C':
          o.config = value;
          break;
        case 'o':  // -oi as -i; other -o options are sendmail.cf settings
          if (value == "i") o.ignore_dots = true;
          break;
        case 'b':
          if (value == "m") break;
          if (value == "p") {
            o.list_queue = true;
            break;
          }
          return usage("-b" + value +
                       " is not supported: tern's sendmail only submits (-bm) "
                       "and lists the queue (-bp); use tern serve for SMTP");
        case 'q':
          return usage("-q is not supported: use tern queue retry");
        case 'I':
          return usage("-I (newaliases) is not supported: tern has no aliases file");
        case 'N':
          o.notify = value;
          break;
        case 'R':
          o.ret = value;
          break;
        case 'V':
          o.envid = value;
          break;
        case 'A':
        case 'B':
        case 'L':
        case 'O':
        case 'X':
        case 'e':
        case 'h':
        case 'p':
        case 'v':
        case 'm':
        case 'n':
        case 'U':
        case 'G':
        case 'c':
        case 'x':
          break;
        default:
          return usage(std::string("unknown option -") + flag);
      }
    }
  }
  for (; i < argc; ++i) o.recipients.emplace_back(argv[i]);
  return std::nullopt;
}

// The addresses of an RFC 5322 §3.4 address-list or of a command-line word
// ("a@b, Kate <k@b>"): display names, comments and group names dropped.
std::vector<std::string> address_list(std::string_view value) {
  std::vector<std::string> elements;
  std::string cur;
  bool quoted = false, angle = false;
  int comment = 0;
  for (std::size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (quoted) {
      cur += c;
      if (c == '\\' && i + 1 < value.size())
        cur += value[++i];
      else if (c == '"')
        quoted = false;
    } else if (comment > 0) {
      if (c == '\\')
        ++i;
      else if (c == '(')
        ++comment;
      else if (c == ')')
        --comment;
    } else if (c == '"') {
      quoted = true;
      cur += c;
    } else if (c == '(') {
      comment = 1;
    } else if (c == '<') {
      angle = true;
      cur += c;
    } else if (c == '>') {
      angle = false;
      cur += c;
    } else if ((c == ',' || c == ';') && !angle) {
      elements.push_back(std::move(cur));
      cur.clear();
    } else if (c == ':' && !angle) {
      cur.clear();  // a group's display name
    } else {
      cur += c;
    }
  }
  elements.push_back(std::move(cur));
  std::vector<std::string> out;
  for (auto& e : elements) {
    std::string_view text = util::trim(e);
    auto open = text.find('<');
    if (open != std::string_view::npos) {
      auto close = text.find('>', open);
      text = text.substr(open + 1, close == std::string_view::npos ? close : close - open - 1);
      if (!text.empty() && text.front() == '@') {  // a source route (RFC 5322 §4.4)
        auto colon = text.find(':');
        text = colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
      }
      text = util::trim(text);
    }
    if (!text.empty()) out.emplace_back(text);
  }
  return out;
}

bool header_line(std::string_view line) {
  auto colon = line.find(':');
  if (colon == 0 || colon == std::string_view::npos) return false;
  for (char c : line.substr(0, colon))
    if (c < 33 || c > 126) return false;
  return true;
}

struct Input {
  std::vector<std::string> header;  // lines, without line ends
  std::string body;                 // CR LF lines
  std::uint64_t size = 0;           // octets read, as stored
  bool too_big = false;
  std::size_t long_line = 0;  // the number of a line over 998 octets
};

// Standard input as lines (LF or CR LF). Without -i a line "." alone ends
// it, as sendmail's does. Past max, lines are counted, not kept.
std::optional<Failure> read_input(const Options& o, std::size_t max, Input& in) {
  std::string line;
  bool in_header = true, first = true;
  std::size_t number = 0;
  auto take = [&](std::string l) {
    ++number;
    if (!l.empty() && l.back() == '\r') l.pop_back();
    if (!o.ignore_dots && l == ".") return false;
    if (first && l.rfind("From ", 0) == 0) {  // an mbox separator line
      first = false;
      return true;
    }
    first = false;
    if (l.size() > maildrop::kMaxLine && !in.long_line) in.long_line = number;
    in.size += l.size() + 2;
    if (in.size > max) in.too_big = true;
    if (in.too_big) return true;
    if (in_header) {
      bool continuation = !in.header.empty() && !l.empty() && (l[0] == ' ' || l[0] == '\t');
      if (continuation || header_line(l)) {
        in.header.push_back(std::move(l));
        return true;
      }
      in_header = false;
      if (l.empty()) return true;  // the separating empty line
      // A line that is no header field ends the header section: it begins the body.
    }
    in.body += l;
    in.body += "\r\n";
    return true;
  };
  char buf[65536];
  for (;;) {
    std::size_t n = std::fread(buf, 1, sizeof buf, stdin);
    if (n == 0) {
      if (std::ferror(stdin))
        return Failure{EX_NOINPUT, "cannot read the message from standard input"};
      break;
    }
    std::string_view chunk(buf, n);
    while (!chunk.empty()) {
      auto nl = chunk.find('\n');
      if (nl == std::string_view::npos) {
        if (line.size() < 1024 * 1024)
          line.append(chunk);  // a line that long is refused anyway
        else if (!in.long_line)
          in.long_line = number + 1;
        break;
      }
      line.append(chunk.substr(0, nl));
      chunk.remove_prefix(nl + 1);
      if (!take(std::move(line))) return std::nullopt;
      line.clear();
    }
  }
  if (!line.empty()) take(std::move(line));
  return std::nullopt;
}

std::string field_name(std::string_view line) {
  return util::to_lower(line.substr(0, line.find(':')));
}

// With -t: the addresses of To:, Cc: and Bcc:; Bcc: fields are dropped.
std::vector<std::string> extract_recipients(std::vector<std::string>& header) {
  std::vector<std::string> out, kept;
  std::string field;
  bool drop = false;
  auto finish = [&] {
    if (field.empty()) return;
    std::string name = field_name(field);
    if (name == "to" || name == "cc" || name == "bcc")
      for (auto& a : address_list(std::string_view(field).substr(field.find(':') + 1)))
        out.push_back(std::move(a));
    field.clear();
  };
  for (auto& line : header) {
    bool continuation = line[0] == ' ' || line[0] == '\t';
    if (!continuation) {
      finish();
      drop = field_name(line) == "bcc";
      field = line;
    } else {
      field += line;  // unfolded (RFC 5322 §2.2.3)
    }
    if (!drop) kept.push_back(std::move(line));
  }
  finish();
  header = std::move(kept);
  return out;
}

// A recipient as the envelope takes it: a bare name is a user at hostname.
std::optional<std::string> recipient(const config::Config& config, std::string text, int& code,
                                     std::string& why) {
  if (text.find('@') == std::string::npos) text += "@" + config.hostname;
  auto a = smtp::parse_address(text, true);
  if (!a || text.size() > smtp::kMaxPath) {
    code = EX_DATAERR;
    why = "malformed recipient address: " + text;
    return std::nullopt;
  }
  if (config.accepts_domain(a->domain_key()) &&
      !config.find_mailbox(a->unquoted_local() + "@" + a->domain)) {
    code = EX_NOUSER;
    why = "unknown local user: " + a->str();
    return std::nullopt;
  }
  return a->str();
}

// Writes the drop file: a temporary dot-file, fsync, rename, then the folder
// made durable (fsync where the folder may be read, else syncfs).
int drop(const config::Config& config, const std::string& data) {
  const auto& folder = config.spool.maildrop;
  util::Fd dir(::open(folder.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir.ok() && errno == ENOENT && ::geteuid() == 0 && trusted_by_root(config.file)) {
    // root may make it as tern serve would (owned by tern's user, 03733),
    // from a configuration only root may have written.
    try {
      auto account = server::lookup_account(config.user);
      server::prepare_folders({{folder, "maildrop folder", server::FolderKind::kMaildrop}},
                              &account, server::Prepare::kCreate);
    } catch (const std::exception& e) {
      return fail(EX_CONFIG, e.what());
    }
    dir = util::Fd(::open(folder.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  }
  if (!dir.ok()) {
    int error = errno;
    if (error == EACCES)
      return fail(EX_NOPERM,
                  "cannot reach the maildrop " + folder.string() + ": " + std::strerror(error));
    return fail(EX_TEMPFAIL, "cannot open the maildrop " + folder.string() + ": " +
                                 std::strerror(error) + " (tern serve makes it when it starts)");
  }
  const std::string name = maildrop::new_name();
  const std::string temp = std::string(maildrop::kTempPrefix) + name;
  util::Fd fd(::openat(dir.get(), temp.c_str(),
                       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640));
  if (!fd.ok()) {
    int error = errno;
    int code = error == EACCES || error == EPERM ? EX_NOPERM : EX_TEMPFAIL;
    return fail(code,
                "cannot write into the maildrop " + folder.string() + ": " + std::strerror(error));
  }
  auto give_up = [&](int error, const char* what) {
    ::unlinkat(dir.get(), temp.c_str(), 0);
    int code = error == EIO ? EX_IOERR : EX_TEMPFAIL;
    return fail(code, std::string("the message was not kept: ") + what + " " + folder.string() +
                          ": " + std::strerror(error));
  };
  // Readable by the folder's group (tern's, through the folder's set-group-id
  // bit), whatever the umask; by no other user.
  if (::fchmod(fd.get(), 0640) != 0) return give_up(errno, "chmod in");
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return give_up(n < 0 ? errno : EIO, "write into");
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return give_up(errno, "fsync in");
  if (::renameat(dir.get(), temp.c_str(), dir.get(), name.c_str()) != 0)
    return give_up(errno, "rename in");
  util::Fd readable(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  int synced = readable.ok() ? ::fsync(readable.get()) : ::syncfs(fd.get());
  if (synced != 0) {
    int error = errno;
    // The file is complete under its final name: it may well be delivered,
    // but its caller may not count on it.
    return fail(EX_TEMPFAIL,
                std::string("the maildrop could not be synced: ") + std::strerror(error));
  }
  return EX_OK;
}

int submit(const Options& o) {
  config::Config config;
  try {
    config = config::load(o.config);
  } catch (const std::exception& e) {
    return fail(EX_CONFIG, std::string("bad configuration: ") + e.what());
  }
  std::size_t max = 0;
  for (const auto& l : config.listeners) max = std::max<std::size_t>(max, l.max_message_size);
  if (max == 0) max = kDefaultMaxMessage;

  maildrop::Submission s;
  if (o.sender) {
    std::string_view f = util::trim(*o.sender);
    if (f.size() >= 2 && f.front() == '<' && f.back() == '>') f = f.substr(1, f.size() - 2);
    if (!f.empty() && (!smtp::parse_address(f, true) || f.size() > smtp::kMaxPath))
      return fail(EX_DATAERR, "malformed sender address: " + std::string(f));
    s.sender = std::string(f);
  }
  for (char c : o.full_name)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return fail(EX_DATAERR, "the full name (-F) holds a control character");
  s.full_name = o.full_name.substr(0, maildrop::kMaxFullName);
  if (!util::is_valid_utf8(s.full_name)) return fail(EX_DATAERR, "the full name (-F) is not UTF-8");

  // -N, -R, -V as the ESMTP parameters they stand for (RFC 3461 §4).
  if (!o.notify.empty()) {
    auto p = smtp::parse_rcpt_params("NOTIFY=" + util::to_upper(o.notify));
    if (!p.params) return fail(EX_USAGE, "-N takes never, or success, delay, failure: " + o.notify);
    s.notify = p.params->notify;
  }
  if (!o.ret.empty()) {
    s.ret = util::to_upper(o.ret);
    if (s.ret != "FULL" && s.ret != "HDRS") return fail(EX_USAGE, "-R takes full or hdrs");
  }
  if (!o.envid.empty()) {
    s.envid = o.envid;
    if (s.envid.size() > 100 || !util::is_ascii(s.envid) ||
        s.envid.find_first_of("\r\n\t") != std::string::npos)
      return fail(EX_USAGE, "-V takes an envelope id of at most 100 printable characters");
    for (char c : s.envid)
      if (c < 0x21 || c > 0x7e) return fail(EX_USAGE, "-V takes printable characters only");
  }

  Input in;
  if (auto f = read_input(o, max, in)) return fail(f->code, f->text);
  if (in.too_big)
    return fail(EX_DATAERR, "the message (" + std::to_string(in.size) +
                                " octets) exceeds the maximum message size (" +
                                std::to_string(max) + " octets)");
  if (in.long_line)
    return fail(EX_DATAERR, "line " + std::to_string(in.long_line) +
                                " of the message is longer than 998 octets (RFC 5322 §2.1.1)");

  std::vector<std::string> words;
  if (o.extract) words = extract_recipients(in.header);
  for (const auto& arg : o.recipients)
    for (auto& a : address_list(arg)) words.push_back(std::move(a));
  for (auto& w : words) {
    int code = 0;
    std::string why;
    auto r = recipient(config, w, code, why);
    if (!r) return fail(code, why);
    s.recipients.push_back(std::move(*r));
  }
  if (s.recipients.empty())
    return fail(EX_DATAERR, o.extract ? "no recipients in To:, Cc:, Bcc: or on the command line"
                                      : "no recipients given (name them, or use -t)");
  if (s.recipients.size() > maildrop::kMaxRecipients)
    return fail(EX_DATAERR, "too many recipients");
  for (const auto& h : in.header) s.message += h + "\r\n";
  s.message += "\r\n";
  s.message += in.body;
  if (auto why = maildrop::bad_message_text(s.message)) return fail(EX_DATAERR, *why);
  return drop(config, maildrop::encode(s));
}

}  // namespace

int sendmail_main(int argc, char** argv, const ListQueue& mailq) {
  try {
    Options o;
    o.config = default_config();
    if (auto f = parse(argc, argv, o)) {
      fail(f->code, f->text);
      std::fprintf(stderr,
                   "usage: sendmail [-t] [-i] [-f SENDER] [-F NAME] [-C FILE] [RECIPIENT…]\n");
      return f->code;
    }
    if (o.list_queue) return mailq(o.config);
    return submit(o);
  } catch (const std::exception& e) {
    return fail(EX_SOFTWARE, e.what());
  }
}

int mailq_main(int argc, char** argv, const ListQueue& mailq) {
  std::string config = default_config();
  for (int i = 1; i < argc; ++i) {
    std::string_view word = argv[i];
    if (word == "-v") continue;
    if (word == "-C" && i + 1 < argc) {
      config = argv[++i];
    } else if (word.rfind("-C", 0) == 0 && word.size() > 2) {
      config = std::string(word.substr(2));
    } else {
      std::fprintf(stderr, "mailq: unknown option %s\nusage: mailq [-C FILE]\n",
                   util::printable(word).c_str());
      return EX_USAGE;
    }
  }
  return mailq(config);
}

}  // namespace tern::cli
