// `tern passwd [--scheme S]`: prints a crypt(3) hash for a password read
// without echo (twice, when a person types it), for the password key of a
// [[mailbox]]. From a pipe it reads one line, for scripts.
#include <unistd.h>

#include <openssl/crypto.h>
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/terminal.h"
#include "server/auth.h"

namespace tern::cli {

void add_passwd(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("passwd", "Print a password hash for a [[mailbox]] password key");
  auto scheme = std::make_shared<std::string>("SHA512-CRYPT");
  cmd->add_option("--scheme", *scheme, "SHA512-CRYPT, BLF-CRYPT (bcrypt) or YESCRYPT")
      ->capture_default_str()
      ->check(CLI::IsMember({"SHA512-CRYPT", "BLF-CRYPT", "YESCRYPT"}));
  cmd->callback([scheme, &exit_code] {
    bool terminal = isatty(STDIN_FILENO);
    std::string password = read_secret("Password: ");
    if (terminal) {
      std::string again = read_secret("Again: ");
      bool same = again == password;
      OPENSSL_cleanse(again.data(), again.size());
      if (!same) {
        print_error("the passwords differ");
        exit_code = 1;
        return;
      }
    }
    if (password.empty()) {
      print_error("an empty password is not allowed");
      exit_code = 1;
      return;
    }
    std::string hash = server::hash_password(password, *scheme);
    OPENSSL_cleanse(password.data(), password.size());
    if (hash.empty()) {
      print_error("cannot hash with " + *scheme);
      exit_code = 1;
      return;
    }
    std::printf("%s\n", hash.c_str());
    exit_code = 0;
  });
}

}  // namespace tern::cli
