#include "smtp/command.h"

#include <array>
#include <utility>

#include "util/text.h"

namespace tern::smtp {

namespace {
constexpr std::array<std::pair<std::string_view, Verb>, 14> kVerbs{{
    {"EHLO", Verb::kEhlo},
    {"HELO", Verb::kHelo},
    {"MAIL", Verb::kMail},
    {"RCPT", Verb::kRcpt},
    {"DATA", Verb::kData},
    {"BDAT", Verb::kBdat},
    {"RSET", Verb::kRset},
    {"NOOP", Verb::kNoop},
    {"VRFY", Verb::kVrfy},
    {"EXPN", Verb::kExpn},
    {"HELP", Verb::kHelp},
    {"QUIT", Verb::kQuit},
    {"STARTTLS", Verb::kStartTls},
    {"AUTH", Verb::kAuth},
}};
}  // namespace

Command parse_command(std::string_view line) {
  line = util::trim_right(line);
  size_t space = line.find(' ');
  std::string_view word = line.substr(0, space);
  Command cmd;
  cmd.name = word;
  if (space != std::string_view::npos) cmd.argument = util::trim(line.substr(space + 1));
  for (const auto& [name, verb] : kVerbs) {
    if (util::iequals(word, name)) {
      cmd.verb = verb;
      break;
    }
  }
  return cmd;
}

std::string_view verb_name(Verb verb) {
  for (const auto& [name, v] : kVerbs)
    if (v == verb) return name;
  return "UNKNOWN";
}

}  // namespace tern::smtp
