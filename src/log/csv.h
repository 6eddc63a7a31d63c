// CSV fields for tern's logs (RFC 4180 quoting); data from the network goes
// through util::printable, so CR, LF, escape sequences and invalid UTF-8 are
// \xNN and one event stays one line.
#pragma once

#include <string>
#include <string_view>

namespace tern::log {

void append_csv_field(std::string& out, std::string_view field);

}  // namespace tern::log
