// A connection tern does not take (a limit of SPEC §2 reached, or shutting
// down) is told why with one 421 reply (SPEC §3) and closed, and the protocol
// log says so. It runs as its own small coroutine with a deadline on the loop
// that accepted it, so the accept loop never waits on a client that does not read.
#pragma once

#include <asio/ip/tcp.hpp>
#include <string>

#include "log/protocol_log.h"
#include "net/awaitable.h"
#include "smtp/reply.h"

namespace tern::server {

net::awaitable<void> refuse(asio::ip::tcp::socket socket, smtp::Reply reply, std::string reason,
                            log::ProtocolLog::Session log);

}  // namespace tern::server
