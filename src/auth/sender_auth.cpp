// Placeholder until SPF and DMARC evaluation land: no checks, no header.
#include "auth/sender_auth.h"

namespace tern::auth {

net::awaitable<SenderAuthVerdict> check_sender(const SenderAuthInput& /*input*/,
                                               const config::Config& /*config*/,
                                               dns::Resolver& /*resolver*/) {
  co_return SenderAuthVerdict{};
}

}  // namespace tern::auth
