// `tern trail ID|MESSAGE-ID|ADDRESS [--json]` (SPEC §1): every event of a
// message's life per recipient, oldest first, from the trail kept in the spool
// (queue/trail.h). Works whether the server runs or not: the spool is opened
// read-only, as `tern queue list` does. Text from outside goes through
// util::printable, so no escape sequence reaches the terminal.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <set>

#include "cli/commands.h"
#include "config/config.h"
#include "queue/spool.h"
#include "queue/trail.h"
#include "server/privileges.h"
#include "util/text.h"

namespace tern::cli {

namespace {

struct TrailOptions {
  std::string config = "etc/tern.toml";
  std::string what;
  bool json = false;
};

std::string shown(std::string_view bytes) {
  return util::printable(bytes);
}

const char* kind_text(queue::TrailQuery::Kind kind) {
  switch (kind) {
    case queue::TrailQuery::Kind::kId:
      return "InternalId";
    case queue::TrailQuery::Kind::kMessageId:
      return "Message-ID";
    case queue::TrailQuery::Kind::kAddress:
      return "address";
  }
  return "";
}

int run(const TrailOptions& o) {
  auto config = config::load(o.config);
  if (config.log.trail_ms == 0) {
    print_error("the message trail is off in " + config.file.string() + " ([log] trail = \"0\")");
    return 1;
  }
  auto query = queue::trail_query(o.what);
  if (query.value.empty()) {
    print_error("tern trail needs an InternalId, a Message-ID or an address");
    return 2;
  }
  // A shared spool is read from its database, from any node: no folder here.
  if (config.spool.backend != "postgres")
    server::become_user(config, {{config.spool.path, "spool folder", server::FolderKind::kSpool}},
                        server::Prepare::kExisting, false);
  auto spool = queue::open_spool(config, queue::OpenMode::kReadOnly);
  auto* trail = spool->trail();
  if (!trail) {
    print_error("this spool keeps no message trail");
    return 1;
  }
  auto events = trail->find(query);
  spool->close();
  if (events.empty()) {
    print_error(std::string("nothing in the trail for ") + kind_text(query.kind) + " " +
                shown(query.value));
    return 1;
  }
  if (o.json) {
    std::printf("%s\n", queue::trail_json(events).c_str());
    return 0;
  }
  std::set<std::uint64_t> messages;
  for (const auto& e : events) messages.insert(e.id);
  bool many = messages.size() > 1;
  std::printf("%-24s %s%-8s %-30s %-20s %s\n", "Time (UTC)", many ? "InternalId      " : "",
              "Event", "Recipient", "Remote host", "Reply");
  for (const auto& e : events) {
    char id[24] = "";
    if (many) std::snprintf(id, sizeof id, "%-15llu ", static_cast<unsigned long long>(e.id));
    std::printf("%-24s %s%-8s %-30s %-20s %s\n", queue::trail_time(e.time_ms).c_str(), id,
                shown(e.event).c_str(), shown(e.recipient).c_str(), shown(e.remote_host).c_str(),
                shown(e.reply).c_str());
  }
  const auto& first = events.front();
  if (many)
    std::printf("-- %zu event(s) of %zu messages\n", events.size(), messages.size());
  else
    std::printf("-- %zu event(s) of InternalId %llu, Message-ID %s, from %s\n", events.size(),
                static_cast<unsigned long long>(first.id), shown(first.message_id).c_str(),
                first.sender.empty() ? "<>" : shown(first.sender).c_str());
  return 0;
}

}  // namespace

void add_trail(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<TrailOptions>();
  auto* cmd = app.add_subcommand(
      "trail", "Every event of a message per recipient, oldest first (message tracking)");
  cmd->add_option("what", o->what,
                  "an InternalId (digits), a Message-ID (<...>) or an address (sender or "
                  "recipient)")
      ->required();
  cmd->add_option("-c,--config", o->config, "configuration file")->capture_default_str();
  cmd->add_flag("--json", o->json, "machine-readable output");
  cmd->callback([o, &exit_code] { exit_code = run_guarded([&] { return run(*o); }); });
}

}  // namespace tern::cli
