// How `tern talk` and `tern check` show a reply: the reply as received, then
// its meaning — the class of the code and the enhanced status code in words
// (smtp/reply_meaning.h).
#pragma once

#include <string>

#include "smtp/reply.h"

namespace tern::cli {

// "250 2.1.0 Sender OK" (all lines, as sent by the server).
std::string reply_text(const smtp::Reply& reply);
// "    2yz success: …\n    2.1.0 Other address status\n" (indented lines).
std::string reply_annotation(const smtp::Reply& reply, const std::string& indent = "    ");

}  // namespace tern::cli
