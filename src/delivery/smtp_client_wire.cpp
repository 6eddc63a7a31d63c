// Command lines, pre-MAIL checks, dot-stuffing and made-up replies of the
// outbound SMTP client (see smtp_client_wire.h).
#include "delivery/smtp_client_wire.h"

#include "smtp/line_ends.h"
#include "smtp/params.h"
#include "util/text.h"

namespace tern::delivery {

namespace {

// The header section: everything before the first empty line.
std::string_view header_section(std::string_view content) {
  if (content.substr(0, 2) == "\r\n" || content.substr(0, 1) == "\n") return {};
  auto end = content.find("\n\r\n");
  auto bare = content.find("\n\n");
  end = std::min(end, bare);
  return end == std::string_view::npos ? content : content.substr(0, end);
}

// RFC 6531 §3.2: only a message that really carries UTF-8 in its addresses or
// headers needs SMTPUTF8 at the next hop; one that merely arrived with the
// parameter can go to any server.
bool needs_smtputf8(const queue::Envelope& envelope, const std::vector<std::size_t>& recipients,
                    std::string_view content) {
  if (!envelope.smtputf8) return false;
  if (!util::is_ascii(envelope.sender)) return true;
  for (std::size_t i : recipients)
    if (!util::is_ascii(envelope.recipients[i].address)) return true;
  return !util::is_ascii(header_section(content));
}

}  // namespace

std::string mail_command(const queue::Envelope& envelope, const Capabilities& peer,
                         std::uint64_t size) {
  std::string out = "MAIL FROM:<" + envelope.sender + ">";
  if (peer.size_limit) out += " SIZE=" + std::to_string(size);  // 0: offered, no limit
  using smtp::BodyType;
  if (envelope.body == BodyType::kBinaryMime && peer.binarymime)
    out += " BODY=BINARYMIME";
  else if (envelope.body == BodyType::k8BitMime && peer.eightbitmime)
    out += " BODY=8BITMIME";
  else if (envelope.body == BodyType::k7Bit && peer.eightbitmime)
    out += " BODY=7BIT";
  if (envelope.smtputf8 && peer.smtputf8) out += " SMTPUTF8";
  if (peer.dsn) {
    if (envelope.ret == smtp::DsnRet::kFull) out += " RET=FULL";
    if (envelope.ret == smtp::DsnRet::kHeaders) out += " RET=HDRS";
    if (!envelope.envid.empty()) out += " ENVID=" + smtp::xtext_encode(envelope.envid);
  }
  out += "\r\n";
  return out;
}

std::string rcpt_command(const queue::Recipient& recipient, const Capabilities& peer) {
  std::string out = "RCPT TO:<" + recipient.address + ">";
  if (peer.dsn) {
    if (recipient.notify != 0) out += " NOTIFY=" + smtp::notify_text(recipient.notify);
    if (!recipient.orcpt.empty()) {
      std::string type = recipient.orcpt_type.empty() ? "rfc822" : recipient.orcpt_type;
      out += " ORCPT=" + type + ";" + smtp::xtext_encode(recipient.orcpt);
    }
  }
  out += "\r\n";
  return out;
}

std::optional<smtp::Reply> refusal_before_mail(const queue::Envelope& envelope,
                                               const std::vector<std::size_t>& recipients,
                                               std::string_view content, const Capabilities& peer,
                                               std::string_view peer_name) {
  std::string name(peer_name);
  if (peer.size_limit && *peer.size_limit > 0 && content.size() > *peer.size_limit)
    return smtp::Reply(552, "5.3.4",
                       "Message size (" + std::to_string(content.size()) +
                           " octets) exceeds the limit of " + name + " (" +
                           std::to_string(*peer.size_limit) + " octets)");
  if (envelope.body == smtp::BodyType::kBinaryMime && !(peer.binarymime && peer.chunking))
    return smtp::Reply(554, "5.6.3",
                       "Binary message cannot be converted, and " + name +
                           " does not support BINARYMIME and CHUNKING");
  if (needs_smtputf8(envelope, recipients, content) && !peer.smtputf8)
    return smtp::Reply(
        553, "5.6.7",
        "Message with non-ASCII addresses or headers, and " + name + " does not support SMTPUTF8");
  return std::nullopt;
}

void DotStuffer::next(std::string& out, std::size_t max) {
  out.clear();
  while (!done_ && out.size() < max) {
    if (pos_ == content_.size()) {
      if (!line_start_) out += "\r\n";
      out += ".\r\n";
      done_ = true;
      break;
    }
    std::string_view rest = content_.substr(pos_);
    if (line_start_ && rest.front() == '.') out += '.';  // RFC 5321 §4.5.2
    smtp::LineSpan line = smtp::next_line_span(rest);
    out += rest.substr(0, line.length);
    if (line.end == 0) {  // the last line, without a line end
      pos_ = content_.size();
      line_start_ = false;
      continue;
    }
    out += "\r\n";  // a bare CR or LF goes out as CR LF too (RFC 5321 §2.3.8)
    pos_ += line.length + line.end;
    line_start_ = true;
  }
}

smtp::Reply lost_reply(const ReadResult& result, std::string_view peer,
                       std::string_view waiting_for) {
  std::string name(peer), what(waiting_for);
  constexpr std::string_view kNotSmtp = "not SMTP: ";
  if (result.timed_out)
    return smtp::Reply(451, "4.4.2",
                       "Connection with " + name + " " + result.error + " waiting for " + what);
  if (result.error.compare(0, kNotSmtp.size(), kNotSmtp) == 0)
    return smtp::Reply(451, "4.5.0",
                       "Not SMTP: " + result.error.substr(kNotSmtp.size()) + " (from " + name +
                           ", in " + what + ")");
  return smtp::Reply(451, "4.4.2",
                     "Lost connection with " + name + " waiting for " + what + ": " + result.error);
}

smtp::Reply send_failed_reply(std::string_view peer, std::string_view sending) {
  return smtp::Reply(
      451, "4.4.2",
      "Lost connection with " + std::string(peer) + " while sending " + std::string(sending));
}

smtp::Reply lease_lost_reply(std::string_view peer) {
  return smtp::Reply(451, "4.4.0",
                     "Not finished with " + std::string(peer) +
                         ": this node's lease on the message may have run out (cluster)");
}

}  // namespace tern::delivery
