#!/usr/bin/env bash
# Local Kafka broker for development and tests: kafka.sh up|down|status [options]
# (see `kafka.sh --help`); the work is done by ledger.eventlog.kafka.broker_cli.
set -euo pipefail
# The broker's data holds the event log: owner-only, like everything under BYR_HOME.
umask 077
cd "$(dirname "$0")/../.."
exec "${PYTHON:-.venv/bin/python}" -m ledger.eventlog.kafka.broker_cli "$@"
