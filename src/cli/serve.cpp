// `tern serve [--config FILE]`: runs the MTA in the foreground (SPEC §1).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "config/config.h"
#include "server/server.h"

namespace tern::cli {

void print_error(const std::string& message) {
  std::fprintf(stderr, "tern: %s\n", message.c_str());
}

void add_serve(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("serve", "Run the mail server in the foreground until SIGTERM");
  auto config_path = std::make_shared<std::string>("etc/tern.toml");
  cmd->add_option("-c,--config", *config_path, "configuration file")->capture_default_str();
  cmd->callback([config_path, &exit_code] {
    try {
      server::Server server(config::load(*config_path));
      exit_code = server.run();
    } catch (const config::ConfigError& e) {
      print_error(std::string("bad configuration: ") + e.what());
      exit_code = 2;
    } catch (const std::exception& e) {
      print_error(e.what());
      exit_code = 1;
    }
  });
}

}  // namespace tern::cli
