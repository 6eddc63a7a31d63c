// `tern dkim keygen DOMAIN SELECTOR [--algorithm rsa|ed25519] [--out PATH]`
// (SPEC §1): writes a new DKIM signing key (2048-bit RSA or Ed25519, PEM,
// mode 0600, never over an existing file) and prints the TXT record to
// publish, split into character-strings of at most 255 octets (RFC 1035 §3.3.14).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "auth/dkim_sign.h"
#include "cli/commands.h"
#include "util/text.h"

namespace tern::cli {

namespace {

struct KeygenOptions {
  std::string domain;
  std::string selector;
  std::string algorithm = "rsa";
  std::string out;
};

bool valid_label_list(std::string_view s) {
  if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.') return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.' || c == '_'))
      return false;
  return s.find("..") == std::string_view::npos;
}

// The record as a zone file line, its text cut into 255-octet strings.
std::string zone_line(const std::string& name, const std::string& text) {
  std::string line = name + " IN TXT (";
  for (std::size_t i = 0; i < text.size(); i += 255) line += " \"" + text.substr(i, 255) + "\"";
  return line + " )";
}

int keygen(const KeygenOptions& o) {
  if (!valid_label_list(o.domain)) {
    print_error("invalid domain \"" + util::printable(o.domain, 100) + "\"");
    return 2;
  }
  if (!valid_label_list(o.selector)) {
    print_error("invalid selector \"" + util::printable(o.selector, 100) + "\"");
    return 2;
  }
  std::string domain = util::to_lower(o.domain);
  std::filesystem::path path =
      o.out.empty() ? std::filesystem::path(".") : std::filesystem::path(o.out);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) path /= domain + "." + o.selector + ".pem";
  auto algorithm = o.algorithm == "ed25519" ? auth::DkimAlgorithm::kEd25519Sha256
                                            : auth::DkimAlgorithm::kRsaSha256;
  auto key = auth::DkimPrivateKey::generate(algorithm);
  std::string pem = key->private_pem();
  // O_EXCL: an existing key (perhaps already published) is never replaced.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    int err = errno;
    print_error(
        path.string() + ": " +
        (err == EEXIST ? std::string("already exists; not overwritten") : std::strerror(err)));
    return 1;
  }
  bool ok = ::fchmod(fd, 0600) == 0 &&
            ::write(fd, pem.data(), pem.size()) == static_cast<ssize_t>(pem.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    print_error(path.string() + ": cannot write the key");
    ::unlink(path.c_str());
    return 1;
  }
  std::printf("# private key written to %s (mode 0600); in the configuration:\n", path.c_str());
  std::printf(
      "#   [[dkim]]\n#   domain = \"%s\"\n#   selector = \"%s\"\n#   private_key = \"%s\"\n",
      domain.c_str(), o.selector.c_str(), path.c_str());
  std::printf("# publish this TXT record in DNS:\n");
  std::printf("%s\n",
              zone_line(o.selector + "._domainkey." + domain + ".", key->txt_record()).c_str());
  return 0;
}

}  // namespace

void add_dkim(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("dkim", "DKIM signing keys");
  cmd->require_subcommand(1);
  auto* gen = cmd->add_subcommand(
      "keygen", "Write a new DKIM signing key (0600) and print the DNS TXT record to publish");
  auto o = std::make_shared<KeygenOptions>();
  gen->add_option("domain,--domain", o->domain, "the signing domain (d=), e.g. fabrikam.test")
      ->required();
  gen->add_option("selector,--selector", o->selector, "the selector (s=), e.g. s1")->required();
  gen->add_option("--algorithm,--type", o->algorithm,
                  "rsa (rsa-sha256, 2048 bits) or ed25519 (ed25519-sha256, RFC 8463)")
      ->capture_default_str()
      ->check(CLI::IsMember({"rsa", "ed25519"}));
  gen->add_option("--out", o->out,
                  "the key file to write, or a folder for DOMAIN.SELECTOR.pem (default: the "
                  "current folder)");
  gen->callback([o, &exit_code] { exit_code = run_guarded([&] { return keygen(*o); }); });
}

}  // namespace tern::cli
