// `tern dkim keygen DOMAIN SELECTOR [--algorithm rsa|ed25519] [--out PATH]`
// (SPEC §1): writes a new DKIM signing key (2048-bit RSA or Ed25519, PEM,
// mode 0600, never over an existing file) and prints the TXT record to
// publish, split into character-strings of at most 255 octets (RFC 1035 §3.3.14).
// `tern dkim verify FILE [--key NAME=RECORD]… [--dns-server IP[:PORT]]`: the
// server's DKIM verification of one message, each signature's result on a
// line; --key answers a key lookup without DNS (a record not yet published).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>

#include "auth/dkim_sign.h"
#include "auth/dkim_verify.h"
#include "cli/commands.h"
#include "dns/resolver_cares.h"
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

struct VerifyOptions {
  std::string file;
  std::vector<std::string> keys;  // NAME=RECORD
  std::vector<std::string> dns_servers;
  std::int64_t now = 0;
  bool no_dns = false;
};

// Key records given on the command line first, DNS for the others.
class GivenKeys final : public dns::Resolver {
 public:
  GivenKeys(std::map<std::string, std::string> given, dns::Resolver& dns, bool no_dns)
      : given_(std::move(given)), dns_(dns), no_dns_(no_dns) {}
  net::awaitable<dns::MxResult> mx(std::string domain) override {
    return dns_.mx(std::move(domain));
  }
  net::awaitable<dns::AddressResult> addresses(std::string host) override {
    return dns_.addresses(std::move(host));
  }
  net::awaitable<dns::TxtResult> txt(std::string name) override {
    auto it = given_.find(util::to_lower(name));
    if (it == given_.end() && no_dns_)
      co_return dns::TxtResult::failure(dns::DnsError::kNxDomain, "TXT " + name + ": not given");
    if (it == given_.end()) {
      dns::TxtResult answer = co_await dns_.txt(name);
      co_return answer;
    }
    dns::TxtResult r;
    r.records.push_back({it->second, 0});
    co_return r;
  }

 private:
  std::map<std::string, std::string> given_;
  dns::Resolver& dns_;
  bool no_dns_;
};

int verify(const VerifyOptions& o) {
  std::ifstream in(o.file, std::ios::binary);
  if (!in) {
    print_error(o.file + ": cannot be read");
    return 2;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string message = ss.str();
  // Line ends as on the wire: a file with LF alone is read as CR LF.
  std::string wire;
  wire.reserve(message.size() + message.size() / 32);
  for (std::size_t i = 0; i < message.size(); ++i) {
    if (message[i] == '\n' && (i == 0 || message[i - 1] != '\r')) wire += '\r';
    wire += message[i];
  }
  std::size_t end = wire.starts_with("\r\n") ? 0 : wire.find("\r\n\r\n");
  std::string_view headers = wire, body;
  if (end != std::string::npos) {
    headers = std::string_view(wire).substr(0, end == 0 ? 0 : end + 2);
    body = std::string_view(wire).substr(end == 0 ? 2 : end + 4);
  }
  std::map<std::string, std::string> given;
  for (const auto& k : o.keys) {
    std::size_t eq = k.find('=');
    if (eq == std::string::npos) {
      print_error("--key wants NAME=RECORD, e.g. s1._domainkey.fabrikam.test=\"v=DKIM1; p=…\"");
      return 2;
    }
    given[util::to_lower(k.substr(0, eq))] = k.substr(eq + 1);
  }
  auth::DkimVerifier verifier(o.now ? o.now : static_cast<std::int64_t>(std::time(nullptr)));
  verifier.headers(headers);
  verifier.body(body);
  asio::io_context io;
  dns::CaresOptions dns_options;
  dns_options.servers = o.dns_servers;
  std::vector<auth::DkimResult> results;
  {
    dns::CaresResolver dns(io.get_executor(), dns_options);
    GivenKeys resolver(std::move(given), dns, o.no_dns);
    asio::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
          std::vector<auth::DkimResult> r = co_await verifier.finish(resolver);
          results = std::move(r);
        },
        asio::detached);
    io.run();
  }
  if (results.empty()) {
    std::printf("dkim=none (no signature)\n");
    return 1;
  }
  bool pass = false;
  for (const auto& r : results) {
    pass = pass || r.result == "pass";
    std::printf("dkim=%s header.d=%s header.s=%s header.b=%s%s%s%s\n", r.result.c_str(),
                r.domain.c_str(), r.selector.c_str(), r.b.c_str(), r.reason.empty() ? "" : " (",
                util::printable(r.reason, 200).c_str(), r.reason.empty() ? "" : ")");
  }
  return pass ? 0 : 1;
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

  auto* ver = cmd->add_subcommand(
      "verify",
      "Verify the DKIM signatures of a message file as tern serve does (exit 0: one passes)");
  auto v = std::make_shared<VerifyOptions>();
  ver->add_option("file", v->file, "the message (RFC 5322; LF or CR LF line ends)")->required();
  ver->add_option(
      "--key", v->keys,
      "NAME=RECORD: the TXT record of NAME (s._domainkey.d) instead of DNS; repeatable");
  ver->add_option("--dns-server", v->dns_servers,
                  "ask this IP[:PORT] instead of the system resolver");
  ver->add_flag("--no-dns", v->no_dns, "ask no DNS: a key not given with --key does not exist");
  ver->add_option("--now", v->now, "the verification time, in seconds since 1970 (default: now)");
  ver->callback([v, &exit_code] { exit_code = run_guarded([&] { return verify(*v); }); });
}

}  // namespace tern::cli
