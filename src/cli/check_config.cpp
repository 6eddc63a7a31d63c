// See check_config.h.
#include "cli/check_config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <ctime>
#include <memory>
#include <string>

#include "server/message_auth.h"
#include "server/privileges.h"
#include "tls/context.h"
#include "util/text.h"

namespace tern::cli {

namespace {

struct Findings {
  int problems = 0;
  int warnings = 0;
  void problem(const std::string& text) {
    ++problems;
    std::fprintf(stderr, "tern: problem: %s\n", util::printable(text).c_str());
  }
  void warning(const std::string& text) {
    ++warnings;
    std::fprintf(stderr, "tern: warning: %s\n", util::printable(text).c_str());
  }
};

// Days until the first certificate of a PEM file expires (negative: expired),
// or nullopt when it cannot be read (server_context reports why).
std::optional<int> days_left(const std::filesystem::path& file) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(file.c_str(), "r"), std::fclose);
  if (!f) return std::nullopt;
  std::unique_ptr<X509, void (*)(X509*)> cert(PEM_read_X509(f.get(), nullptr, nullptr, nullptr),
                                              X509_free);
  if (!cert) return std::nullopt;
  int days = 0, seconds = 0;
  if (ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert.get())) != 1)
    return std::nullopt;
  return days;
}

void check_listeners(const config::Config& config, Findings& out) {
  for (const auto& l : config.listeners) {
    const std::string name = "listener " + l.name;
    if (l.tls != config::TlsMode::kNone) {
      try {
        tls::server_context(l.certificate, l.private_key);
        auto days = days_left(l.certificate);
        if (days && *days < 0)
          out.problem(name + ": the certificate " + l.certificate.string() + " has expired");
        else if (days && *days < 14)
          out.warning(name + ": the certificate " + l.certificate.string() + " expires in " +
                      std::to_string(*days) + " days");
      } catch (const std::exception& e) {
        out.problem(name + ": " + e.what());
      }
    }
    if (l.auth != config::AuthMode::kNone && l.tls == config::TlsMode::kNone)
      out.warning(name + ": auth without TLS: no client can authenticate (AUTH is offered only " +
                  "after STARTTLS" + (l.allow_plaintext_auth ? ", or in plain text here)" : ")"));
    if (l.allow_plaintext_auth)
      out.warning(name + ": allow_plaintext_auth sends passwords in the clear");
  }
}

void check_policy(const config::Config& config, Findings& out) {
  for (const auto& n : config.relay_networks)
    if (n.prefix == 0)
      out.warning("[relay] networks holds a /0: every client may relay (an open relay)");
  for (const auto& d : config.accepted_domains) {
    bool has_mailbox = false;
    for (const auto& m : config.mailboxes)
      has_mailbox = has_mailbox || util::iequals(m.address.substr(m.address.rfind('@') + 1), d);
    bool routed = config.find_route(d) != nullptr;
    if (!has_mailbox && !routed)
      out.warning("[domains] accepted: " + d + " has no [[mailbox]]: every recipient there gets " +
                  "550 5.1.1");
  }
}

void check_folders(const config::Config& config, Findings& out) {
  for (const auto& f : server::serve_folders(config)) {
    struct stat st {};
    if (::lstat(f.path.c_str(), &st) != 0) continue;  // created at start
    const bool is_link = S_ISLNK(st.st_mode);
    if (f.strict() && is_link) {
      out.problem(f.what + " " + f.path.string() + " is a symbolic link: tern refuses it");
    } else if (is_link) {
      out.warning(f.what + " " + f.path.string() + " is a symbolic link: delivery to it " +
                  "answers 451");
    } else if (!S_ISDIR(st.st_mode)) {
      out.problem(f.what + " " + f.path.string() + " is not a folder");
    } else if (f.strict() && (st.st_mode & 077) != 0) {
      out.warning(f.what + " " + f.path.string() + " is " + server::describe_mode(f.path) +
                  ": tern makes it 0700 at start");
    }
  }
}

// sendmail reads the configuration as the submitting user, so an installed
// tern.toml is often readable by every local user: it must hold no secret.
void check_secrets(const config::Config& config, Findings& out) {
  struct stat st {};
  if (::stat(config.file.c_str(), &st) != 0 || (st.st_mode & S_IROTH) == 0) return;
  const std::string where = config.file.string() + " is readable by every local user and holds ";
  for (const auto& m : config.mailboxes)
    if (!m.password.empty()) {
      out.warning(where + "password hashes ([[mailbox]] " + m.address +
                  "): chmod 0640 it (sendmail then serves root and tern's group only)");
      break;
    }
  if (config.spool.postgres.find("password") != std::string::npos)
    out.warning(where + "the database password ([spool] postgres): keep it in a libpq " +
                "password file (passfile=, ~/.pgpass) instead");
}

}  // namespace

int check_config(const config::Config& config) {
  Findings out;
  check_listeners(config, out);
  try {
    server::DkimKeyring::load(config);
  } catch (const std::exception& e) {
    out.problem(e.what());
  }
  if (::geteuid() == 0) {
    try {
      server::lookup_account(config.user);
    } catch (const std::exception& e) {
      out.problem(std::string("user: ") + e.what());
    }
  }
  check_folders(config, out);
  check_policy(config, out);
  check_secrets(config, out);
  std::fprintf(stderr, "tern: %s: %d problem%s, %d warning%s\n", config.file.c_str(), out.problems,
               out.problems == 1 ? "" : "s", out.warnings, out.warnings == 1 ? "" : "s");
  return out.problems == 0 ? 0 : 1;
}

}  // namespace tern::cli
