#include "log/csv.h"

#include "util/text.h"

namespace tern::log {

void append_csv_field(std::string& out, std::string_view field) {
  bool plain = true;
  for (unsigned char c : field)
    if (c == ',' || c == '"' || c == '\\' || c < 0x20 || c > 0x7e) plain = false;
  if (plain) {
    out.append(field);
    return;
  }
  std::string text = util::printable(field, 2000);
  out.push_back('"');
  for (char c : text) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

}  // namespace tern::log
