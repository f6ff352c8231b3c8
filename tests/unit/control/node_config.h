// A node's configuration for tests that start a real Core in a temp dir:
// small tables, two access VIPs, a pool of ports from 20000 to `last_port`.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "control/config.h"
#include "tests/unit/control/test_dir.h"

namespace tandem::control::testing {

inline Config NodeConfig(const TempDir& dir, const std::string& node,
                         uint16_t last_port = 20063) {
  Config c;
  c.node = node;
  c.shm_dir = dir.path();
  c.capacity.legs = 64;
  c.capacity.meetings = 8;
  c.store_path = dir.File("store.db");
  c.access_vips = {*IpAddr::Parse("198.18.0.100"), *IpAddr::Parse("2001:db8:1::100")};
  c.pool_first_port = 20000;
  c.pool_last_port = last_port;
  EXPECT_TRUE(ValidateConfig(c).ok());  // fills the pool's VIPs
  return c;
}

}  // namespace tandem::control::testing
