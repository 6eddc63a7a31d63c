// `tern serve [--config FILE] [--check-config]`: runs the MTA in the
// foreground (SPEC §1), or only checks its configuration (check_config.h).
// Started as root it binds, reads its keys, prepares its folders and becomes
// config.user for good before the spool is opened (server/privileges.h).
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/check_config.h"
#include "cli/commands.h"
#include "config/config.h"
#include "server/privileges.h"
#include "server/server.h"
#include "util/text.h"

namespace tern::cli {

void print_error(const std::string& message) {
  // One line, whatever bytes an error quotes (a peer's reply, a file name).
  std::fprintf(stderr, "tern: %s\n", util::printable(message).c_str());
}

int run_guarded(const std::function<int()>& body) {
  try {
    return body();
  } catch (const config::ConfigError& e) {
    print_error(std::string("bad configuration: ") + e.what());
    return 2;
  } catch (const std::exception& e) {
    print_error(e.what());
    return 1;
  }
}

void add_serve(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("serve", "Run the mail server in the foreground until SIGTERM");
  auto config_path = std::make_shared<std::string>("etc/tern.toml");
  cmd->add_option("-c,--config", *config_path, "configuration file")->capture_default_str();
  auto check_only = std::make_shared<bool>(false);
  cmd->add_flag("--check-config", *check_only,
                "check the configuration, its certificates, keys and folders, then exit");
  cmd->callback([config_path, check_only, &exit_code] {
    if (*check_only) {
      exit_code = run_guarded([&] { return check_config(config::load(*config_path)); });
      return;
    }
    // Every file and folder tern creates is its own alone: 0600 and 0700
    // (RocksDB files, logs, Maildirs, the control socket).
    ::umask(077);
    exit_code = run_guarded([&] {
      auto config = config::load(*config_path);
      auto folders = server::serve_folders(config);
      server::Server server(
          config, [&] { server::become_user(config, folders, server::Prepare::kCreate, true); });
      return server.run();
    });
  });
}

}  // namespace tern::cli
