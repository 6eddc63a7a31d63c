#include "tls/context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

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

namespace {
std::string name_text(X509_NAME* name) {
  if (!name) return {};
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

std::string time_text(const ASN1_TIME* t) {
  BIO* bio = BIO_new(BIO_s_mem());
  ASN1_TIME_print(bio, t);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}
}  // namespace

PeerCertificate peer_certificate(SSL* ssl) {
  PeerCertificate p;
  if (!ssl) return p;
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (!cert) return p;
  p.present = true;
  p.subject = name_text(X509_get_subject_name(cert));
  p.issuer = name_text(X509_get_issuer_name(cert));
  p.not_before = time_text(X509_get0_notBefore(cert));
  p.not_after = time_text(X509_get0_notAfter(cert));
  long result = SSL_get_verify_result(ssl);
  p.verified = result == X509_V_OK;
  p.verify_result = p.verified ? "ok" : X509_verify_cert_error_string(result);
  X509_free(cert);
  return p;
}

void expect_host(asio::ssl::context& context, const std::string& host) {
  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(context.native_handle());
  X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
}

}  // namespace tern::tls
