// Tells the service manager what tern serve is doing (systemd's Type=notify,
// sd_notify(3)): READY=1 once every listener is bound and the spool is open,
// RELOADING=1 … READY=1 around a SIGHUP reload, STOPPING=1 at the start of a
// graceful stop, with a STATUS= line each time. Without $NOTIFY_SOCKET (not
// started by systemd) every call does nothing.
#pragma once

#include <string>

namespace tern::server {

void notify_ready(const std::string& status);
void notify_reloading();
void notify_stopping();

}  // namespace tern::server
