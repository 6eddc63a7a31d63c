// c-ares on an Asio event loop; see resolver_cares.h. c-ares reports which
// sockets it wants watched through ARES_OPT_SOCK_STATE_CB; each gets a
// stream_descriptor whose waits call ares_process_fd, and a steady_timer set
// from ares_timeout() drives retransmissions and timeouts. c-ares owns the
// sockets: descriptors are release()d, never closed, when it lets go of one.
#include "dns/resolver_cares.h"

#include <ares.h>
#include <arpa/inet.h>
#include <poll.h>

#include <asio/executor_work_guard.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "config/config.h"
#include "dns/cares_answer.h"

namespace tern::dns {

namespace {

constexpr int kClassIn = 1;
constexpr int kTypeA = 1, kTypeMx = 15, kTypeTxt = 16, kTypeAaaa = 28;
constexpr int kMaxReadsPerWake = 64;  // then yield to other work on the loop

struct Question {
  std::string name;
  int type;
};

void init_library() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (int status = ares_library_init(ARES_LIB_INIT_ALL); status != ARES_SUCCESS) {
      throw std::runtime_error(std::string("cannot initialise c-ares: ") + ares_strerror(status));
    }
  });
}

bool readable_now(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP)) != 0;
}

// The questions of one ask(), answered together: the handler runs (posted to
// its executor, never inside a c-ares call) when the last answer is in.
template <typename Handler>
struct Batch {
  struct Slot {
    Batch* batch;
    std::size_t index;
  };
  Handler handler;
  asio::executor_work_guard<asio::any_io_executor> work;
  std::vector<RawAnswer> answers;
  std::size_t remaining;
  std::vector<Slot> slots;

  static void on_answer(void* arg, int status, int /*timeouts*/, unsigned char* message,
                        int length) {
    auto* slot = static_cast<Slot*>(arg);
    Batch* batch = slot->batch;
    RawAnswer& answer = batch->answers[slot->index];
    answer.status = status;
    if (message != nullptr && length > 0) answer.message.assign(message, message + length);
    if (--batch->remaining > 0) return;
    std::unique_ptr<Batch> owner(batch);
    auto executor = asio::get_associated_executor(owner->handler, owner->work.get_executor());
    asio::post(executor, [handler = std::move(owner->handler),
                          answers = std::move(owner->answers)]() mutable {
      std::move(handler)(std::move(answers));
    });
  }
};

}  // namespace

struct CaresResolver::Channel : std::enable_shared_from_this<Channel> {
  struct Watch {
    Watch(const asio::any_io_executor& executor, int socket)
        : descriptor(executor, socket), fd(socket) {}
    asio::posix::stream_descriptor descriptor;
    int fd;
    bool want_read = false, want_write = false, reading = false, writing = false, closed = false;
    unsigned generation = 0;  // bumped on cancel: stale completions are ignored
  };

  explicit Channel(asio::any_io_executor ex) : executor(std::move(ex)), timer(executor) {}

  ~Channel() {
    // Pending queries complete with ARES_EDESTRUCTION; sockets are reported
    // closed through on_socket_state, which releases their descriptors.
    if (ares != nullptr) ares_destroy(ares);
    for (auto& [fd, watch] : watches) release(*watch);
  }

  void open(const CaresOptions& options) {
    init_library();
    ares_options o{};
    o.timeout = static_cast<int>(options.timeout.count());
    o.tries = options.tries;
    o.sock_state_cb = &Channel::on_socket_state;
    o.sock_state_cb_data = this;
    int status =
        ares_init_options(&ares, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB);
    if (status != ARES_SUCCESS) {
      ares = nullptr;
      throw std::runtime_error(std::string("cannot start the DNS resolver: ") +
                               ares_strerror(status));
    }
    if (!options.servers.empty()) {
      status = ares_set_servers_ports_csv(ares, servers_csv(options.servers).c_str());
      if (status != ARES_SUCCESS)
        throw std::runtime_error(std::string("DNS servers: ") + ares_strerror(status));
    }
  }

  // Sends every question at once; resumes with one answer per question.
  net::awaitable<std::vector<RawAnswer>> ask(std::vector<Question> questions) {
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::vector<RawAnswer>)>(
        [this, questions = std::move(questions)](auto handler) {
          start(std::move(handler), questions);
        },
        asio::use_awaitable);
  }

  template <typename Handler>
  void start(Handler handler, const std::vector<Question>& questions) {
    const std::size_t n = questions.size();
    auto* batch = new Batch<Handler>{
        std::move(handler), asio::make_work_guard(executor), std::vector<RawAnswer>(n), n, {}};
    for (std::size_t i = 0; i < n; ++i) batch->slots.push_back({batch, i});
    std::vector<void*> args;
    for (auto& slot : batch->slots) args.push_back(&slot);
    // The last ares_query may complete (and free) the batch before it returns.
    for (std::size_t i = 0; i < n; ++i) {
      ares_query(ares, questions[i].name.c_str(), kClassIn, questions[i].type,
                 &Batch<Handler>::on_answer, args[i]);
    }
    schedule_timer();
  }

  static void on_socket_state(void* data, ares_socket_t fd, int readable, int writable) {
    try {
      static_cast<Channel*>(data)->update(fd, readable != 0, writable != 0);
    } catch (const std::exception&) {
      // Nothing may unwind through c-ares. An unwatched socket's query still
      // ends when the timer expires it, as a temporary failure.
    }
  }

  void update(int fd, bool read, bool write) {
    auto it = watches.find(fd);
    if (!read && !write) {  // c-ares closes the socket right after this
      if (it != watches.end()) {
        release(*it->second);
        watches.erase(it);
      }
      return;
    }
    if (it == watches.end()) it = watches.emplace(fd, std::make_shared<Watch>(executor, fd)).first;
    auto watch = it->second;
    if ((watch->reading && !read) || (watch->writing && !write)) {
      std::error_code ignored;
      watch->descriptor.cancel(ignored);  // an idle wait would keep the loop running
      watch->reading = watch->writing = false;
      ++watch->generation;
    }
    watch->want_read = read;
    watch->want_write = write;
    arm(watch);
  }

  void release(Watch& watch) {
    watch.closed = true;
    ++watch.generation;
    watch.descriptor.release();  // aborts pending waits; c-ares closes the fd
  }

  void arm(const std::shared_ptr<Watch>& watch) {
    auto wait = [this, &watch](asio::posix::descriptor_base::wait_type type, bool& busy) {
      busy = true;
      watch->descriptor.async_wait(type, [self = weak_from_this(), watch, type,
                                          generation = watch->generation](std::error_code ec) {
        if (generation != watch->generation) return;
        bool read = type == asio::posix::descriptor_base::wait_read;
        (read ? watch->reading : watch->writing) = false;
        if (ec || watch->closed) return;
        if (auto channel = self.lock()) channel->on_ready(watch, read);
      });
    };
    if (watch->want_read && !watch->reading)
      wait(asio::posix::descriptor_base::wait_read, watch->reading);
    if (watch->want_write && !watch->writing)
      wait(asio::posix::descriptor_base::wait_write, watch->writing);
  }

  void on_ready(const std::shared_ptr<Watch>& watch, bool read) {
    const int fd = watch->fd;
    bool more = false;
    for (int i = 0; i < kMaxReadsPerWake; ++i) {
      ares_process_fd(ares, read ? fd : ARES_SOCKET_BAD, read ? ARES_SOCKET_BAD : fd);
      // Asio's epoll waits are edge-triggered: data that arrived while no wait
      // was pending raises no new edge, so look before waiting again.
      more = read && !watch->closed && readable_now(fd);
      if (!more) break;
    }
    if (more) {
      asio::post(executor, [self = weak_from_this(), watch] {
        if (auto channel = self.lock(); channel && !watch->closed) channel->on_ready(watch, true);
      });
    } else if (!watch->closed) {
      arm(watch);
    }
    schedule_timer();
  }

  void schedule_timer() {
    timeval tv{};
    if (ares_timeout(ares, nullptr, &tv) == nullptr) {  // no query pending
      timer.cancel();
      return;
    }
    timer.expires_after(std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec));
    timer.async_wait([self = weak_from_this()](std::error_code ec) {
      if (ec) return;
      if (auto channel = self.lock()) {
        ares_process_fd(channel->ares, ARES_SOCKET_BAD,
                        ARES_SOCKET_BAD);  // expire timed-out tries
        channel->schedule_timer();
      }
    });
  }

  asio::any_io_executor executor;
  asio::steady_timer timer;
  ares_channel ares = nullptr;
  std::unordered_map<int, std::shared_ptr<Watch>> watches;
};

std::string servers_csv(const std::vector<std::string>& servers) {
  std::string csv;
  for (const auto& text : servers) {
    auto endpoint = config::Endpoint::parse(text, 53);
    unsigned char buffer[sizeof(in6_addr)];
    bool v4 = endpoint && inet_pton(AF_INET, endpoint->host.c_str(), buffer) == 1;
    bool v6 = endpoint && !v4 && inet_pton(AF_INET6, endpoint->host.c_str(), buffer) == 1;
    if (!v4 && !v6)
      throw std::invalid_argument("DNS server \"" + text +
                                  "\" is not an IP address with optional port");
    if (!csv.empty()) csv += ',';
    csv +=
        (v6 ? "[" + endpoint->host + "]" : endpoint->host) + ":" + std::to_string(endpoint->port);
  }
  return csv;
}

CaresResolver::CaresResolver(asio::any_io_executor executor, const CaresOptions& options)
    : channel_(std::make_shared<Channel>(std::move(executor))) {
  channel_->open(options);
}

CaresResolver::~CaresResolver() = default;

net::awaitable<MxResult> CaresResolver::mx(std::string domain) {
  if (!domain.empty() && domain.back() == '.') domain.pop_back();
  std::string what = "MX " + domain;
  // Only locals after the await: the resolver may be gone when it resumes.
  std::vector<Question> questions{{std::move(domain), kTypeMx}};  // (GCC 12: no braces in co_await)
  auto answers = co_await channel_->ask(std::move(questions));
  co_return parse_mx(answers.at(0), what);
}

net::awaitable<AddressResult> CaresResolver::addresses(std::string host) {
  if (!host.empty() && host.back() == '.') host.pop_back();
  std::string a = "A " + host, aaaa = "AAAA " + host;
  std::vector<Question> questions{{host, kTypeA}, {host, kTypeAaaa}};
  auto answers = co_await channel_->ask(std::move(questions));
  co_return merge_addresses(parse_a(answers.at(0), a), parse_aaaa(answers.at(1), aaaa));
}

net::awaitable<TxtResult> CaresResolver::txt(std::string name) {
  if (!name.empty() && name.back() == '.') name.pop_back();
  std::string what = "TXT " + name;
  std::vector<Question> questions{{std::move(name), kTypeTxt}};
  auto answers = co_await channel_->ask(std::move(questions));
  co_return parse_txt(answers.at(0), what);
}

}  // namespace tern::dns
