// CSV fields for tern's logs (RFC 4180 quoting); control characters in data
// from the network are escaped so that one event stays one line.
#pragma once

#include <string>
#include <string_view>

namespace tern::log {

void append_csv_field(std::string& out, std::string_view field);

}  // namespace tern::log
