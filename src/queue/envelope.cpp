#include "queue/envelope.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "util/base64.h"
#include "util/text.h"

namespace tern::queue {

using nlohmann::json;

namespace {

// Every text field of the envelope holds bytes from outside (addresses, ESMTP
// parameters, a peer's reply, a HELO name). JSON strings must be UTF-8, so a
// field that is not stays lossless as {"b64": "..."}; the record never fails
// to encode whatever bytes it carries.
json bytes_value(const std::string& value) {
  if (util::is_valid_utf8(value)) return value;
  return json{{"b64", util::base64_encode(value)}};
}

std::string bytes_of(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("b64") && value["b64"].is_string()) {
    auto decoded = util::base64_decode(value["b64"].get<std::string>());
    if (decoded) return std::move(*decoded);
  }
  throw std::runtime_error("a text field is neither a string nor base64 bytes");
}

std::string bytes_at(const json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() ? std::string() : bytes_of(*it);
}

}  // namespace

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
    json j{{"a", bytes_value(r.address)}, {"s", static_cast<int>(r.state)}, {"n", r.attempts}};
    if (r.local) j["l"] = true;
    if (r.notify) j["nt"] = r.notify;
    if (!r.orcpt.empty()) j["o"] = {bytes_value(r.orcpt_type), bytes_value(r.orcpt)};
    if (!r.last_reply.empty()) j["r"] = bytes_value(r.last_reply);
    if (!r.remote_host.empty()) j["h"] = bytes_value(r.remote_host);
    if (r.delay_notified) j["dn"] = true;
    rcpts.push_back(std::move(j));
  }
  json j{{"v", 1},
         {"id", e.id},
         {"mid", bytes_value(e.message_id)},
         {"f", bytes_value(e.sender)},
         {"rc", std::move(rcpts)},
         {"t", e.arrival_ms},
         {"na", e.next_attempt_ms},
         {"sz", e.size},
         {"ip", bytes_value(e.client_address)},
         {"helo", bytes_value(e.client_helo)},
         {"ln", bytes_value(e.listener)}};
  if (e.ret != smtp::DsnRet::kUnspecified) j["ret"] = static_cast<int>(e.ret);
  if (!e.envid.empty()) j["env"] = bytes_value(e.envid);
  if (e.body != smtp::BodyType::kUnspecified) j["b"] = static_cast<int>(e.body);
  if (e.smtputf8) j["u8"] = true;
  if (!e.auth_user.empty()) j["au"] = bytes_value(e.auth_user);
  if (e.is_dsn) j["dsn"] = true;
  if (!e.held.empty()) j["hold"] = bytes_value(e.held);
  return j.dump();
}

Envelope decode_envelope(std::string_view data) {
  json j = json::parse(data, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw std::runtime_error("unreadable envelope record");
  Envelope e;
  try {
    if (j.value("v", 0) != 1) throw std::runtime_error("unknown envelope record version");
    e.id = j.at("id").get<std::uint64_t>();
    e.message_id = bytes_at(j, "mid");
    e.sender = bytes_at(j, "f");
    e.arrival_ms = j.value("t", std::int64_t{0});
    e.next_attempt_ms = j.value("na", std::int64_t{0});
    e.size = j.value("sz", std::uint64_t{0});
    e.client_address = bytes_at(j, "ip");
    e.client_helo = bytes_at(j, "helo");
    e.listener = bytes_at(j, "ln");
    e.ret = static_cast<smtp::DsnRet>(j.value("ret", 0));
    e.envid = bytes_at(j, "env");
    e.body = static_cast<smtp::BodyType>(j.value("b", 0));
    e.smtputf8 = j.value("u8", false);
    e.auth_user = bytes_at(j, "au");
    e.is_dsn = j.value("dsn", false);
    e.held = bytes_at(j, "hold");
    if (j.value("ret", 0) < 0 || j.value("ret", 0) > static_cast<int>(smtp::DsnRet::kHeaders) ||
        j.value("b", 0) < 0 || j.value("b", 0) > static_cast<int>(smtp::BodyType::kBinaryMime))
      throw std::runtime_error("unknown RET or BODY value");
    for (const auto& rj : j.at("rc")) {
      Recipient r;
      r.address = bytes_of(rj.at("a"));
      r.state = static_cast<RecipientState>(rj.value("s", 0));
      r.attempts = rj.value("n", 0u);
      r.local = rj.value("l", false);
      r.notify = rj.value("nt", std::uint8_t{0});
      if (rj.contains("o")) {
        r.orcpt_type = bytes_of(rj["o"].at(0));
        r.orcpt = bytes_of(rj["o"].at(1));
      }
      r.last_reply = bytes_at(rj, "r");
      r.remote_host = bytes_at(rj, "h");
      r.delay_notified = rj.value("dn", false);
      if (rj.value("s", 0) < 0 || rj.value("s", 0) > static_cast<int>(RecipientState::kFailed) ||
          rj.value("nt", 0) < 0 || rj.value("nt", 0) > 0xff)
        throw std::runtime_error("unknown recipient state");
      e.recipients.push_back(std::move(r));
    }
  } catch (const json::exception& ex) {
    throw std::runtime_error(std::string("unreadable envelope record: ") + ex.what());
  }
  // Every message tern accepts has a recipient: an envelope without one is a
  // damaged record, and taking it for "all done" would delete its content.
  if (e.recipients.empty()) throw std::runtime_error("envelope record without recipients");
  return e;
}

Envelope unreadable_envelope(std::uint64_t id, std::string_view why) {
  Envelope broken;
  broken.id = id;
  broken.message_id = "(unreadable envelope record)";
  broken.held = "the envelope record cannot be read: " + std::string(why);
  return broken;
}

}  // namespace tern::queue
