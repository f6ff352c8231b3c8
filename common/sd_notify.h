// The daemons' side of systemd's Type=notify and WatchdogSec= (sd_notify(3),
// libsystemd). Every call does nothing when the process was not started by
// systemd with a notification socket ($NOTIFY_SOCKET unset), so the daemons
// run the same by hand and in the tests.
#pragma once

#include <cstdint>
#include "absl/strings/string_view.h"

namespace tandem::sd {

// READY=1 with a one-line STATUS= for `systemctl status`.
void Ready(absl::string_view status);
void Status(absl::string_view status);
void Stopping();
// The interval at which systemd expects WATCHDOG=1 (WatchdogSec=), in
// microseconds; 0 when the watchdog is off.
uint64_t WatchdogUsec();
void WatchdogPing();

}  // namespace tandem::sd
