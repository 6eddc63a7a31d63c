#include "smtp/reply_meaning.h"

#include <array>
#include <utility>

namespace tern::smtp {

std::string_view class_meaning(int code) {
  switch (code / 100) {
    case 2:
      return "success: the remote server completed the command and is ready for the next one";
    case 3:
      return "accepted, but the remote server needs more information before it can complete the "
             "operation";
    case 4:
      return "temporary failure: the command was not accepted for a reason that may go away; a "
             "sending "
             "server keeps retrying until it succeeds (2yz) or fails for good (5yz)";
    case 5:
      return "permanent failure: the command was not accepted and will not be retried; a sending "
             "server "
             "returns a non-delivery report to the sender";
    default:
      return "not an SMTP reply code";
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
    {"1.10", "Recipient address has null MX"},
    {"2.0", "Other or undefined mailbox status"},
    {"2.1", "Mailbox disabled, not accepting messages"},
    {"2.2", "Mailbox full"},
    {"2.3", "Message length exceeds administrative limit"},
    {"2.4", "Mailing list expansion problem"},
    {"3.0", "Other or undefined mail system status"},
    {"3.1", "Mail system full"},
    {"3.2", "System not accepting network messages"},
    {"3.3", "System not capable of selected features"},
    {"3.4", "Message too big for system"},
    {"3.5", "System incorrectly configured"},
    {"4.0", "Other or undefined network or routing status"},
    {"4.1", "No answer from host"},
    {"4.2", "Bad connection"},
    {"4.3", "Directory server failure"},
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
    {"6.0", "Other or undefined media error"},
    {"6.1", "Media not supported"},
    {"6.2", "Conversion required and prohibited"},
    {"6.3", "Conversion required but not supported"},
    {"6.7", "Non-ASCII addresses not permitted for that sender/recipient"},
    {"7.0", "Other or undefined security status"},
    {"7.1", "Delivery not authorized, message refused"},
    {"7.2", "Mailing list expansion prohibited"},
    {"7.3", "Security conversion required but not possible"},
    {"7.4", "Security features not supported"},
    {"7.5", "Cryptographic failure"},
    {"7.6", "Cryptographic algorithm not supported"},
    {"7.7", "Message integrity failure"},
    {"7.8", "Authentication credentials invalid"},
    {"7.9", "Authentication mechanism is too weak"},
    {"7.11", "Encryption required for requested authentication mechanism"},
    {"7.54", "Relay not permitted for this recipient domain (Exchange)"},
    {"7.60", "Not permitted to send as this sender (Exchange)"},
};

}  // namespace

std::string enhanced_meaning(std::string_view code) {
  if (code.size() < 5 || code[1] != '.' || (code[0] != '2' && code[0] != '4' && code[0] != '5'))
    return "";
  std::string_view rest = code.substr(2);
  for (const auto& [detail, text] : kDetails)
    if (rest == detail) return std::string(text);
  unsigned subject = static_cast<unsigned>(rest[0] - '0');
  return subject < kSubjects.size() ? std::string(kSubjects[subject]) : "";
}

std::string_view step_name(Step step) {
  switch (step) {
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

Diagnosis diagnose(Step step, const Reply& reply) {
  Diagnosis d;
  const std::string& e = reply.enhanced;
  switch (step) {
    case Step::kConnect:  // the seed's list for OPEN
      d.reasons = {"the destination SMTP service is not available",
                   "restrictions on the destination firewall",
                   "restrictions on the source firewall (outbound port 25 is often blocked)",
                   "an incorrect FQDN or IP address for the destination SMTP server",
                   "an incorrect port number"};
      d.next =
          "check the MX records (tern mx DOMAIN), then whether the host answers on that port from "
          "here";
      break;
    case Step::kGreeting:
      d.reasons = {"the server refuses connections from this address (a block list or policy)",
                   "the service is overloaded or shutting down (421)"};
      d.next = "try again later, or from the address the mail really comes from";
      break;
    case Step::kEhlo:  // the seed: 501 5.5.4 Invalid domain name
      d.reasons = {"invalid characters in the domain name given to EHLO",
                   "connection restrictions on the destination SMTP server"};
      d.next =
          "use your server's fully qualified domain name with EHLO (--helo), or HELO for old "
          "servers";
      break;
    case Step::kStartTls:
      d.reasons = {
          "the server offers no STARTTLS, or its certificate or protocols do not match ours"};
      d.next = "try without --starttls to see whether plain SMTP works, and check the certificate";
      break;
    case Step::kAuth:
      d.reasons = {"a wrong user name or password",
                   "the mechanism is not allowed without TLS (use --starttls)",
                   "too many failed attempts from this address"};
      d.next = "check the credentials; the user name is often the full address";
      break;
    case Step::kMail:
      if (reply.code == 530)  // the seed: 530 5.7.1 Client was not authenticated
        d.reasons = {
            "the destination server does not accept anonymous submissions: this connector requires "
            "authentication (or TLS first, 5.7.0)"};
      else if (e == "5.7.60")
        d.reasons = {"the authenticated user may not send as this sender address"};
      else if (reply.code == 452 || e == "4.3.1")
        d.reasons = {"the server is short of storage; it will take mail again later"};
      else  // the seed: 550 5.1.7 Invalid address
        d.reasons = {
            "a syntax error in the sender's e-mail address",
            "the server checks the sender's domain (it must exist and may need to match where the "
            "connection comes from)"};
      d.next = "check the sender address (--from); authenticate (--auth) on a submission port";
      break;
    case Step::kRcpt:
      if (e == "5.7.54" || e == "5.7.1")
        d.reasons = {
            "the server does not accept mail for that domain from this client (relay denied): it "
            "is "
            "not one of its accepted domains"};
      else if (e == "5.1.10")
        d.reasons = {"the recipient's domain publishes a null MX: it accepts no mail"};
      else if (reply.code == 452)
        d.reasons = {"too many recipients in one message, or the server is short of storage"};
      else  // the seed: 550 5.1.1 User unknown
        d.reasons = {"the specified recipient does not exist in the organization",
                     "a typing error in the recipient's address"};
      d.next = "check the recipient address, and that you are testing the MX host of its domain";
      break;
    case Step::kData:
    case Step::kMessage:
      d.reasons = {"the message was refused for its content, size (5.3.4) or policy",
                   "the server had a temporary problem storing it (4yz)"};
      d.next = "look at the enhanced code; a 4yz will be retried by a real sending server";
      break;
    case Step::kQuit:
      break;
  }
  return d;
}

}  // namespace tern::smtp
