// A TCP port on 127.0.0.1 with nothing listening: for an endpoint that
// refuses, or for a server a test starts. Taken below the kernel's ephemeral
// range (32768 and up here), where nothing is handed out by bind(0) or
// connect(): a port the kernel chose for bind(0) and that was closed again
// can go to another process before the test's etcd binds it. The etcd start
// test met "address already in use" in both builds of one clean-clone run
// (unit tests run in parallel there), with ports the kernel had chosen.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <set>

#include "gtest/gtest.h"

namespace tandem::fleet::testing {

inline int UnusedLoopbackPort() {
  static std::minstd_rand rng(std::random_device{}());
  static std::set<int> given;  // closed again, so bind() alone would not say
  for (int tries = 0; tries < 1000; ++tries) {
    const int port = 26000 + int(rng() % 3000);  // no test names a port in 26000-28999
    if (!given.insert(port).second) continue;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(uint16_t(port));
    const bool free = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    if (free) return port;
  }
  ADD_FAILURE() << "no free TCP port on 127.0.0.1 in 26000-28999";
  return 0;
}

}  // namespace tandem::fleet::testing
