// The coroutine vocabulary shared by every asynchronous part of tern: Asio
// awaitables whose operations return (error_code, ...) tuples instead of
// throwing, because a peer closing a socket is routine, not exceptional.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>

namespace tern::net {

template <typename T = void>
using awaitable = asio::awaitable<T>;

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

}  // namespace tern::net
