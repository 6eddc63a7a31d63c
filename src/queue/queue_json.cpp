// See queue_json.h.
#include "queue/queue_json.h"

#include <ctime>

#include "smtp/params.h"
#include "util/text.h"

namespace tern::queue {

namespace {

nlohmann::json escaped(const nlohmann::json& j) {
  if (j.is_string())
    return util::printable(j.get_ref<const std::string&>(), util::kNoLimit, util::Keep::kJson);
  if (j.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : j) out.push_back(escaped(item));
    return out;
  }
  if (j.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, value] : j.items())
      out[util::printable(key, util::kNoLimit, util::Keep::kJson)] = escaped(value);
    return out;
  }
  return j;
}

}  // namespace

std::string iso_time(std::int64_t ms) {
  if (ms <= 0) return "";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json envelope_json(const Envelope& e) {
  nlohmann::json rcpts = nlohmann::json::array();
  for (const auto& r : e.recipients) {
    nlohmann::json j{{"address", r.address},
                     {"status", state_name(r.state)},
                     {"attempts", r.attempts},
                     {"local", r.local}};
    if (!r.last_reply.empty()) j["last_reply"] = r.last_reply;
    if (r.notify) j["notify"] = smtp::notify_text(r.notify);
    if (!r.orcpt.empty()) j["orcpt"] = r.orcpt_type + ";" + r.orcpt;
    rcpts.push_back(std::move(j));
  }
  nlohmann::json j{{"id", e.id},
                   {"message_id", e.message_id},
                   {"sender", e.sender},
                   {"recipients", std::move(rcpts)},
                   {"size", e.size},
                   {"arrival", iso_time(e.arrival_ms)},
                   {"next_attempt", iso_time(e.next_attempt_ms)},
                   {"client", e.client_address},
                   {"helo", e.client_helo},
                   {"listener", e.listener}};
  if (!e.envid.empty()) j["envid"] = e.envid;
  if (e.ret != smtp::DsnRet::kUnspecified)
    j["ret"] = e.ret == smtp::DsnRet::kFull ? "FULL" : "HDRS";
  if (!e.auth_user.empty()) j["auth_user"] = e.auth_user;
  if (!e.held.empty()) j["held"] = e.held;
  return j;
}

nlohmann::json queue_json(const std::vector<Envelope>& messages) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& e : messages) arr.push_back(envelope_json(e));
  return arr;
}

std::string json_text(const nlohmann::json& document, int indent) {
  // Nothing invalid is left after escaped(); replace is the net that keeps
  // dump() from ever throwing.
  return escaped(document).dump(indent, ' ', true, nlohmann::json::error_handler_t::replace);
}

}  // namespace tern::queue
