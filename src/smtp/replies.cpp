#include "smtp/replies.h"

#include <string>

namespace tern::smtp::replies {

Reply greeting(std::string_view host, std::string_view date) {
  std::string text(host);
  text += " tern ESMTP MAIL Service ready at ";
  text += date;
  return Reply(220, "", text);
}

Reply helo_ok(std::string_view host, std::string_view client_ip) {
  std::string text(host);
  text += " Hello [";
  text += client_ip;
  text += "]";
  return Reply(250, "", text);
}

Reply timed_out(std::string_view host) {
  std::string text(host);
  text += " Connection timed out";
  return Reply(421, "4.4.2", text);
}

Reply help() {
  return Reply(214, "2.0.0",
               std::vector<std::string>{
                   "This server supports the following commands:",
                   "HELO EHLO STARTTLS RCPT DATA RSET MAIL QUIT HELP AUTH BDAT NOOP VRFY"});
}

Reply queued(std::string_view message_id, std::uint64_t internal_id, std::string_view host) {
  std::string text(message_id);
  text += " [InternalId=";
  text += std::to_string(internal_id);
  text += ", Hostname=";
  text += host;
  text += "] Queued mail for delivery";
  return Reply(250, "2.6.0", text);
}

Reply dmarc_reject(std::string_view domain) {
  return Reply(550, "5.7.509",
               "Access denied, sending domain " + std::string(domain) +
                   " does not pass DMARC verification and has a DMARC policy of reject.");
}

Reply chunk_received(std::uint64_t octets) {
  return Reply(250, "2.0.0", std::to_string(octets) + " octets received");
}

}  // namespace tern::smtp::replies
