#include "smtp/params.h"

#include "smtp/replies.h"
#include "util/text.h"

namespace tern::smtp {

namespace {

struct Param {
  std::string_view keyword;
  std::string_view value;
  bool has_value = false;
};

// esmtp-param = esmtp-keyword ["=" esmtp-value] (RFC 5321 §4.1.2)
std::optional<Param> split_param(std::string_view word) {
  Param p;
  size_t eq = word.find('=');
  p.keyword = word.substr(0, eq);
  if (p.keyword.empty()) return std::nullopt;
  for (unsigned char c : p.keyword)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
      return std::nullopt;
  if (eq != std::string_view::npos) {
    p.has_value = true;
    p.value = word.substr(eq + 1);
    if (p.value.empty()) return std::nullopt;
    for (unsigned char c : p.value)
      if (c < 33 || c == '=' || c == 127) return std::nullopt;
  }
  return p;
}

// Calls fn(param) for each space-separated parameter; stops at the first reply.
template <typename Fn>
std::optional<Reply> for_each_param(std::string_view text, Fn fn) {
  for (auto word : util::split(text, ' ')) {
    if (word.empty()) continue;
    auto p = split_param(word);
    if (!p) return replies::kInvalidParameter;
    if (auto err = fn(*p)) return err;
  }
  return std::nullopt;
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}
int hex_value(char c) {
  return c <= '9' ? c - '0' : c - 'A' + 10;
}

}  // namespace

std::optional<std::string> xtext_decode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = text[i];
    if (c == '+') {
      if (i + 2 >= text.size()) return std::nullopt;
      if (!is_hex(text[i + 1]) || !is_hex(text[i + 2])) return std::nullopt;
      out.push_back(char(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
      i += 2;
    } else if (c < 33 || c > 126 || c == '=') {
      return std::nullopt;
    } else {
      out.push_back(char(c));
    }
  }
  return out;
}

std::string xtext_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (c < 33 || c > 126 || c == '+' || c == '=') {
      out.push_back('+');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(char(c));
    }
  }
  return out;
}

std::string notify_text(std::uint8_t n) {
  if (n & notify::kNever) return "NEVER";
  std::string out;
  auto add = [&](std::uint8_t bit, const char* name) {
    if (!(n & bit)) return;
    if (!out.empty()) out += ",";
    out += name;
  };
  add(notify::kSuccess, "SUCCESS");
  add(notify::kFailure, "FAILURE");
  add(notify::kDelay, "DELAY");
  return out;
}

ParamsResult<MailParams> parse_mail_params(std::string_view text, bool auth_enabled) {
  MailParams mp;
  bool seen_size = false, seen_body = false, seen_ret = false, seen_envid = false,
       seen_utf8 = false, seen_auth = false;
  auto err = for_each_param(text, [&](const Param& p) -> std::optional<Reply> {
    auto once = [](bool& seen) {
      bool dup = seen;
      seen = true;
      return dup;
    };
    if (util::iequals(p.keyword, "SIZE")) {
      if (once(seen_size) || !p.has_value) return replies::kInvalidParameter;
      auto n = util::parse_uint(p.value);
      if (!n) return replies::kInvalidParameter;
      mp.size = *n;
    } else if (util::iequals(p.keyword, "BODY")) {
      if (once(seen_body) || !p.has_value) return replies::kInvalidParameter;
      if (util::iequals(p.value, "7BIT"))
        mp.body = BodyType::k7Bit;
      else if (util::iequals(p.value, "8BITMIME"))
        mp.body = BodyType::k8BitMime;
      else if (util::iequals(p.value, "BINARYMIME"))
        mp.body = BodyType::kBinaryMime;
      else
        return replies::kInvalidParameter;
    } else if (util::iequals(p.keyword, "SMTPUTF8")) {
      if (once(seen_utf8) || p.has_value) return replies::kInvalidParameter;
      mp.smtputf8 = true;
    } else if (util::iequals(p.keyword, "RET")) {
      if (once(seen_ret) || !p.has_value) return replies::kInvalidParameter;
      if (util::iequals(p.value, "FULL"))
        mp.ret = DsnRet::kFull;
      else if (util::iequals(p.value, "HDRS"))
        mp.ret = DsnRet::kHeaders;
      else
        return replies::kInvalidParameter;
    } else if (util::iequals(p.keyword, "ENVID")) {
      if (once(seen_envid) || !p.has_value) return replies::kInvalidParameter;
      auto v = xtext_decode(p.value);
      if (!v || v->size() > 100) return replies::kInvalidParameter;  // RFC 3461 §4.4
      mp.envid = *v;
    } else if (auth_enabled && util::iequals(p.keyword, "AUTH")) {
      if (once(seen_auth) || !p.has_value) return replies::kInvalidParameter;
      auto v = xtext_decode(p.value);
      if (!v) return replies::kInvalidParameter;
      mp.auth = *v;
    } else {
      return replies::kUnsupportedParameter;
    }
    return std::nullopt;
  });
  if (err) return {std::nullopt, *err};
  return {mp, {}};
}

ParamsResult<RcptParams> parse_rcpt_params(std::string_view text) {
  RcptParams rp;
  bool seen_notify = false, seen_orcpt = false;
  auto err = for_each_param(text, [&](const Param& p) -> std::optional<Reply> {
    if (util::iequals(p.keyword, "NOTIFY")) {
      if (seen_notify || !p.has_value) return replies::kInvalidParameter;
      seen_notify = true;
      for (auto item : util::split(p.value, ',')) {
        std::uint8_t bit = 0;
        if (util::iequals(item, "NEVER"))
          bit = notify::kNever;
        else if (util::iequals(item, "SUCCESS"))
          bit = notify::kSuccess;
        else if (util::iequals(item, "FAILURE"))
          bit = notify::kFailure;
        else if (util::iequals(item, "DELAY"))
          bit = notify::kDelay;
        else
          return replies::kInvalidParameter;
        rp.notify |= bit;
      }
      // NEVER excludes the others (RFC 3461 §4.1).
      if ((rp.notify & notify::kNever) && rp.notify != notify::kNever)
        return replies::kInvalidParameter;
    } else if (util::iequals(p.keyword, "ORCPT")) {
      if (seen_orcpt || !p.has_value) return replies::kInvalidParameter;
      seen_orcpt = true;
      size_t semi = p.value.find(';');
      if (semi == std::string_view::npos || semi == 0) return replies::kInvalidParameter;
      auto decoded = xtext_decode(p.value.substr(semi + 1));
      if (!decoded || decoded->empty() || decoded->size() > 500) return replies::kInvalidParameter;
      rp.orcpt_type = std::string(p.value.substr(0, semi));
      rp.orcpt = *decoded;
    } else {
      return replies::kUnsupportedParameter;
    }
    return std::nullopt;
  });
  if (err) return {std::nullopt, *err};
  return {rp, {}};
}

}  // namespace tern::smtp
