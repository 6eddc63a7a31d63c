#include "net/stream.h"

#include <asio/read.hpp>
#include <asio/write.hpp>

namespace tern::net {

awaitable<std::tuple<std::error_code, std::size_t>> Stream::read_some(asio::mutable_buffer buffer) {
  if (tls_) co_return co_await tls_->async_read_some(buffer, use_tuple);
  co_return co_await socket_.async_read_some(buffer, use_tuple);
}

awaitable<std::tuple<std::error_code, std::size_t>> Stream::write(asio::const_buffer buffer) {
  if (tls_) co_return co_await asio::async_write(*tls_, buffer, use_tuple);
  co_return co_await asio::async_write(socket_, buffer, use_tuple);
}

awaitable<std::error_code> Stream::handshake(asio::ssl::context& context, bool server,
                                             const std::string& sni) {
  tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(socket_, context);
  if (!server && !sni.empty()) SSL_set_tlsext_host_name(tls_->native_handle(), sni.c_str());
  auto [ec] = co_await tls_->async_handshake(
      server ? asio::ssl::stream_base::server : asio::ssl::stream_base::client, use_tuple);
  co_return ec;
}

awaitable<void> Stream::shutdown_tls() {
  if (tls_) co_await tls_->async_shutdown(use_tuple);
}

void Stream::cancel() {
  std::error_code ignored;
  socket_.cancel(ignored);
}

void Stream::close() {
  std::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

std::string tls_description(SSL* ssl) {
  if (!ssl) return {};
  std::string out = SSL_get_version(ssl);
  if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl)) {
    out += " with cipher ";
    out += SSL_CIPHER_get_name(c);
  }
  return out;
}

}  // namespace tern::net
