#include "smtp/diagnosis.h"

#include "util/text.h"

namespace tern::smtp {

namespace {
bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}
}  // namespace

namespace {

// No reply at a step after the banner: what the error means.
Diagnosis no_reply(Step step, std::string_view error) {
  Diagnosis d;
  std::string at(step_name(step));
  if (contains(error, "timed out")) {
    d.meaning = "the server stopped answering: no reply to " + at + " in time";
    d.reasons = {"the server is overloaded or deliberately slow (tarpitting suspected spam)",
                 "a firewall or proxy between here and the server stopped passing the traffic"};
    d.next = "try again, with a longer timeout (tern check --timeout)";
  } else if (contains(error, "not SMTP")) {
    d.meaning = "the server answered " + at + " with something that is not an SMTP reply";
    d.reasons = {"a proxy or a firewall's SMTP inspection in the way garbles the conversation",
                 "the server is not a working SMTP server"};
    d.next = "look at the raw conversation with tern talk";
  } else {
    d.meaning = "the server closed the connection instead of answering " + at;
    d.reasons = {
        "the server refuses this client by policy (its address, its EHLO name, the sender)",
        "the server crashed or is shutting down"};
    d.next = "look at the server's logs, or try again later";
  }
  return d;
}

Diagnosis dns(const Reply& reply) {
  Diagnosis d;
  const std::string& e = reply.enhanced;
  if (e == "5.1.2") {
    d.meaning =
        "the domain of the address does not exist in DNS (NXDOMAIN): it has no MX and no "
        "A record, so there is no server to deliver to";
    d.reasons = {"a typing error in the domain part of the address",
                 "the domain is not registered, or its registration has expired",
                 "the DNS server asked does not know the domain (internal or split DNS)"};
    d.next =
        "check the spelling of the address; look the domain up with tern mx (and "
        "--dns-server to ask another DNS server)";
  } else if (e == "5.1.10") {
    d.meaning = "the domain publishes a null MX (RFC 7505): it declares that it accepts no mail";
    d.reasons = {"the domain is used for web sites or sending only, never for receiving mail",
                 "a typing error in the domain part of the address"};
    d.next = "check the address with its owner";
  } else if (e == "5.4.4") {
    d.meaning =
        "the domain exists, but neither its MX hosts nor (without MX records) the domain "
        "itself have an address (A/AAAA) to connect to";
    d.reasons = {"the MX records name hosts that have no A/AAAA record (a broken DNS zone)",
                 "the domain has no mail service at all"};
    d.next = "look at the route with tern mx DOMAIN and tell the domain's DNS administrator";
  } else {
    d.meaning = "DNS could not answer now: the domain's mail servers are unknown for the moment";
    d.reasons = {"the DNS server does not answer (down, or blocked by a firewall)",
                 "the domain's own DNS servers do not answer (SERVFAIL)"};
    d.next = "try again later; check the DNS server with tern mx DOMAIN --dns-server IP";
  }
  return d;
}

Diagnosis connect(std::string_view error) {
  Diagnosis d;
  // The seed's list for OPEN, ordered by what the error points at.
  const std::string service = "the destination SMTP service is not available";
  const std::string dest_fw = "restrictions on the destination firewall";
  const std::string source_fw =
      "restrictions on the source firewall (outbound port 25 is often blocked by ISPs and cloud "
      "providers)";
  const std::string address = "an incorrect FQDN or IP address for the destination SMTP server";
  const std::string port = "an incorrect port number";
  if (contains(error, "refused")) {
    d.meaning =
        "the host answered, but nothing accepts connections on that port (or a firewall "
        "rejects them)";
    d.reasons = {service, port, address, dest_fw, source_fw};
  } else if (contains(error, "timed out")) {
    d.meaning =
        "no answer at all: the connection attempts are dropped on the way, or the host is "
        "down";
    d.reasons = {source_fw, dest_fw, address, service, port};
  } else {
    d.meaning = "the host cannot be reached from here";
    d.reasons = {address, source_fw, dest_fw, service, port};
  }
  d.next =
      "check the MX records (tern mx DOMAIN), then whether the host answers on that port "
      "from here; test from another network to rule out the source firewall";
  return d;
}

Diagnosis greeting(const Reply& reply, std::string_view error) {
  Diagnosis d;
  if (reply.code == 0 && contains(error, "timed out")) {
    d.meaning = "the connection was accepted, but the server sent no banner (220 ...) in time";
    d.reasons = {
        "the server is overloaded, or delays its banner on purpose (a greeting delay against spam "
        "bots)",
        "the service on that port is not SMTP: it waits for the client to speak first (HTTP, ...)",
        "the port expects TLS at once (implicit TLS, e.g. 465) instead of a plain banner",
        "a firewall or proxy accepts the connection but does not pass the traffic"};
    d.next = "check the port; try again with a longer timeout (tern check --timeout)";
  } else if (reply.code == 0 && contains(error, "not SMTP")) {
    d.meaning = "the program on that port answered, but not with an SMTP banner (220 ...)";
    d.reasons = {"another service listens on that port, not an SMTP server",
                 "the port expects TLS at once (implicit TLS, e.g. 465) instead of STARTTLS",
                 "a proxy or a firewall's SMTP inspection garbles the conversation"};
    d.next =
        "check the port (25 between servers, 587 for submission); look at what answers with "
        "tern talk";
  } else if (reply.code == 0) {
    d.meaning = "the server closed the connection without a banner";
    d.reasons = {
        "the server refuses connections from this address (a block list, a policy, or too many "
        "connections)",
        "the service is shutting down or crashed"};
    d.next = "try again later, or from the address the mail really comes from";
  } else if (reply.code / 100 == 4) {
    d.meaning = "the server is up but does not take mail now";
    d.reasons = {"the service is overloaded, or shutting down (421)",
                 "the server limits connections from this address for now"};
    d.next = "try again later; a sending server would try the next MX host";
  } else {
    d.meaning = "the server refuses to talk SMTP with this client";
    d.reasons = {
        "the server refuses connections from this address (a block list or a policy, "
        "often about missing reverse DNS)",
        "there is no mail service on this host (554 / 521)"};
    d.next = "test from the address the mail really comes from; check block lists for it";
  }
  return d;
}

// EHLO refused (the seed: 501 5.5.4 Invalid domain name).
Diagnosis ehlo(const Reply& reply) {
  Diagnosis d;
  const int code = reply.code;
  d.meaning = code == 501 ? "the server does not accept the name given with EHLO"
                          : "the server refused the greeting";
  d.reasons = {"invalid characters in the domain name given to EHLO",
               "connection restrictions on the destination SMTP server"};
  d.next =
      "give your server's fully qualified domain name with EHLO, e.g. mail.contoso.com "
      "(tern check --helo NAME); very old servers only know HELO";
  return d;
}

// STARTTLS refused.
Diagnosis starttls_refused(const Reply&) {
  Diagnosis d;
  d.meaning = "the server will not start TLS now";
  d.reasons = {
      "the server does not offer STARTTLS (not in its EHLO reply), or TLS is broken on "
      "it (454)",
      "its certificate, protocols or ciphers do not match ours"};
  d.next =
      "try without TLS to see whether plain SMTP works, and check the server's TLS "
      "configuration";
  return d;
}

// AUTH refused.
Diagnosis auth(const Reply& reply) {
  Diagnosis d;
  const std::string& e = reply.enhanced;
  const int code = reply.code;
  if (code == 530 || code == 538 || e == "5.7.0" || e == "5.7.11") {
    d.meaning = "the server allows AUTH only over an encrypted connection";
    d.reasons = {"AUTH was tried before STARTTLS"};
    d.next = "issue STARTTLS first, then EHLO and AUTH again (tern check --starttls)";
  } else if (code == 504 || code == 502) {
    d.meaning = "the server does not support this authentication mechanism here";
    d.reasons = {"the server offers no AUTH on this port, or not before TLS",
                 "the server offers other mechanisms only (see its EHLO reply)"};
    d.next = "issue STARTTLS first (tern check --starttls), or use the submission port (587)";
  } else if (code / 100 == 4) {
    d.meaning = "the server cannot check credentials now";
    d.reasons = {"its authentication back end is unavailable",
                 "too many failed attempts from this address for now"};
    d.next = "try again later";
  } else {
    d.meaning = "the server rejected the user name or password";
    d.reasons = {"a wrong user name or password (the user name is often the full address)",
                 "the account is disabled or not allowed to send mail",
                 "too many failed attempts from this address"};
    d.next = "check the credentials (tern check takes the password from TERN_PASSWORD)";
  }
  return d;
}

// MAIL FROM refused (the seed: 530 5.7.1, 550 5.1.7).
Diagnosis mail_from(const Reply& reply) {
  Diagnosis d;
  const std::string& e = reply.enhanced;
  const int code = reply.code;
  if (code == 530 && e == "5.7.0") {
    d.meaning = "the server requires TLS before it takes mail";
    d.reasons = {"this connector requires TLS (STARTTLS) first"};
    d.next = "issue STARTTLS first (tern check --starttls)";
  } else if (code == 530) {  // the seed: 530 5.7.1 Client was not authenticated
    d.meaning = "the server does not accept mail from anonymous clients on this port";
    d.reasons = {
        "the destination server does not accept anonymous message submissions: you "
        "get this when you test a server whose receive connector does not accept "
        "anonymous connections (a submission port, or a Mailbox server)"};
    d.next =
        "authenticate first (tern check --auth USER with the password in TERN_PASSWORD, "
        "usually with --starttls), or test the server that takes mail from the Internet "
        "on port 25";
  } else if (e == "5.7.60") {
    d.meaning = "the authenticated user may not send as this sender address";
    d.reasons = {"the sender (--from) is not an address of the authenticated user"};
    d.next = "send as the user's own address (tern check --from)";
  } else if (code / 100 == 4) {
    d.meaning = "the server does not take mail from this sender for now";
    d.reasons = {"the server is short of storage (452 4.3.1)",
                 "greylisting or a rate limit: the server asks to come back later",
                 "it could not verify the sender's domain in DNS for now"};
    d.next = "try again in a few minutes";
  } else {  // the seed: 550 5.1.7 Invalid address
    d.meaning = "the server refuses this sender";
    d.reasons = {"a syntax error in the sender's e-mail address",
                 "the server checks the sender's domain (it must exist, and its SPF may have "
                 "to allow the address the connection comes from)"};
    d.next =
        "check the sender address (tern check --from): use a real address of a domain "
        "you run";
  }
  return d;
}

// RCPT TO refused (the seed: 550 5.1.1).
Diagnosis rcpt_to(const Reply& reply) {
  Diagnosis d;
  const std::string& e = reply.enhanced;
  const int code = reply.code;
  if (e == "5.7.54" || e == "5.7.1" || code == 554 || (code == 550 && e == "5.7.0")) {
    d.meaning =
        "the server does not accept mail for this domain from this client (relay "
        "denied)";
    d.reasons = {"the recipient's domain is not one the server accepts mail for",
                 "you are not testing the MX host of the recipient's domain",
                 "relaying needs authentication (AUTH) or a trusted network"};
    d.next =
        "check the MX records of the recipient's domain (tern mx DOMAIN) and test those "
        "hosts";
  } else if (e == "5.1.10") {
    d.meaning = "the recipient's domain publishes a null MX: it accepts no mail";
    d.reasons = {"the address is not meant to receive mail"};
    d.next = "check the address with its owner";
  } else if (e == "5.2.2" || e == "4.2.2" || code == 552) {
    d.meaning = "the recipient's mailbox is full";
    d.reasons = {"the mailbox is over its quota"};
    d.next = "ask the recipient to make room, or try later";
  } else if (code == 452 || e == "4.5.3") {
    d.meaning = "the server will not take more recipients now";
    d.reasons = {"too many recipients in one message", "the server is short of storage"};
    d.next = "send to fewer recipients at once, or try again later";
  } else if (code / 100 == 4) {
    d.meaning = "the server defers this recipient: a sending server would try again later";
    d.reasons = {
        "greylisting: the server does not know this sender and client yet and asks "
        "to come back in a few minutes",
        "the recipient's mailbox server is unavailable for now", "a rate limit for this client"};
    d.next = "try again in a few minutes";
  } else {  // the seed: 550 5.1.1 User unknown
    d.meaning = "the server does not know this recipient";
    d.reasons = {"the specified recipient does not exist in the organization",
                 "a typing error in the recipient's address"};
    d.next =
        "check the recipient address, and that you are testing the MX host of its "
        "domain";
  }
  return d;
}

// DATA or the message refused.
Diagnosis message(const Reply& reply) {
  Diagnosis d;
  const std::string& e = reply.enhanced;
  const int code = reply.code;
  if (e == "5.7.509" || e == "5.7.26" || e == "5.7.25" || e == "5.7.23") {
    // Exchange Online (5.7.509), RFC 7372 (5.7.23 SPF, 5.7.26 multiple
    // authentication checks failed).
    d.meaning =
        "the server refused the message: it failed the sender domain's SPF, DKIM or DMARC "
        "checks";
    d.reasons = {
        "the sending host is not listed in the SPF record of the sender's domain",
        "the message has no valid DKIM signature of the sender's domain (no key published, a key "
        "that does not match, or no signature)",
        "the domain's DMARC policy is reject (or quarantine) and neither SPF nor DKIM is aligned "
        "with the From address"};
    d.next =
        "look at the sender records tern check printed for the --from domain: publish what "
        "they say, or send from a host the domain's SPF lists (tern check --dkim signs the "
        "test message)";
  } else if (code == 552 || e == "5.3.4" || e == "5.2.3") {
    d.meaning = "the message is too big for the server";
    d.reasons = {"the message exceeds the server's size limit (see SIZE in its EHLO reply)"};
    d.next = "send a smaller message";
  } else if (code / 100 == 4) {
    d.meaning = "the server could not take the message now";
    d.reasons = {"the server had a temporary problem storing it (storage, a scanner)",
                 "greylisting or a rate limit"};
    d.next = "try again later: a real sending server retries a 4yz";
  } else if (code == 503 || code == 554) {
    d.meaning = "the server refused the message";
    d.reasons = {"no recipient was accepted (503 / 554 5.5.1)",
                 "the content was refused by a filter (spam, virus, policy)"};
    d.next = "look at the enhanced code and the text of the reply";
  } else {
    d.meaning = "the server refused the message";
    d.reasons = {"the content was refused by a filter (spam, virus, policy: 5.7.x)",
                 "the message is malformed for this server (5.6.x)"};
    d.next = "look at the enhanced code and the text of the reply";
  }
  return d;
}

}  // namespace

Diagnosis diagnose(Step step, const Reply& reply, std::string_view error) {
  Diagnosis d;
  const int code = reply.code;
  if (step == Step::kDns) return dns(reply);
  if (step == Step::kConnect) return connect(error);
  if (step == Step::kGreeting) return greeting(reply, error);
  if (step == Step::kStartTls && code == 0 && contains(error, "TLS")) {
    d.meaning = "the server agreed to STARTTLS, but the TLS handshake did not complete";
    d.reasons = {
        "the server's certificate, protocols or ciphers do not match ours (tern needs TLS "
        "1.2 or later)",
        "the server's TLS configuration is broken (a missing or unreadable key)"};
    d.next =
        "try without TLS to see whether plain SMTP works; check the server's TLS "
        "configuration";
    return d;
  }
  if (code == 0) return no_reply(step, error);
  if (code == 421) {
    d.meaning = "the server is closing the connection: it cannot go on now";
    d.reasons = {"the server is shutting down or overloaded",
                 "too many errors or too slow a client on this connection",
                 "the server limits this client for now"};
    d.next = "try again later";
    return d;
  }
  switch (step) {
    case Step::kEhlo:
      return ehlo(reply);
    case Step::kStartTls:
      return starttls_refused(reply);
    case Step::kAuth:
      return auth(reply);
    case Step::kMail:
      return mail_from(reply);
    case Step::kRcpt:
      return rcpt_to(reply);
    case Step::kData:
    case Step::kMessage:
      return message(reply);
    default:
      return d;
  }
}

}  // namespace tern::smtp
