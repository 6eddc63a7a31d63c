// Delivery status notifications: which ones are due (RFC 3461 §4.1, §6.2) and
// the multipart/report notice itself (RFC 3464, RFC 6522, RFC 6533); see dsn.h.
// Everything a remote server said is flattened to one printable line before it
// goes into the notice, so a reply can never add a field or a MIME boundary;
// addresses with control characters are escaped the same way, and the returned
// message has its bare CRs and LFs written as CR LF (RFC 5321 §2.3.8).
#include "queue/dsn.h"

#include <algorithm>
#include <cstdio>

#include "smtp/headers.h"
#include "smtp/line_ends.h"
#include "smtp/params.h"
#include "util/random.h"
#include "util/text.h"

namespace tern::queue {

namespace {

constexpr std::size_t kLineWidth = 78;  // RFC 5322 §2.1.1 SHOULD

struct Entry {
  const DsnRecipient* report;
  const Recipient* original;
};

// The worst action of a notice names it: failed > delayed > delivered/relayed.
int severity(DsnAction action) {
  if (action == DsnAction::kFailed) return 2;
  if (action == DsnAction::kDelayed) return 1;
  return 0;
}

std::string_view subject_for(DsnAction worst) {
  if (worst == DsnAction::kFailed) return "Undelivered Mail Returned to Sender";
  if (worst == DsnAction::kDelayed) return "Delayed Mail (still being retried)";
  return "Successful Mail Delivery Report";
}

// RFC 3463 §2: class "." subject "." detail, class 2, 4 or 5, up to 3 digits each.
bool valid_status(std::string_view s) {
  auto parts = util::split(s, '.');
  if (parts.size() != 3 || parts[0].size() != 1) return false;
  if (parts[0][0] != '2' && parts[0][0] != '4' && parts[0][0] != '5') return false;
  return std::all_of(parts.begin(), parts.end(), [](std::string_view p) {
    return !p.empty() && p.size() <= 3 &&
           std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; });
  });
}

std::string status_for(const DsnRecipient& r) {
  if (valid_status(r.status)) return r.status;
  if (r.action == DsnAction::kFailed) return "5.0.0";
  return r.action == DsnAction::kDelayed ? "4.0.0" : "2.0.0";
}

// Untrusted text on one line: CR/LF runs become one space, control characters
// and non-ASCII bytes are escaped.
std::string one_line(std::string_view text) {
  std::string flat;
  for (char c : text) {
    bool eol = c == '\r' || c == '\n' || c == '\t';
    if (!eol)
      flat += c;
    else if (!flat.empty() && flat.back() != ' ')
      flat += ' ';
  }
  return util::printable(util::trim(flat), 900, util::Keep::kAscii);
}

// An address from the envelope as it may appear in a header field or a line
// of the notice: as it is, unless a control character (CR, LF, NUL, …) would
// break the notice's structure; then escaped like a reply.
bool has_control(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

std::string safe_address(std::string_view address) {
  return has_control(address) ? util::printable(address, 600) : std::string(address);
}

// "mx1.example.test" from "mx1.example.test[192.0.2.1]:25" (RFC 3464 §2.3.5
// wants a host name after "dns;").
std::string remote_name(std::string_view host) {
  std::string name = one_line(host.substr(0, host.find('[')));
  return name.empty() ? one_line(host) : name;
}

// Appends text as lines within kLineWidth where its words allow, breaking at
// spaces; continuation lines start with indent. CR LF terminated.
void append_wrapped(std::string& out, std::string_view text, std::string_view indent) {
  std::size_t column = 0;
  bool first = true;
  for (std::string_view word : util::split(text, ' ')) {
    if (!first && column + 1 + word.size() > kLineWidth) {
      out += "\r\n";
      out += indent;
      column = indent.size();
    } else if (!first) {
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
    first = false;
  }
  out += "\r\n";
}

// A header field, folded at spaces (RFC 5322 §2.2.3).
void add_field(std::string& out, std::string_view name, std::string_view value) {
  std::string line(name);
  line += ": ";
  line += value;
  append_wrapped(out, line, " ");
}

// One UTF-8 sequence at s[i]: its code point and length; a byte that does not
// start a valid sequence stands for itself.
std::pair<std::uint32_t, std::size_t> decode_utf8(std::string_view s, std::size_t i) {
  unsigned char lead = s[i];
  std::size_t len = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  if (len == 1 || i + len > s.size()) return {lead, 1};
  std::uint32_t cp = lead & (0x3f >> (len - 1));
  for (std::size_t k = 1; k < len; ++k) {
    unsigned char c = s[i + k];
    if ((c & 0xc0) != 0x80) return {lead, 1};
    cp = (cp << 6) | (c & 0x3f);
  }
  return {cp, len};
}

// RFC 6533 §3 utf-8-addr-xtext: printable ASCII but "+", "=" and "\" as is,
// anything else as \x{HEXPOINT}. ASCII only, so it fits message/delivery-status.
std::string utf8_addr_xtext(std::string_view addr) {
  std::string out;
  for (std::size_t i = 0; i < addr.size();) {
    unsigned char c = addr[i];
    if (c > 0x20 && c < 0x7f && c != '+' && c != '=' && c != '\\') {
      out += char(c);
      ++i;
      continue;
    }
    auto [cp, len] = decode_utf8(addr, i);
    char buf[16];
    std::snprintf(buf, sizeof buf, cp < 0x100 ? "\\x{%02X}" : "\\x{%X}", cp);
    out += buf;
    i += len;
  }
  return out;
}

// Final-Recipient (RFC 3464 §2.3.2), utf-8 type for a non-ASCII address.
std::string final_recipient(std::string_view address) {
  if (util::is_ascii(address) && !has_control(address)) return "rfc822; " + std::string(address);
  return "utf-8; " + utf8_addr_xtext(address);
}

// Original-Recipient as the client gave it in ORCPT (RFC 3461 §4.2: xtext).
std::string original_recipient(const Recipient& r) {
  if (util::iequals(r.orcpt_type, "utf-8")) return r.orcpt_type + ";" + utf8_addr_xtext(r.orcpt);
  return r.orcpt_type + ";" + smtp::xtext_encode(r.orcpt);
}

std::string date_of(std::int64_t ms) {
  return smtp::rfc5322_date(static_cast<long long>(ms / 1000));
}

// What goes back as part 3 (RFC 3461 §4.3) and, when less than asked, why.
struct Returned {
  bool full = false;
  std::string note;
};

Returned plan_return(const DsnRequest& req, DsnAction worst) {
  const Envelope& env = *req.original;
  bool want_full = env.ret == smtp::DsnRet::kFull ||
                   (env.ret == smtp::DsnRet::kUnspecified && worst == DsnAction::kFailed);
  if (!want_full) return {false, "The header section of your message is attached below."};
  if (req.original_content.size() > req.max_returned)
    return {false, "Your message was larger than " + std::to_string(req.max_returned) +
                       " bytes, so only its header section is attached below."};
  if (env.body == smtp::BodyType::kBinaryMime)  // may not survive a 7/8-bit path back
    return {false,
            "Your message was sent as binary MIME, so only its header section is "
            "attached below."};
  return {true, "Your message is attached below."};
}

std::string recipient_line(const Entry& e) {
  const DsnRecipient& r = *e.report;
  std::string line = "<" + safe_address(e.original->address) + ">: ";
  std::string diagnostic = one_line(r.diagnostic);
  if (!r.remote_mta.empty() && !diagnostic.empty())
    line += "host " + remote_name(r.remote_mta) + " said: ";
  if (!diagnostic.empty()) return line + diagnostic;
  return line + std::string(action_name(r.action)) + " (" + status_for(r) + ")";
}

std::string_view intro_for(DsnAction action) {
  switch (action) {
    case DsnAction::kFailed:
      return "Your message could not be delivered to the recipients below.";
    case DsnAction::kDelayed:
      return "This is a warning only; you do not need to send your message again. It "
             "could not be delivered yet to the recipients below.";
    case DsnAction::kDelivered:
      return "Your message was delivered to the recipients below.";
    case DsnAction::kRelayed:
      return "Your message was passed on to the recipients' next mail system, which "
             "does not report delivery; you may hear nothing more about it.";
  }
  return {};
}

// Part 1: what happened, in words (RFC 6522 §3: the human-readable part).
std::string human_part(const DsnRequest& req, const std::vector<Entry>& entries,
                       const Returned& returned) {
  std::string out;
  append_wrapped(out, "This is the mail system at host " + req.reporting_mta + ".", "");
  for (DsnAction action :
       {DsnAction::kFailed, DsnAction::kDelayed, DsnAction::kDelivered, DsnAction::kRelayed}) {
    std::int64_t until = 0;
    std::string lines;
    for (const Entry& e : entries) {
      if (e.report->action != action) continue;
      append_wrapped(lines, recipient_line(e), "    ");
      until = std::max(until, e.report->will_retry_until_ms);
    }
    if (lines.empty()) continue;
    out += "\r\n";
    append_wrapped(out, intro_for(action), "");
    if (action == DsnAction::kDelayed && until > 0)
      append_wrapped(out, "The mail system will keep trying until " + date_of(until) + ".", "");
    out += "\r\n" + lines;
  }
  out += "\r\n";
  append_wrapped(out, returned.note, "");
  out += "\r\n";
  append_wrapped(out,
                 "For further assistance, please contact the postmaster of " + req.reporting_mta +
                     " and include this report.",
                 "");
  return out;
}

// Part 2: the machine-readable report (RFC 3464 §2.2, §2.3).
std::string status_part(const DsnRequest& req, const std::vector<Entry>& entries) {
  const Envelope& env = *req.original;
  std::string out;
  add_field(out, "Reporting-MTA", "dns; " + req.reporting_mta);
  if (!env.envid.empty()) add_field(out, "Original-Envelope-Id", smtp::xtext_encode(env.envid));
  add_field(out, "Arrival-Date", date_of(env.arrival_ms));
  for (const Entry& e : entries) {
    const DsnRecipient& r = *e.report;
    out += "\r\n";
    if (!e.original->orcpt_type.empty())
      add_field(out, "Original-Recipient", original_recipient(*e.original));
    add_field(out, "Final-Recipient", final_recipient(e.original->address));
    add_field(out, "Action", action_name(r.action));
    add_field(out, "Status", status_for(r));
    if (!r.remote_mta.empty()) add_field(out, "Remote-MTA", "dns; " + remote_name(r.remote_mta));
    std::string diagnostic = one_line(r.diagnostic);
    if (!diagnostic.empty()) add_field(out, "Diagnostic-Code", "smtp; " + diagnostic);
    if (r.last_attempt_ms > 0) add_field(out, "Last-Attempt-Date", date_of(r.last_attempt_ms));
    if (r.action == DsnAction::kDelayed && r.will_retry_until_ms > 0)
      add_field(out, "Will-Retry-Until", date_of(r.will_retry_until_ms));
  }
  return out;
}

// A random token that does not occur in the returned message, for the
// Message-ID and the boundary (RFC 2046 §5.1.1).
std::string fresh_token(std::string_view content) {
  for (;;) {
    std::string token = util::random_uuid();
    if (content.find(token) == std::string_view::npos) return token;
  }
}

void add_part_header(std::string& out, std::string_view boundary, std::string_view type,
                     std::string_view description, bool eight_bit) {
  out += "\r\n--";
  out += boundary;
  out += "\r\n";
  add_field(out, "Content-Type", type);
  add_field(out, "Content-Description", description);
  if (eight_bit) add_field(out, "Content-Transfer-Encoding", "8bit");
  out += "\r\n";
}

// Part 3: the original or its header section (RFC 3461 §4.3; RFC 6533 §6
// types for an SMTPUTF8 message), ending in CR LF before the close delimiter.
void append_returned(std::string& out, std::string_view boundary, std::string_view original,
                     bool smtputf8, bool full) {
  if (!full) original = original.substr(0, smtp::scan_headers(original).header_end);
  const char* type = full ? (smtputf8 ? "message/global" : "message/rfc822")
                          : (smtputf8 ? "message/global-headers" : "text/rfc822-headers");
  add_part_header(out, boundary, type, full ? "Returned message" : "Returned headers",
                  !util::is_ascii(original));
  smtp::append_crlf_lines(out, original);
  if (!original.empty() && !out.ends_with("\r\n")) out += "\r\n";
}

std::vector<Entry> wanted_entries(const DsnRequest& req) {
  std::vector<Entry> entries;
  for (const DsnRecipient& r : req.recipients) {
    const Recipient& original = req.original->recipients.at(r.index);
    if (dsn_wanted(*req.original, original, r.action)) entries.push_back({&r, &original});
  }
  return entries;
}

bool any_non_ascii(const Envelope& env, const std::vector<Entry>& entries) {
  if (!util::is_ascii(env.sender)) return true;
  return std::any_of(entries.begin(), entries.end(), [](const Entry& e) {
    return !util::is_ascii(e.original->address) || !util::is_ascii(e.original->orcpt);
  });
}

}  // namespace

std::string_view action_name(DsnAction action) {
  switch (action) {
    case DsnAction::kFailed:
      return "failed";
    case DsnAction::kDelayed:
      return "delayed";
    case DsnAction::kDelivered:
      return "delivered";
    case DsnAction::kRelayed:
      return "relayed";
  }
  return "failed";
}

bool dsn_wanted(const Envelope& envelope, const Recipient& recipient, DsnAction action) {
  if (envelope.sender.empty()) return false;  // RFC 3461 §6.2: never to <>
  const std::uint8_t n = recipient.notify;
  if (n & smtp::notify::kNever) return false;
  switch (action) {
    case DsnAction::kFailed:
      return n == 0 || (n & smtp::notify::kFailure);
    case DsnAction::kDelayed:
      // Once per recipient: the caller keeps Recipient::delay_notified (it may
      // set it before asking), so it is not consulted here.
      return n == 0 || (n & smtp::notify::kDelay);
    case DsnAction::kDelivered:
    case DsnAction::kRelayed:
      return (n & smtp::notify::kSuccess) != 0;
  }
  return false;
}

std::optional<Dsn> compose_dsn(const DsnRequest& request) {
  if (request.original == nullptr || request.original->sender.empty()) return std::nullopt;
  const Envelope& env = *request.original;
  std::vector<Entry> entries = wanted_entries(request);
  if (entries.empty()) return std::nullopt;
  DsnAction worst = entries.front().report->action;
  for (const Entry& e : entries)
    if (severity(e.report->action) > severity(worst)) worst = e.report->action;

  const std::string token = fresh_token(request.original_content);
  const std::string boundary = "=_tern-dsn-" + token;
  const bool utf8 = any_non_ascii(env, entries);
  const Returned returned = plan_return(request, worst);
  Dsn dsn{env.sender, "<" + token + "@" + request.reporting_mta + ">", {}};

  std::string& out = dsn.content;
  add_field(out, "From", "Mail Delivery System <MAILER-DAEMON@" + request.reporting_mta + ">");
  add_field(out, "To", "<" + safe_address(env.sender) + ">");
  add_field(out, "Subject", subject_for(worst));
  add_field(out, "Date", date_of(request.now_ms));
  add_field(out, "Message-ID", dsn.message_id);
  add_field(out, "Auto-Submitted", "auto-replied");  // RFC 3834 §5
  add_field(out, "MIME-Version", "1.0");
  add_field(out, "Content-Type",
            "multipart/report; report-type=delivery-status; boundary=\"" + boundary + "\"");
  // RFC 2045 §6.4: a multipart is 8bit when a part is.
  if (utf8 || !util::is_ascii(request.original_content))
    add_field(out, "Content-Transfer-Encoding", "8bit");
  out += "\r\nThis is a MIME-encapsulated message.\r\n";

  add_part_header(out, boundary,
                  utf8 ? "text/plain; charset=utf-8" : "text/plain; charset=us-ascii",
                  "Notification", utf8);
  out += human_part(request, entries, returned);
  add_part_header(out, boundary, "message/delivery-status", "Delivery report", false);
  out += status_part(request, entries);

  append_returned(out, boundary, request.original_content, env.smtputf8, returned.full);
  out += "\r\n--" + boundary + "--\r\n";
  return dsn;
}

}  // namespace tern::queue
