#!/usr/bin/env bash
# Local Kafka broker for development and tests: kafka.sh up|down|status [options]
# (see `kafka.sh --help`); the work is done by ledger.eventlog.kafka.broker_cli.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec "${PYTHON:-.venv/bin/python}" -m ledger.eventlog.kafka.broker_cli "$@"
