// See service_notify.h.
#include "server/service_notify.h"

#include <systemd/sd-daemon.h>

#include <spdlog/spdlog.h>

namespace tern::server {

namespace {

void send(const std::string& state) {
  // unset_environment = 0: a reload sends READY=1 again later.
  int r = sd_notify(0, state.c_str());
  if (r < 0) spdlog::warn("cannot tell the service manager \"{}\": error {}", state, -r);
}

}  // namespace

void notify_ready(const std::string& status) {
  send("READY=1\nSTATUS=" + status);
}

void notify_reloading() {
  send("RELOADING=1\nSTATUS=reloading certificates, keys and mailboxes");
}

void notify_stopping() {
  send("STOPPING=1\nSTATUS=stopping: finishing sessions and deliveries");
}

}  // namespace tern::server
