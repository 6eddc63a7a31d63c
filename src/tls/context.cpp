#include "tls/context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <stdexcept>

namespace tern::tls {

namespace {
// Mozilla's "intermediate" profile: TLS 1.2 ciphers with forward secrecy and
// AEAD; TLS 1.3 suites are OpenSSL's defaults.
constexpr const char* kCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
}  // namespace

std::string last_error() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

std::shared_ptr<asio::ssl::context> server_context(const std::filesystem::path& certificate,
                                                   const std::filesystem::path& private_key) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(
      native, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);  // idle TLS sessions keep no buffers
  SSL_CTX_set_cipher_list(native, kCiphers);
  if (SSL_CTX_use_certificate_chain_file(native, certificate.c_str()) != 1)
    throw std::runtime_error("cannot load certificate " + certificate.string() + ": " +
                             last_error());
  if (SSL_CTX_use_PrivateKey_file(native, private_key.c_str(), SSL_FILETYPE_PEM) != 1)
    throw std::runtime_error("cannot load private key " + private_key.string() + ": " +
                             last_error());
  if (SSL_CTX_check_private_key(native) != 1)
    throw std::runtime_error("private key " + private_key.string() +
                             " does not match certificate " + certificate.string());
  return ctx;
}

std::shared_ptr<asio::ssl::context> client_context(bool verify) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_default_verify_paths(native);
  SSL_CTX_set_verify(native, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  return ctx;
}

}  // namespace tern::tls
