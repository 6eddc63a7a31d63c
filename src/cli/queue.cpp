// `tern queue list|show ID [--json]`: what is in the spool (SPEC §1). Works
// whether the server runs or not: the spool is opened read-only. Run as root,
// it becomes the configured user before it opens the spool (privileges.h), so
// whatever it writes there stays the server's. Everything
// that came from outside is printed through util::printable (JSON through
// json_text), so no escape sequence or bare CR in a message reaches the terminal.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <variant>

#include "cli/commands.h"
#include "cli/json_output.h"
#include "config/config.h"
#include "queue/attempt.h"
#include "queue/queue_json.h"
#include "queue/spool.h"
#include "server/control_socket.h"
#include "server/privileges.h"
#include "smtp/headers.h"
#include "util/text.h"

namespace tern::cli {

namespace {

struct QueueOptions {
  std::string config = "etc/tern.toml";
  bool json = false;
  std::uint64_t id = 0;
  bool content = false;
  bool all = false;
};

using queue::envelope_json;
using queue::iso_time;

// Bytes from outside (addresses, ids, replies, headers) as text for the terminal.
std::string shown(std::string_view bytes) {
  return util::printable(bytes);
}

// A message's lines, each through printable: CR LF (or LF) ends a line, a bare
// CR or any other control character is shown as \xNN.
void print_message_lines(std::string_view text) {
  while (!text.empty()) {
    auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::printf("%s\n", shown(line).c_str());
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
}

// The spool folder as tern serve's user sees it (privileges.h).
void become_spool_user(const config::Config& config, server::Prepare prepare) {
  server::become_user(config, {{config.spool.path, "spool folder", server::FolderKind::kSpool}},
                      prepare, false);
}

std::unique_ptr<queue::Spool> open_for_reading(const QueueOptions& o) {
  auto config = config::load(o.config);
  // A shared spool is read from its database, from any node: no folder here.
  if (config.spool.backend != "postgres") become_spool_user(config, server::Prepare::kExisting);
  return queue::open_spool(config, queue::OpenMode::kReadOnly);
}

int list(const QueueOptions& o) {
  auto spool = open_for_reading(o);
  auto messages = spool->list();
  if (o.json) {
    std::printf("%s\n", json_text(queue::queue_json(messages)).c_str());
    return 0;
  }
  if (messages.empty()) {
    std::printf("The queue is empty.\n");
    return 0;
  }
  std::uint64_t total = 0;
  std::printf("%-15s %-20s %9s  %s\n", "InternalId", "Arrival (UTC)", "Size",
              "Sender / recipients");
  for (const auto& e : messages) {
    total += e.size;
    std::printf("%-15llu %-20s %9llu  %s\n", static_cast<unsigned long long>(e.id),
                iso_time(e.arrival_ms).c_str(), static_cast<unsigned long long>(e.size),
                e.sender.empty() ? "<>" : shown(e.sender).c_str());
    if (!e.held.empty()) std::printf("%47sHELD: %s\n", "", shown(e.held).c_str());
    for (const auto& r : e.recipients) {
      std::printf("%47s%s (%s%s%s)\n", "", shown(r.address).c_str(),
                  std::string(queue::state_name(r.state)).c_str(), r.last_reply.empty() ? "" : ": ",
                  shown(r.last_reply).c_str());
    }
  }
  std::printf("-- %zu message%s, %llu octets\n", messages.size(), messages.size() == 1 ? "" : "s",
              static_cast<unsigned long long>(total));
  return 0;
}

int show(const QueueOptions& o) {
  auto spool = open_for_reading(o);
  std::optional<queue::Envelope> e;
  try {
    e = spool->find(o.id);
  } catch (const std::exception& ex) {  // quarantined: shown with the reason and its content
    e = queue::unreadable_envelope(o.id, ex.what());
  }
  if (!e) {
    print_error("no message with InternalId " + std::to_string(o.id) + " in the queue");
    return 1;
  }
  auto content = spool->content(o.id).value_or("");
  if (o.json) {
    auto j = envelope_json(*e);
    j["content"] = o.content ? content : content.substr(0, smtp::scan_headers(content).header_end);
    std::printf("%s\n", json_text(j).c_str());
    return 0;
  }
  std::printf("InternalId:   %llu\n", static_cast<unsigned long long>(e->id));
  std::printf("Message-ID:   %s\n", shown(e->message_id).c_str());
  std::printf("Sender:       %s\n", e->sender.empty() ? "<>" : shown(e->sender).c_str());
  std::printf("Arrival:      %s\n", iso_time(e->arrival_ms).c_str());
  std::printf("Next attempt: %s\n", iso_time(e->next_attempt_ms).c_str());
  std::printf("Size:         %llu octets\n", static_cast<unsigned long long>(e->size));
  std::printf("Received from [%s] (%s) on listener %s%s%s\n", shown(e->client_address).c_str(),
              shown(e->client_helo).c_str(), shown(e->listener).c_str(),
              e->auth_user.empty() ? "" : ", authenticated as ", shown(e->auth_user).c_str());
  if (!e->envid.empty()) std::printf("ENVID:        %s\n", shown(e->envid).c_str());
  if (!e->held.empty()) std::printf("Held:         %s\n", shown(e->held).c_str());
  std::printf("Recipients:\n");
  for (const auto& r : e->recipients) {
    std::printf("  %s  %s, %u attempt%s%s%s%s\n", shown(r.address).c_str(),
                std::string(queue::state_name(r.state)).c_str(), r.attempts,
                r.attempts == 1 ? "" : "s", r.notify ? ", NOTIFY=" : "",
                r.notify ? smtp::notify_text(r.notify).c_str() : "",
                r.local ? ", local" : ", relay");
    if (!r.last_reply.empty()) std::printf("    last: %s\n", shown(r.last_reply).c_str());
  }
  std::string_view headers = content;
  if (!o.content) headers = headers.substr(0, smtp::scan_headers(content).header_end);
  std::printf("\n");
  print_message_lines(headers);
  return 0;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What action does to one message, added to change.
void change_for(const config::Config& config, queue::Spool& spool, const std::string& action,
                queue::Envelope e, queue::SpoolChange& change) {
  if (action == "retry") {
    e.held.clear();
    e.next_attempt_ms = now_ms();
    change.update.push_back(e);
  } else if (action == "delete") {
    change.remove.push_back(e.id);
  } else {
    queue::AttemptRecorder recorder(config, spool);
    auto result =
        recorder.fail_pending(e, spool.content(e.id).value_or(""),
                              smtp::Reply(550, "5.0.0", "Bounced by the administrator"), now_ms());
    for (auto& m : result.change.add) change.add.push_back(std::move(m));
    change.remove.push_back(e.id);
  }
}

// One message's envelope for an action; a quarantined one can only be deleted.
std::variant<queue::Envelope, std::string> target(queue::Spool& spool, const std::string& action,
                                                  std::uint64_t id) {
  std::optional<queue::Envelope> e;
  try {
    e = spool.find(id);
  } catch (const std::exception& ex) {
    if (action != "delete")
      return "error: " + std::to_string(id) + " cannot be read (" + ex.what() +
             "); it stays held: tern queue delete removes it";
    e = queue::unreadable_envelope(id, ex.what());
  }
  if (!e) return "error: no message with InternalId " + std::to_string(id) + " in the queue";
  return *e;
}

const char* done_text(const std::string& action) {
  return action == "retry"    ? "will be tried now"
         : action == "delete" ? "deleted"
                              : "returned to the sender";
}

// With no server running: the same actions, straight on the spool.
std::string act_on_spool(const config::Config& config, const std::string& action,
                         const QueueOptions& o) {
  become_spool_user(config, server::Prepare::kCreate);
  auto spool = queue::open_spool(config, queue::OpenMode::kAdmin);
  std::vector<queue::Envelope> targets;
  if (o.all) {
    targets = spool->list();
  } else {
    auto t = target(*spool, action, o.id);
    if (auto* error = std::get_if<std::string>(&t)) return *error;
    targets.push_back(std::get<queue::Envelope>(t));
  }
  queue::SpoolChange change;
  std::size_t n = 0;
  for (auto& e : targets) {
    if (action == "retry" && o.all && !e.held.empty()) continue;  // released one by one
    change_for(config, *spool, action, e, change);
    ++n;
  }
  auto r = spool->apply_and_wait(std::move(change));
  spool->close();
  if (r.status != queue::SpoolStatus::kOk) return "error: " + r.error;
  std::string what = action == "retry" ? "will be tried when tern serve starts" : done_text(action);
  return "ok: " + std::to_string(n) + " message(s) " + what + " (no server running)";
}

// The cluster's queue (SPEC §6), from any node: each message is leased to
// this command while it acts; one another node is delivering gets the action
// recorded, carried out by the node that claims it when that lease ends.
std::string act_on_shared(const config::Config& config, const std::string& action,
                          const QueueOptions& o) {
  become_spool_user(config, server::Prepare::kCreate);
  auto spool = queue::open_spool(config, queue::OpenMode::kAdmin);
  std::vector<std::uint64_t> ids;
  if (o.all) {
    for (const auto& e : spool->list())
      if (e.held.empty()) ids.push_back(e.id);  // a held message is released one by one
  } else {
    ids.push_back(o.id);
  }
  std::size_t done = 0, later = 0;
  std::string error;
  for (auto id : ids) {
    auto taken = spool->take(id, action);
    if (taken == queue::TakeResult::kLeased) {
      ++later;
      continue;
    }
    if (taken == queue::TakeResult::kMissing) {
      if (!o.all)
        error = "error: no message with InternalId " + std::to_string(id) + " in the queue";
      continue;
    }
    auto t = target(*spool, action, id);
    if (auto* e = std::get_if<std::string>(&t)) {
      error = *e;
      spool->release(id);
      continue;
    }
    queue::SpoolChange change;
    change_for(config, *spool, action, std::get<queue::Envelope>(t), change);
    auto r = spool->apply_and_wait(std::move(change));
    spool->release(id);
    if (r.status != queue::SpoolStatus::kOk) {
      error = "error: " + r.error;
      continue;
    }
    ++done;
  }
  spool->close();
  if (!error.empty()) return error;
  std::string out = "ok: " + std::to_string(done) + " message(s) " + done_text(action);
  if (later)
    out += "; " + std::to_string(later) +
           " being delivered by a node of the cluster: done when that attempt ends";
  return out;
}

int act(const QueueOptions& o, const std::string& action) {
  auto config = config::load(o.config);
  std::string line = action + " " + (o.all ? std::string("all") : std::to_string(o.id));
  std::optional<std::string> answer;
  if (config.spool.backend == "postgres") {
    answer = act_on_shared(config, action, o);
  } else {
    answer = server::control_request(config.spool.path, config.user, line);
    if (!answer) answer = act_on_spool(config, action, o);
  }
  bool ok = answer->rfind("ok: ", 0) == 0;
  if (ok) {
    std::printf("%s\n", answer->c_str() + 4);
  } else {
    print_error(answer->rfind("error: ", 0) == 0 ? answer->substr(7) : *answer);
  }
  return ok ? 0 : 1;
}

}  // namespace

void add_queue(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<QueueOptions>();
  auto* cmd = app.add_subcommand("queue", "Inspect and act on the queue");
  cmd->require_subcommand(1);
  auto common = [o](CLI::App* sub) {
    sub->add_option("-c,--config", o->config, "configuration file")->capture_default_str();
    sub->add_flag("--json", o->json, "machine-readable output");
  };
  auto* list_cmd = cmd->add_subcommand("list", "List queued messages");
  common(list_cmd);
  list_cmd->callback([o, &exit_code] { exit_code = run_guarded([&] { return list(*o); }); });

  auto* show_cmd =
      cmd->add_subcommand("show", "Show one message: envelope, recipients' states, headers");
  common(show_cmd);
  show_cmd->add_option("id", o->id, "InternalId")->required();
  show_cmd->add_flag("--content", o->content, "print the whole message, not only its headers");
  show_cmd->callback([o, &exit_code] { exit_code = run_guarded([&] { return show(*o); }); });

  struct Action {
    const char* name;
    const char* help;
  };
  for (auto a : {Action{"retry", "Try a message (or --all) again now"},
                 Action{"delete", "Delete a message without a notice"},
                 Action{"bounce", "Return a message to its sender with a failure notice"}}) {
    auto* sub = cmd->add_subcommand(a.name, a.help);
    sub->add_option("-c,--config", o->config, "configuration file")->capture_default_str();
    auto* id = sub->add_option("id", o->id, "InternalId");
    if (std::string(a.name) == "retry") {
      auto* all = sub->add_flag("--all", o->all, "every queued message");
      id->excludes(all);
      sub->callback([o, &exit_code, name = std::string(a.name)] {
        if (!o->all && o->id == 0) {
          print_error("tern queue retry needs an InternalId or --all");
          exit_code = 2;
          return;
        }
        exit_code = run_guarded([&] { return act(*o, name); });
      });
    } else {
      id->required();
      sub->callback([o, &exit_code, name = std::string(a.name)] {
        exit_code = run_guarded([&] { return act(*o, name); });
      });
    }
  }
}

}  // namespace tern::cli
