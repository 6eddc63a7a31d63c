// A quick look at a message's header section (RFC 5322 §2.2): what the
// receiving session needs to know before it queues the message, without
// parsing MIME. Lines end in CR LF (the DATA decoder guarantees it).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace tern::smtp {

struct HeaderScan {
  std::optional<std::string> message_id;  // the value of Message-ID, trimmed ("<x@y>")
  std::size_t received_count = 0;         // Received: fields, for loop detection
  std::size_t header_end = 0;             // offset of the empty line (or the end)
};

HeaderScan scan_headers(std::string_view message);

// The value of the first header field called name (case-insensitive), unfolded.
std::optional<std::string> header_value(std::string_view message, std::string_view name);

// RFC 5322 §3.3 date-time of now in local time: "Fri, 5 Aug 2016 16:24:41 -0700".
std::string rfc5322_date_now();
std::string rfc5322_date(long long unix_seconds);

}  // namespace tern::smtp
