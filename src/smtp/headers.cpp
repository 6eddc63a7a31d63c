#include "smtp/headers.h"

#include <cstdio>
#include <ctime>
#include <vector>

#include "util/text.h"

namespace tern::smtp {

namespace {

// Calls fn(name, value) for each header field, value unfolded; stops when fn
// returns false. Returns the offset of the end of the header section.
template <typename Fn>
std::size_t for_each_field(std::string_view msg, Fn fn) {
  std::size_t pos = 0;
  std::string_view name;
  std::string value;
  bool have = false;
  auto flush = [&]() {
    bool go_on = !have || fn(name, util::trim(value));
    have = false;
    return go_on;
  };
  while (pos < msg.size()) {
    std::size_t eol = msg.find('\n', pos);
    std::size_t next = eol == std::string_view::npos ? msg.size() : eol + 1;
    std::string_view line = msg.substr(pos, next - pos);
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      flush();
      return pos;
    }
    if ((line.front() == ' ' || line.front() == '\t') && have) {
      value += ' ';
      value += util::trim(line);
    } else {
      if (!flush()) return pos;
      std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) return pos;  // not a header: body starts here
      name = util::trim_right(line.substr(0, colon));
      value.assign(line.substr(colon + 1));
      have = true;
    }
    pos = next;
  }
  flush();
  return pos;
}

}  // namespace

HeaderScan scan_headers(std::string_view message) {
  HeaderScan scan;
  scan.header_end = for_each_field(message, [&](std::string_view name, std::string_view value) {
    if (!scan.message_id && util::iequals(name, "Message-ID") && !value.empty())
      scan.message_id = std::string(value);
    else if (util::iequals(name, "Received"))
      ++scan.received_count;
    return true;
  });
  return scan;
}

std::optional<std::string> header_value(std::string_view message, std::string_view wanted) {
  std::optional<std::string> found;
  for_each_field(message, [&](std::string_view name, std::string_view value) {
    if (!util::iequals(name, wanted)) return true;
    found = std::string(value);
    return false;
  });
  return found;
}

std::string rfc5322_date(long long unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  localtime_r(&t, &tm);
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  long offset = tm.tm_gmtoff / 60;
  char sign = offset < 0 ? '-' : '+';
  if (offset < 0) offset = -offset;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld", kDays[tm.tm_wday],
                tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
                sign, offset / 60, offset % 60);
  return buf;
}

std::string rfc5322_date_now() {
  return rfc5322_date(static_cast<long long>(std::time(nullptr)));
}

}  // namespace tern::smtp
