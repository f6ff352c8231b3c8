#!/bin/sh
# Example [notify] command of tandem-control: called at every role change as
#   notify.sh ROLE NODE EPOCH
# with TANDEM_ROLE, TANDEM_PREVIOUS_ROLE, TANDEM_NODE, TANDEM_EPOCH and
# TANDEM_CAUSE in the environment. Runs as user tandem; keep it quick (it is
# killed after [notify] timeout_s).
logger -t tandem-notify "node $2 is now $1 in epoch $3${TANDEM_CAUSE:+ ($TANDEM_CAUSE)}"
