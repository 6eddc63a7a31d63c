#include "cli/check_report.h"

#include <cstdio>

#include "cli/annotate.h"

namespace tern::cli {

CheckReport::CheckReport(bool json, const std::string& log_path) : json_mode_(json) {
  if (!log_path.empty()) log_.open(log_path, std::ios::app);
  json_["steps"] = nlohmann::json::array();
}

void CheckReport::out(const std::string& line) {
  if (!json_mode_) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  if (log_) log_ << line << "\n" << std::flush;
}

void CheckReport::heading(const std::string& text) {
  out("== " + text);
}
void CheckReport::note(const std::string& text) {
  out("   " + text);
}

void CheckReport::sent(const std::string& line) {
  out("-> " + line);
  json_["steps"].push_back({{"sent", line}});
  current_ = &json_["steps"].back();
}

bool CheckReport::reply(smtp::Step step, const smtp::Reply& reply, long elapsed_ms) {
  std::string text = reply_text(reply);
  for (std::size_t start = 0;;) {
    auto end = text.find('\n', start);
    out("<- " + text.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  std::string annotation = reply_annotation(reply, "     ");
  if (!annotation.empty()) {
    annotation.pop_back();
    out(annotation);
  }
  if (!current_ || current_->contains("step")) {
    json_["steps"].push_back(nlohmann::json::object());
    current_ = &json_["steps"].back();
  }
  auto& j = *current_;
  j["step"] = smtp::step_name(step);
  j["reply"] = {{"code", reply.code}, {"enhanced", reply.enhanced}, {"lines", reply.lines}};
  j["class"] = smtp::class_meaning(reply.code);
  j["meaning"] = smtp::enhanced_meaning(reply.enhanced);
  j["ok"] = reply.positive();
  j["elapsed_ms"] = elapsed_ms;
  current_ = nullptr;
  if (!reply.positive()) diagnosis(step, reply);
  return reply.positive();
}

void CheckReport::failure(smtp::Step step, const std::string& what, long elapsed_ms) {
  out("   FAILED: " + what + " (after " + std::to_string(elapsed_ms) + " ms)");
  json_["steps"].push_back({{"step", smtp::step_name(step)},
                            {"ok", false},
                            {"error", what},
                            {"elapsed_ms", elapsed_ms}});
  current_ = nullptr;
  diagnosis(step, smtp::Reply{});
  failed_reply_ = what;
}

void CheckReport::diagnosis(smtp::Step step, const smtp::Reply& reply) {
  auto d = smtp::diagnose(step, reply);
  failed_step_ = step;
  failed_reply_ = reply.code ? reply.summary() : "";
  failed_diagnosis_ = d;
  if (d.reasons.empty()) return;
  out("   Possible reasons for the failure at " + std::string(smtp::step_name(step)) + ":");
  for (const auto& r : d.reasons) out("     - " + r);
  if (!d.next.empty()) out("   Try next: " + d.next);
  auto& last = json_["steps"].back();
  last["reasons"] = d.reasons;
  last["next"] = d.next;
}

void CheckReport::verdict(bool ok, const std::string& text) {
  out(std::string("== Verdict: ") + (ok ? "PASS — " : "FAIL — ") + text);
  json_["verdict"] = {{"ok", ok}, {"text", text}};
  if (!ok && failed_step_) {
    json_["verdict"]["step"] = smtp::step_name(*failed_step_);
    json_["verdict"]["reply"] = failed_reply_;
    json_["verdict"]["reasons"] = failed_diagnosis_.reasons;
    json_["verdict"]["next"] = failed_diagnosis_.next;
  }
  if (json_mode_) std::printf("%s\n", json_.dump(2).c_str());
}

}  // namespace tern::cli
