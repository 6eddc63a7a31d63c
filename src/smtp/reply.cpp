#include "smtp/reply.h"

#include <charconv>

namespace tern::smtp {

void Reply::append_wire(std::string& out) const {
  char code_text[4] = {0};
  std::to_chars(code_text, code_text + 3, code);
  for (size_t i = 0; i < lines.size(); ++i) {
    out.append(code_text, 3);
    out.push_back(i + 1 < lines.size() ? '-' : ' ');
    if (!enhanced.empty()) {
      out.append(enhanced);
      out.push_back(' ');
    }
    out.append(lines[i]);
    out.append("\r\n");
  }
  if (lines.empty()) {
    out.append(code_text, 3);
    out.append("\r\n");
  }
}

std::string Reply::wire() const {
  std::string out;
  append_wire(out);
  return out;
}

std::string Reply::summary() const {
  std::string out = std::to_string(code);
  if (!enhanced.empty()) out += " " + enhanced;
  if (!lines.empty()) out += " " + lines.front();
  return out;
}

}  // namespace tern::smtp
