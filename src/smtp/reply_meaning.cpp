#include "smtp/reply_meaning.h"

#include <array>
#include <utility>

namespace tern::smtp {

std::string_view class_meaning(int code) {
  switch (code / 100) {
    case 2:
      return "success: the command completed on the remote server, which is ready for the next "
             "command";
    case 3:
      return "accepted, but the remote server needs more information before it can complete the "
             "operation: the client sends it next";
    case 4:
      return "temporary failure: the command was not accepted for a reason that may go away (for "
             "example low storage on the remote server); a sending server tries again later until "
             "it succeeds (2yz) or fails for good (5yz)";
    case 5:
      return "permanent failure: the command was not accepted for a reason that will not go away "
             "(for example a recipient that does not exist); a sending server does not retry and "
             "returns a non-delivery report to the sender";
    default:
      return "not an SMTP reply code";
  }
}

std::string_view code_meaning(int code) {
  switch (code) {
    case 211:
      return "System status, or system help reply";
    case 214:
      return "Help message";
    case 220:
      return "Service ready";
    case 221:
      return "Service closing transmission channel";
    case 235:
      return "Authentication succeeded";
    case 250:
      return "Requested mail action okay, completed";
    case 251:
      return "User not local; will forward";
    case 252:
      return "Cannot verify the user, but will accept the message and attempt delivery";
    case 334:
      return "Authentication continues: send the next (base64) line";
    case 354:
      return "Start mail input; end with <CRLF>.<CRLF>";
    case 421:
      return "Service not available, closing transmission channel";
    case 450:
      return "Requested mail action not taken: mailbox unavailable (busy or blocked for now)";
    case 451:
      return "Requested action aborted: local error in processing";
    case 452:
      return "Requested action not taken: insufficient system storage";
    case 454:
      return "Temporary failure (authentication or TLS not available now)";
    case 455:
      return "Server unable to accommodate parameters";
    case 500:
      return "Syntax error, command unrecognized";
    case 501:
      return "Syntax error in parameters or arguments";
    case 502:
      return "Command not implemented";
    case 503:
      return "Bad sequence of commands";
    case 504:
      return "Command parameter not implemented";
    case 521:
      return "This host does not accept mail";
    case 530:
      return "Authentication required";
    case 534:
      return "Authentication mechanism is too weak";
    case 535:
      return "Authentication credentials invalid";
    case 538:
      return "Encryption required for requested authentication mechanism";
    case 550:
      return "Requested action not taken: mailbox unavailable (not found, or refused by policy)";
    case 551:
      return "User not local";
    case 552:
      return "Requested mail action aborted: exceeded storage allocation";
    case 553:
      return "Requested action not taken: mailbox name not allowed";
    case 554:
      return "Transaction failed (as a greeting: no SMTP service here)";
    case 555:
      return "MAIL FROM/RCPT TO parameters not recognized or not implemented";
    case 556:
      return "Domain does not accept mail";
    default:
      return "";
  }
}

namespace {

// RFC 3463 §3 subjects and the details of the IANA "Enumerated Status Codes" registry.
constexpr std::array<std::string_view, 8> kSubjects = {"Other or undefined status",
                                                       "Addressing status",
                                                       "Mailbox status",
                                                       "Mail system status",
                                                       "Network and routing status",
                                                       "Mail delivery protocol status",
                                                       "Message content or media status",
                                                       "Security or policy status"};

constexpr std::pair<std::string_view, std::string_view> kDetails[] = {
    {"0.0", "Other undefined status"},
    {"1.0", "Other address status"},
    {"1.1", "Bad destination mailbox address"},
    {"1.2", "Bad destination system address"},
    {"1.3", "Bad destination mailbox address syntax"},
    {"1.4", "Destination mailbox address ambiguous"},
    {"1.5", "Destination address valid"},
    {"1.6", "Destination mailbox has moved, no forwarding address"},
    {"1.7", "Bad sender's mailbox address syntax"},
    {"1.8", "Bad sender's system address"},
    {"1.9", "Message relayed to non-compliant mailer"},
    {"1.10", "Recipient address has null MX"},
    {"2.0", "Other or undefined mailbox status"},
    {"2.1", "Mailbox disabled, not accepting messages"},
    {"2.2", "Mailbox full"},
    {"2.3", "Message length exceeds administrative limit"},
    {"2.4", "Mailing list expansion problem"},
    {"3.0", "Other or undefined mail system status"},
    {"3.1", "Mail system full"},
    {"3.2", "System not accepting network messages"},
    {"3.3", "System not capable of selected features (Exchange: unrecognized command)"},
    {"3.4", "Message too big for system"},
    {"3.5", "System incorrectly configured"},
    {"4.0", "Other or undefined network or routing status"},
    {"4.1", "No answer from host"},
    {"4.2", "Bad connection"},
    {"4.3", "Directory server failure (DNS)"},
    {"4.4", "Unable to route"},
    {"4.5", "Mail system congestion"},
    {"4.6", "Routing loop detected"},
    {"4.7", "Delivery time expired"},
    {"5.0", "Other or undefined protocol status"},
    {"5.1", "Invalid command"},
    {"5.2", "Syntax error"},
    {"5.3", "Too many recipients"},
    {"5.4", "Invalid command arguments"},
    {"5.5", "Wrong protocol version"},
    {"5.6", "Authentication exchange line is too long"},
    {"6.0", "Other or undefined media error"},
    {"6.1", "Media not supported"},
    {"6.2", "Conversion required and prohibited"},
    {"6.3", "Conversion required but not supported"},
    {"6.4", "Conversion with loss performed"},
    {"6.5", "Conversion failed"},
    {"6.6", "Message content not available"},
    {"6.7", "Non-ASCII addresses not permitted for that sender/recipient"},
    {"7.0", "Other or undefined security status"},
    {"7.1", "Delivery not authorized, message refused"},
    {"7.2", "Mailing list expansion prohibited"},
    {"7.3",
     "Security conversion required but not possible (Exchange: authentication unsuccessful)"},
    {"7.4", "Security features not supported"},
    {"7.5", "Cryptographic failure"},
    {"7.6", "Cryptographic algorithm not supported"},
    {"7.7", "Message integrity failure"},
    {"7.8", "Authentication credentials invalid"},
    {"7.9", "Authentication mechanism is too weak"},
    {"7.10", "Encryption needed"},
    {"7.11", "Encryption required for requested authentication mechanism"},
    {"7.12", "A password transition is needed"},
    {"7.13", "User account disabled"},
    {"7.14", "Trust relationship required"},
    {"7.20", "No passing DKIM signature found"},
    {"7.23", "SPF validation failed"},
    {"7.24", "SPF validation error"},
    {"7.25", "Reverse DNS validation failed"},
    {"7.26", "Multiple authentication checks failed"},
    {"7.27", "Sender address has null MX"},
    {"7.28", "Mail flood detected"},
    {"7.54", "Relay not permitted for this recipient domain (Exchange)"},
    {"7.60", "Not permitted to send as this sender (Exchange)"},
};

}  // namespace

std::string enhanced_meaning(std::string_view code) {
  if (code.size() < 5 || code[1] != '.' || (code[0] != '2' && code[0] != '4' && code[0] != '5'))
    return "";
  std::string_view rest = code.substr(2);
  unsigned subject = static_cast<unsigned>(rest[0] - '0');
  if (subject >= kSubjects.size()) return "";
  if (code[0] == '2' && (rest == "0.0" || rest.substr(1) == ".0")) {
    // "Other undefined status" reads as a problem; on a success it means "OK".
    if (rest == "0.0") return "OK (nothing more to report)";
    return std::string(kSubjects[subject]) + ": OK";
  }
  for (const auto& [detail, text] : kDetails)
    if (rest == detail) return std::string(text);
  return std::string(kSubjects[subject]);
}

std::string_view step_name(Step step) {
  switch (step) {
    case Step::kDns:
      return "MX lookup";
    case Step::kConnect:
      return "OPEN";
    case Step::kGreeting:
      return "banner";
    case Step::kEhlo:
      return "EHLO";
    case Step::kStartTls:
      return "STARTTLS";
    case Step::kAuth:
      return "AUTH";
    case Step::kMail:
      return "MAIL FROM";
    case Step::kRcpt:
      return "RCPT TO";
    case Step::kData:
      return "DATA";
    case Step::kMessage:
      return "end of message";
    case Step::kQuit:
      return "QUIT";
  }
  return "";
}

}  // namespace tern::smtp
