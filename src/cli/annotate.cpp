#include "cli/annotate.h"

#include "smtp/reply_meaning.h"

namespace tern::cli {

std::string reply_text(const smtp::Reply& reply) {
  std::string out = reply.wire();
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  std::string clean;
  for (char c : out)
    if (c != '\r') clean.push_back(c);
  return clean;
}

std::string reply_annotation(const smtp::Reply& reply, const std::string& indent) {
  std::string out = indent + std::to_string(reply.code / 100) + "yz " +
                    std::string(smtp::class_meaning(reply.code)) + "\n";
  auto meaning = smtp::enhanced_meaning(reply.enhanced);
  if (!meaning.empty()) out += indent + reply.enhanced + " " + meaning + "\n";
  return out;
}

}  // namespace tern::cli
