// See trail.h: the query an argument names, the keys the trail indexes, and
// the JSON of SPEC §1 (`tern trail --json`) and §5 (GET /api/trail).
#include "queue/trail.h"

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>

#include "util/text.h"

namespace tern::queue {

TrailQuery trail_query(std::string_view argument) {
  std::string_view a = util::trim(argument);
  if (!a.empty() && std::all_of(a.begin(), a.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return {TrailQuery::Kind::kId, std::string(a)};
  bool address = a.find('@') != std::string_view::npos && a.front() != '<' &&
                 a.find_first_of(" \t<>") == std::string_view::npos;
  return {address ? TrailQuery::Kind::kAddress : TrailQuery::Kind::kMessageId, std::string(a)};
}

std::string trail_address_key(std::string_view address) {
  return util::to_lower(util::trim(address));
}

std::string trail_message_id_key(std::string_view message_id) {
  std::string_view m = util::trim(message_id);
  if (m.size() >= 2 && m.front() == '<' && m.back() == '>') m = m.substr(1, m.size() - 2);
  return util::to_lower(m);
}

bool trail_matches(const TrailEvent& event, const TrailQuery& query) {
  switch (query.kind) {
    case TrailQuery::Kind::kId:
      return std::to_string(event.id) == util::trim(query.value);
    case TrailQuery::Kind::kMessageId:
      return trail_message_id_key(event.message_id) == trail_message_id_key(query.value);
    case TrailQuery::Kind::kAddress: {
      std::string want = trail_address_key(query.value);
      // An address-like argument may be a Message-ID written without <>.
      return event.recipient.empty() || trail_address_key(event.sender) == want ||
             trail_address_key(event.recipient) == want ||
             trail_message_id_key(event.message_id) == trail_message_id_key(query.value);
    }
  }
  return false;
}

void sort_trail(std::vector<TrailEvent>& events) {
  std::stable_sort(events.begin(), events.end(),
                   [](const TrailEvent& a, const TrailEvent& b) { return a.time_ms < b.time_ms; });
}

std::string trail_time(std::int64_t time_ms) {
  if (time_ms < 0) time_ms = 0;
  std::time_t t = static_cast<std::time_t>(time_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(time_ms % 1000));
  return buf;
}

std::string trail_json(const std::vector<TrailEvent>& events) {
  auto list = nlohmann::json::array();
  for (const auto& e : events)
    list.push_back({{"time", trail_time(e.time_ms)},
                    {"event", e.event},
                    {"recipient", e.recipient},
                    {"remote_host", e.remote_host},
                    {"reply", e.reply},
                    {"id", e.id},  // a number, as in tern queue list --json
                    {"message_id", e.message_id},
                    {"sender", e.sender}});
  // Bytes a peer sent that are not UTF-8 become U+FFFD; the text stays ASCII.
  return nlohmann::json{{"events", list}}.dump(-1, ' ', true,
                                               nlohmann::json::error_handler_t::replace);
}

}  // namespace tern::queue
