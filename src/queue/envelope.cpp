#include "queue/envelope.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace tern::queue {

using nlohmann::json;

std::string_view state_name(RecipientState s) {
  switch (s) {
    case RecipientState::kQueued:
      return "queued";
    case RecipientState::kDeferred:
      return "deferred";
    case RecipientState::kDelivered:
      return "delivered";
    case RecipientState::kRelayed:
      return "relayed";
    case RecipientState::kFailed:
      return "failed";
  }
  return "unknown";
}

// The record is JSON with short keys and a version, so that an older tern can
// tell a newer record apart and the spool stays readable with standard tools.
std::string encode(const Envelope& e) {
  json rcpts = json::array();
  for (const auto& r : e.recipients) {
    json j{{"a", r.address}, {"s", static_cast<int>(r.state)}, {"n", r.attempts}};
    if (r.local) j["l"] = true;
    if (r.notify) j["nt"] = r.notify;
    if (!r.orcpt.empty()) j["o"] = {r.orcpt_type, r.orcpt};
    if (!r.last_reply.empty()) j["r"] = r.last_reply;
    if (!r.remote_host.empty()) j["h"] = r.remote_host;
    if (r.delay_notified) j["dn"] = true;
    rcpts.push_back(std::move(j));
  }
  json j{{"v", 1},
         {"id", e.id},
         {"mid", e.message_id},
         {"f", e.sender},
         {"rc", std::move(rcpts)},
         {"t", e.arrival_ms},
         {"na", e.next_attempt_ms},
         {"sz", e.size},
         {"ip", e.client_address},
         {"helo", e.client_helo},
         {"ln", e.listener}};
  if (e.ret != smtp::DsnRet::kUnspecified) j["ret"] = static_cast<int>(e.ret);
  if (!e.envid.empty()) j["env"] = e.envid;
  if (e.body != smtp::BodyType::kUnspecified) j["b"] = static_cast<int>(e.body);
  if (e.smtputf8) j["u8"] = true;
  if (!e.auth_user.empty()) j["au"] = e.auth_user;
  if (e.is_dsn) j["dsn"] = true;
  return j.dump();
}

Envelope decode_envelope(std::string_view data) {
  json j = json::parse(data, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("v", 0) != 1)
    throw std::runtime_error("unreadable envelope record");
  Envelope e;
  try {
    e.id = j.at("id").get<std::uint64_t>();
    e.message_id = j.value("mid", "");
    e.sender = j.value("f", "");
    e.arrival_ms = j.value("t", std::int64_t{0});
    e.next_attempt_ms = j.value("na", std::int64_t{0});
    e.size = j.value("sz", std::uint64_t{0});
    e.client_address = j.value("ip", "");
    e.client_helo = j.value("helo", "");
    e.listener = j.value("ln", "");
    e.ret = static_cast<smtp::DsnRet>(j.value("ret", 0));
    e.envid = j.value("env", "");
    e.body = static_cast<smtp::BodyType>(j.value("b", 0));
    e.smtputf8 = j.value("u8", false);
    e.auth_user = j.value("au", "");
    e.is_dsn = j.value("dsn", false);
    for (const auto& rj : j.at("rc")) {
      Recipient r;
      r.address = rj.at("a").get<std::string>();
      r.state = static_cast<RecipientState>(rj.value("s", 0));
      r.attempts = rj.value("n", 0u);
      r.local = rj.value("l", false);
      r.notify = rj.value("nt", std::uint8_t{0});
      if (rj.contains("o")) {
        r.orcpt_type = rj["o"].at(0).get<std::string>();
        r.orcpt = rj["o"].at(1).get<std::string>();
      }
      r.last_reply = rj.value("r", "");
      r.remote_host = rj.value("h", "");
      r.delay_notified = rj.value("dn", false);
      e.recipients.push_back(std::move(r));
    }
  } catch (const json::exception& ex) {
    throw std::runtime_error(std::string("unreadable envelope record: ") + ex.what());
  }
  return e;
}

}  // namespace tern::queue
