#include "cli/annotate.h"

namespace tern::cli {

std::string reply_text(const smtp::Reply& reply) {
  std::string out = reply.wire();
  // The wire form's CR LF line ends become LF; a CR inside a line stays, for
  // the printer to show as \xNN (util::printable).
  std::string clean;
  for (std::size_t start = 0; start < out.size();) {
    auto end = out.find("\r\n", start);
    if (end == std::string::npos) end = out.size();
    if (!clean.empty()) clean += '\n';
    clean.append(out, start, end - start);
    start = end + 2;
  }
  return clean;
}

std::string reply_annotation(const smtp::Reply& reply, const std::string& indent) {
  std::string out = indent + std::to_string(reply.code / 100) + "yz " +
                    std::string(smtp::class_meaning(reply.code)) + "\n";
  auto meaning = smtp::enhanced_meaning(reply.enhanced);
  if (!meaning.empty()) {
    out += indent + reply.enhanced + " " + meaning + "\n";
  } else if (auto basic = smtp::code_meaning(reply.code); !basic.empty()) {
    // Not when the server said it already ("354 Start mail input; end with …").
    bool said = false;
    for (const auto& line : reply.lines) said = said || line.find(basic) != std::string::npos;
    if (!said) out += indent + std::to_string(reply.code) + " " + std::string(basic) + "\n";
  }
  return out;
}

std::string diagnosis_text(const smtp::Diagnosis& d, const std::string& indent,
                           std::string_view step) {
  std::string out;
  if (!d.meaning.empty()) out += indent + "This means: " + d.meaning + "\n";
  if (!d.reasons.empty()) {
    out += indent + "Possible reasons" +
           (step.empty() ? std::string() : " for the failure at " + std::string(step)) + ":\n";
    for (const auto& r : d.reasons) out += indent + "  - " + r + "\n";
  }
  if (!d.next.empty()) out += indent + "Try next: " + d.next + "\n";
  return out;
}

}  // namespace tern::cli
