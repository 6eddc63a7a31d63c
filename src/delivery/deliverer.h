// What the scheduler needs from outbound delivery (SPEC §4): deliver one
// message to its pending recipients and report the outcomes group by group, as
// each group ends, so each is recorded in the spool at once (a crash never
// delivers a finished group again). delivery::Dispatcher is the real one;
// unit tests give the scheduler a scripted one.
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>
#include <vector>

#include "delivery/outcome.h"
#include "net/awaitable.h"
#include "queue/envelope.h"

namespace tern::delivery {

// One group's outcomes (every recipient of the group, once), called on the
// delivery loop as the group ends; last: no other group of this call follows.
// It must not suspend: it records the outcomes and returns.
using GroupReport = std::function<void(std::vector<RecipientOutcome> outcomes, bool last)>;

class Deliverer {
 public:
  virtual ~Deliverer() = default;
  // Delivers to recipients (indices into envelope.recipients) and reports each
  // of them exactly once through report; returns once every group has ended.
  // envelope and content stay valid until it returns. may_be_repeat: an
  // earlier attempt may have delivered some of them already (a Maildir looks
  // for its earlier copy); false only for the first attempt of a message this
  // process accepted or created.
  virtual net::awaitable<void> deliver(const queue::Envelope& envelope, std::string_view content,
                                       const std::vector<std::size_t>& recipients,
                                       bool may_be_repeat, GroupReport report) = 0;
};

}  // namespace tern::delivery
