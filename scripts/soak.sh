#!/usr/bin/env bash
# The soak: 2,000 streamed jobs (SEADRAGON_SOAK_JOBS) through two gateways and three workers on a
# private three-node RabbitMQ cluster, while workers are killed with SIGKILL and restarted, one
# gateway is killed and restarted, the node leading the job queues is killed and rebooted, and the
# cluster goes through a rolling restart. It prints the faults as they fire, then the totals
# (accepted, completed, failed with an error by reason, lost, hung, run twice) and fails unless
# nothing was lost, hung, garbled or run twice. Takes 5-10 minutes on two cores.
#
#   scripts/soak.sh                                   # a random seed, printed at the start
#   SEADRAGON_SOAK_JOBS=500 SEADRAGON_SOAK_SEED=7 scripts/soak.sh
#
# Needs what scripts/test.sh needs for RabbitMQ (the rabbitmq-server package); the cluster it
# boots uses free ports and a port mapper of its own, and is torn down however the run ends. The
# processes' logs stay in target/tmp/broker_cluster/soak/.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --locked --test broker_cluster soak -- --ignored --nocapture
