#include "common/sd_notify.h"

#include <systemd/sd-daemon.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace tandem::sd {

void Ready(absl::string_view status) {
  sd_notify(0, absl::StrCat("READY=1\nSTATUS=", status).c_str());
}

void Status(absl::string_view status) { sd_notify(0, absl::StrCat("STATUS=", status).c_str()); }

void Stopping() { sd_notify(0, "STOPPING=1"); }

uint64_t WatchdogUsec() {
  uint64_t usec = 0;
  return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

void WatchdogPing() { sd_notify(0, "WATCHDOG=1"); }

}  // namespace tandem::sd
