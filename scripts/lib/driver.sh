# Runs a Python test-bed driver (demo, failover bench, soak) and always
# removes what it made. Source it, then: run_driver GRACE_S SCRIPT [ARGS...]
#
# The driver runs in a session of its own, so that Ctrl-C reaches only this
# shell, whose trap asks the driver (SIGTERM) to stop and remove its testbed
# in order (within GRACE_S seconds), instead of reaching every daemon of the
# pair at once. Whatever a killed driver left is swept afterwards: its
# namespaces, shm and DPDK runtime files all start with tdi<its pid>-.
# Exits with the driver's status.
run_driver() {
  _driver_grace_tenths=$(( $1 * 10 ))
  shift
  driver=""
  _driver_cleanup() {
    set +e
    if [[ -n "$driver" ]] && kill -0 "$driver" 2>/dev/null; then
      kill -TERM "$driver" 2>/dev/null
      for _ in $(seq "$_driver_grace_tenths"); do kill -0 "$driver" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$driver" 2>/dev/null
    fi
    if [[ -n "$driver" ]]; then
      for ns in $(ip netns list | awk '{print $1}' | grep "^tdi$driver-"); do
        for pid in $(ip netns pids "$ns"); do kill -KILL "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
      done
      rm -rf /dev/shm/tdi"$driver"-* /tmp/tdi"$driver"-* /var/run/dpdk/tdi"$driver"-*
    fi
  }
  trap _driver_cleanup EXIT
  trap 'exit 130' INT TERM HUP
  setsid /usr/bin/python3 "$@" &
  driver=$!
  local rc=0
  wait "$driver" || rc=$?
  exit "$rc"
}
