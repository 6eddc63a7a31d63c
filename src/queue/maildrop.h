// The maildrop: the folder where sendmail leaves a submission, with its
// envelope, for tern serve to pick up (server/pickup.h). This is the file
// format both sides share, and the rules of the names in the folder.
// Contract: decode() trusts nothing (another local user may have written the
// file): bounded sizes, CR LF lines of at most 998 octets (RFC 5322 §2.1.1),
// no NUL, no bare CR or LF, addresses as RFC 5321 §4.1.2 has them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tern::maildrop {

// Bounds on what a drop file may hold besides the message.
inline constexpr std::size_t kMaxRecipients = 10000;
inline constexpr std::size_t kMaxEnvelope = 1024 * 1024;  // the lines above the message
inline constexpr std::size_t kMaxHeaderSection = 1024 * 1024;
inline constexpr std::size_t kMaxLine = 998;  // RFC 5322 §2.1.1, without CR LF
inline constexpr std::size_t kMaxFullName = 200;

// What sendmail hands over. The message has CR LF line ends and a header
// section (possibly empty) followed by an empty line.
struct Submission {
  std::optional<std::string> sender;  // -f; "" is the null path <>; none: the user's own
  std::string full_name;              // -F, for the From: tern adds when there is none
  std::vector<std::string> recipients;
  std::string message;
  // DSN requests (RFC 3461), sendmail's -N, -R and -V: NOTIFY bits for every
  // recipient (smtp::notify; 0: not given), RET, ENVID.
  std::uint8_t notify = 0;
  std::string ret;  // "", "FULL" or "HDRS"
  std::string envid;
};

class BadDropFile : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string encode(const Submission& s);
// Throws BadDropFile naming what is wrong. max_message bounds the message.
Submission decode(std::string_view data, std::size_t max_message);

// Checks of a message's text (CR LF lines, lengths, no NUL): the reason it is
// refused, or nullopt.
std::optional<std::string> bad_message_text(std::string_view message);

// A fresh name for a drop file: unguessable (128 random bits), unique, of
// the form valid_name() accepts; the temporary name adds the prefix ".tmp.".
std::string new_name();
inline constexpr std::string_view kTempPrefix = ".tmp.";
inline constexpr std::string_view kBadFolder = "bad";
bool valid_name(std::string_view name);

}  // namespace tern::maildrop
