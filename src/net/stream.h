// A TCP connection that may switch to TLS part way (STARTTLS, RFC 3207) or
// start with it (implicit TLS, RFC 8314). Server and client sessions read and
// write through it without caring which it is.
#pragma once

#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>
#include <memory>
#include <string>
#include <tuple>

#include "net/awaitable.h"

namespace tern::net {

class Stream {
 public:
  explicit Stream(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {}

  awaitable<std::tuple<std::error_code, std::size_t>> read_some(asio::mutable_buffer buffer);
  awaitable<std::tuple<std::error_code, std::size_t>> write(asio::const_buffer buffer);
  // TLS handshake as server or client; sni is the name the client asks for.
  awaitable<std::error_code> handshake(asio::ssl::context& context, bool server,
                                       const std::string& sni = {});
  awaitable<void> shutdown_tls();

  void cancel();
  void close();
  bool tls() const { return tls_ != nullptr; }
  SSL* ssl() const { return tls_ ? tls_->native_handle() : nullptr; }
  asio::ip::tcp::socket& socket() { return socket_; }

 private:
  asio::ip::tcp::socket socket_;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls_;
};

// "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384" for logs and Received headers.
std::string tls_description(SSL* ssl);

}  // namespace tern::net
