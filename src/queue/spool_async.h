// Spool::apply for coroutines: suspends until the change is durable and
// resumes on the caller's own executor (the spool calls back on its thread).
#pragma once

#include <asio/async_result.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <memory>

#include "net/awaitable.h"
#include "queue/spool.h"

namespace tern::queue {

inline net::awaitable<CommitResult> apply_async(Spool& spool, SpoolChange change) {
  auto executor = co_await asio::this_coro::executor;
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(CommitResult)>(
      [&spool, executor](auto handler, SpoolChange c) {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        auto work = std::make_shared<asio::executor_work_guard<asio::any_io_executor>>(executor);
        spool.apply(std::move(c), [shared, work](CommitResult result) {
          asio::post(work->get_executor(), [shared, result = std::move(result)]() mutable {
            (*shared)(std::move(result));
          });
        });
      },
      asio::use_awaitable, std::move(change));
}

}  // namespace tern::queue
