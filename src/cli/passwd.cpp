// `tern passwd [--scheme S]`: prints a crypt(3) hash for a password read
// without echo (twice, when a person types it), for the password key of a
// [[mailbox]]. From a pipe it reads one line, for scripts.
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <openssl/crypto.h>

#include "cli/commands.h"
#include "server/auth.h"

namespace tern::cli {

namespace {

std::string read_secret(const char* prompt, bool terminal) {
  if (terminal) std::fprintf(stderr, "%s", prompt);
  termios old {};
  if (terminal) {
    tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  std::getline(std::cin, line);
  if (terminal) {
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::fprintf(stderr, "\n");
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace

void add_passwd(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("passwd", "Print a password hash for a [[mailbox]] password key");
  auto scheme = std::make_shared<std::string>("SHA512-CRYPT");
  cmd->add_option("--scheme", *scheme, "SHA512-CRYPT, BLF-CRYPT (bcrypt) or YESCRYPT")
      ->capture_default_str()
      ->check(CLI::IsMember({"SHA512-CRYPT", "BLF-CRYPT", "YESCRYPT"}));
  cmd->callback([scheme, &exit_code] {
    bool terminal = isatty(STDIN_FILENO);
    std::string password = read_secret("Password: ", terminal);
    if (terminal) {
      std::string again = read_secret("Again: ", terminal);
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
