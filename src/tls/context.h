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

// The last OpenSSL error as text.
std::string last_error();

}  // namespace tern::tls
