// OpenSSL contexts for tern: a server context per TLS listener (certificate
// chain and key from PEM files, TLS 1.2 or newer, forward-secret AEAD ciphers)
// and the client context of outbound delivery and the tools. Loading errors
// are thrown as std::runtime_error naming the file and OpenSSL's reason.
#pragma once

#include <asio/ssl/context.hpp>
#include <filesystem>
#include <memory>
#include <string>

namespace tern::tls {

std::shared_ptr<asio::ssl::context> server_context(const std::filesystem::path& certificate,
                                                   const std::filesystem::path& private_key);
// verify: check the peer's chain against the system's trust store.
std::shared_ptr<asio::ssl::context> client_context(bool verify);

// What a client saw of the server's certificate after a handshake.
struct PeerCertificate {
  bool present = false;
  std::string subject, issuer, not_before, not_after;
  bool verified = false;      // chain and name check passed
  std::string verify_result;  // "ok" or OpenSSL's reason
};
// verify_host: the name the certificate must match (set before the handshake
// with expect_host()).
PeerCertificate peer_certificate(SSL* ssl);
// Makes the context check that the peer's certificate names host (the result
// is reported by peer_certificate(); with verify=false the handshake goes on).
void expect_host(asio::ssl::context& context, const std::string& host);

// The last OpenSSL error as text.
std::string last_error();

}  // namespace tern::tls
