// The maildrop file format (maildrop.h): a magic line, the envelope as
// "S sender", "N full name", "R recipient" lines, an empty line, then the
// message. Every value is checked again when the file is read.
#include "queue/maildrop.h"

#include <sys/random.h>

#include <cstdio>
#include <ctime>

#include "smtp/address.h"
#include "smtp/params.h"
#include "util/text.h"

namespace tern::maildrop {

namespace {

constexpr std::string_view kMagic = "TERN-MAILDROP 1\n";

bool has_control(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

void check_address(std::string_view a, const char* what) {
  if (a.size() > smtp::kMaxPath || has_control(a) || !smtp::parse_address(a, true))
    throw BadDropFile(std::string("malformed ") + what + " address");
}

}  // namespace

std::string encode(const Submission& s) {
  std::string out(kMagic);
  if (s.sender) out += "S " + *s.sender + "\n";
  if (!s.full_name.empty()) out += "N " + s.full_name + "\n";
  if (s.notify) out += "D " + std::to_string(s.notify) + "\n";
  if (!s.ret.empty()) out += "T " + s.ret + "\n";
  if (!s.envid.empty()) out += "E " + s.envid + "\n";
  for (const auto& r : s.recipients) out += "R " + r + "\n";
  out += "\n";
  out += s.message;
  return out;
}

std::optional<std::string> bad_message_text(std::string_view m) {
  std::size_t line_start = 0, line = 1;
  for (std::size_t i = 0; i < m.size(); ++i) {
    char c = m[i];
    if (c == '\0') return "a NUL octet on line " + std::to_string(line);
    if (c == '\r') {
      if (i + 1 >= m.size() || m[i + 1] != '\n') return "a bare CR on line " + std::to_string(line);
      if (i - line_start > kMaxLine)
        return "line " + std::to_string(line) + " is longer than 998 octets";
      ++i;
      line_start = i + 1;
      ++line;
    } else if (c == '\n') {
      return "a bare LF on line " + std::to_string(line);
    }
  }
  if (line_start != m.size()) return "the last line does not end with CR LF";
  return std::nullopt;
}

Submission decode(std::string_view data, std::size_t max_message) {
  if (data.substr(0, kMagic.size()) != kMagic) throw BadDropFile("not a maildrop file");
  data.remove_prefix(kMagic.size());
  std::string_view envelope, message;
  if (!data.empty() && data.front() == '\n') {
    message = data.substr(1);
  } else {
    auto end = data.find("\n\n");
    if (end == std::string_view::npos) throw BadDropFile("no end of the envelope");
    envelope = data.substr(0, end + 1);
    message = data.substr(end + 2);
  }
  if (envelope.size() > kMaxEnvelope) throw BadDropFile("envelope too large");
  Submission s;
  while (!envelope.empty()) {
    auto nl = envelope.find('\n');
    std::string_view line = envelope.substr(0, nl);
    envelope.remove_prefix(nl + 1);
    if (line.size() < 2 || line[1] != ' ') throw BadDropFile("malformed envelope line");
    std::string_view value = line.substr(2);
    switch (line[0]) {
      case 'S':
        if (s.sender) throw BadDropFile("two senders");
        if (!value.empty()) check_address(value, "sender");
        s.sender = std::string(value);
        break;
      case 'N':
        if (!s.full_name.empty() || value.size() > kMaxFullName || has_control(value) ||
            !util::is_valid_utf8(value))
          throw BadDropFile("malformed full name");
        s.full_name = std::string(value);
        break;
      case 'R':
        if (s.recipients.size() >= kMaxRecipients) throw BadDropFile("too many recipients");
        check_address(value, "recipient");
        s.recipients.emplace_back(value);
        break;
      case 'D': {
        auto bits = util::parse_uint(value);
        if (s.notify || !bits || *bits == 0 || *bits > 15 ||
            ((*bits & smtp::notify::kNever) && *bits != smtp::notify::kNever))
          throw BadDropFile("malformed NOTIFY");
        s.notify = static_cast<std::uint8_t>(*bits);
        break;
      }
      case 'T':
        if (!s.ret.empty() || (value != "FULL" && value != "HDRS"))
          throw BadDropFile("malformed RET");
        s.ret = std::string(value);
        break;
      case 'E':  // RFC 3461 §4.4: at most 100 characters, printable ASCII
        if (!s.envid.empty() || value.empty() || value.size() > 100 || has_control(value) ||
            !util::is_ascii(value))
          throw BadDropFile("malformed ENVID");
        s.envid = std::string(value);
        break;
      default:
        throw BadDropFile("unknown envelope line");
    }
  }
  if (s.recipients.empty()) throw BadDropFile("no recipients");
  if (message.size() > max_message)
    throw BadDropFile("the message (" + std::to_string(message.size()) +
                      " octets) exceeds the maximum message size (" + std::to_string(max_message) +
                      ")");
  if (auto why = bad_message_text(message)) throw BadDropFile(*why);
  auto blank = message.find("\r\n\r\n");
  if (message.substr(0, 2) != "\r\n" && blank == std::string_view::npos)
    throw BadDropFile("no end of the header section");
  if (message.substr(0, 2) != "\r\n" && blank > kMaxHeaderSection)
    throw BadDropFile("header section too large");
  s.message = std::string(message);
  return s;
}

std::string new_name() {
  unsigned char bytes[16];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n <= 0) throw std::runtime_error("getrandom failed");
    got += static_cast<std::size_t>(n);
  }
  char hex[33];
  for (int i = 0; i < 16; ++i) std::snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
  return std::to_string(::time(nullptr)) + "." + hex;
}

bool valid_name(std::string_view name) {
  // <decimal seconds>.<32 hex>
  auto dot = name.find('.');
  if (dot == 0 || dot == std::string_view::npos || dot > 20) return false;
  for (char c : name.substr(0, dot))
    if (c < '0' || c > '9') return false;
  std::string_view hex = name.substr(dot + 1);
  if (hex.size() != 32) return false;
  for (char c : hex)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace tern::maildrop
