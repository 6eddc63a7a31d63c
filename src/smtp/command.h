// SMTP command lines: the verb table and the split of a line into verb and
// argument (RFC 5321 §4.1). No I/O; the line arrives without its line ending.
#pragma once

#include <cstdint>
#include <string_view>

namespace tern::smtp {

enum class Verb : std::uint8_t {
  kEhlo,
  kHelo,
  kMail,
  kRcpt,
  kData,
  kBdat,
  kRset,
  kNoop,
  kVrfy,
  kExpn,
  kHelp,
  kQuit,
  kStartTls,
  kAuth,
  kUnknown,
};

struct Command {
  Verb verb = Verb::kUnknown;
  std::string_view name;      // the verb as the client typed it
  std::string_view argument;  // everything after the verb and its space, right-trimmed
};

// Verbs are case-insensitive (RFC 5321 §2.4). An empty line or an unknown word
// gives Verb::kUnknown.
Command parse_command(std::string_view line);
std::string_view verb_name(Verb verb);

// RFC 5321 §4.5.3.1.4: 512 octets for a command line including CRLF; MAIL and
// RCPT may be longer by what their extension parameters add (RFC 1869 §4.1.2).
constexpr std::size_t kCommandLineLimit = 512;
constexpr std::size_t kExtendedCommandLineLimit = 2048;
// The most tern buffers while looking for a line end (an AUTH response may be
// long, RFC 4954 §4 suggests 12288).
constexpr std::size_t kMaxBufferedLine = 16384;

}  // namespace tern::smtp
