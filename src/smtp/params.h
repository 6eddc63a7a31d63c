// ESMTP parameters of MAIL and RCPT: SIZE (RFC 1870), BODY (RFC 6152, RFC 3030),
// SMTPUTF8 (RFC 6531), RET/ENVID/NOTIFY/ORCPT (RFC 3461), AUTH= (RFC 4954 §5).
// Parsing validates every value; an unknown keyword is an error, never ignored.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "smtp/reply.h"

namespace tern::smtp {

enum class BodyType : std::uint8_t { kUnspecified, k7Bit, k8BitMime, kBinaryMime };
enum class DsnRet : std::uint8_t { kUnspecified, kFull, kHeaders };

// NOTIFY bits; none set means the parameter was absent (RFC 3461 §4.1: then the
// default is FAILURE and, at the MTA's discretion, DELAY).
namespace notify {
constexpr std::uint8_t kNever = 1, kSuccess = 2, kFailure = 4, kDelay = 8;
}

struct MailParams {
  std::optional<std::uint64_t> size;
  BodyType body = BodyType::kUnspecified;
  bool smtputf8 = false;
  DsnRet ret = DsnRet::kUnspecified;
  std::string envid;                // decoded xtext
  std::optional<std::string> auth;  // AUTH=<mailbox> or "<>", decoded
};

struct RcptParams {
  std::uint8_t notify = 0;
  std::string orcpt_type;  // "rfc822" or "utf-8", as given
  std::string orcpt;       // decoded address
};

// Either the parsed parameters or the reply to send.
template <typename T>
struct ParamsResult {
  std::optional<T> params;
  Reply error;
};

ParamsResult<MailParams> parse_mail_params(std::string_view text, bool auth_enabled);
ParamsResult<RcptParams> parse_rcpt_params(std::string_view text);

// xtext (RFC 3461 §4): printable ASCII with "+XX" for anything else.
std::optional<std::string> xtext_decode(std::string_view text);
std::string xtext_encode(std::string_view text);
std::string notify_text(std::uint8_t notify);  // "SUCCESS,FAILURE"; "" when unset

}  // namespace tern::smtp
