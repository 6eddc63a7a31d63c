// How `tern talk` and `tern check` show a reply: the reply as received, then
// its meaning — the class of the code (the seed's table) and the enhanced
// status code in words, or the basic code in words when the reply has no
// enhanced code (smtp/reply_meaning.h).
#pragma once

#include <string>

#include "smtp/diagnosis.h"
#include "smtp/reply.h"
#include "smtp/reply_meaning.h"

namespace tern::cli {

// "250 2.1.0 Sender OK" (all lines, as sent by the server, joined by LF).
// The server's bytes as they are: print them through util::printable.
std::string reply_text(const smtp::Reply& reply);
// "    2yz success: …\n    2.1.0 Addressing status: OK\n" (indented lines).
std::string reply_annotation(const smtp::Reply& reply, const std::string& indent = "    ");
// For a failure: "    This means: …\n    Possible reasons for the failure at
// <step>:\n      - …\n    Try next: …\n" ("Possible reasons:" without step);
// "" when the diagnosis is empty.
std::string diagnosis_text(const smtp::Diagnosis& d, const std::string& indent = "    ",
                           std::string_view step = {});

}  // namespace tern::cli
