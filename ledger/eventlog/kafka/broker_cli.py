"""Command line of the local development broker (``scripts/kafka/kafka.sh`` wraps it)::

    python -m ledger.eventlog.kafka.broker_cli up      # idempotent; prints the bootstrap address
    python -m ledger.eventlog.kafka.broker_cli status  # exit status 0 when it answers, 3 when not
    python -m ledger.eventlog.kafka.broker_cli down    # SIGTERM, then SIGKILL after a timeout

Options: ``--home`` (default ``$BYR_HOME/kafka``), ``--port`` (``$BYR_KAFKA_PORT``, 19092),
``--controller-port`` (``$BYR_KAFKA_CONTROLLER_PORT``, 19093), ``--heap-mb``, ``--timeout``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ledger.eventlog.kafka.broker import (
    DEFAULT_CONTROLLER_PORT,
    DEFAULT_HEAP_MB,
    DEFAULT_PORT,
    BrokerConfig,
    LocalBroker,
    default_home,
)
from ledger.eventlog.kafka.errors import KafkaBrokerError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kafka.sh", description="Run a local single-node Kafka broker (KRaft)."
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--home", type=Path, default=None, help="broker folder (var/kafka)")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("BYR_KAFKA_PORT", DEFAULT_PORT))
    )
    parser.add_argument(
        "--controller-port",
        type=int,
        default=int(os.environ.get("BYR_KAFKA_CONTROLLER_PORT", DEFAULT_CONTROLLER_PORT)),
    )
    parser.add_argument("--heap-mb", type=int, default=DEFAULT_HEAP_MB)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = BrokerConfig(
        home=args.home or default_home(),
        port=args.port,
        controller_port=args.controller_port,
        heap_mb=args.heap_mb,
    )
    broker = LocalBroker(config)
    try:
        if args.command == "up":
            print(broker.up(timeout_s=args.timeout))
            return 0
        if args.command == "down":
            stopped = broker.down(timeout_s=args.timeout)
            print("stopped" if stopped else "not running")
            return 0
        status = broker.status()
        if status.running:
            print(f"running pid={status.pid} bootstrap={status.bootstrap}")
            return 0
        print("not running" if status.pid is None else f"not answering pid={status.pid}")
        return 3
    except KafkaBrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
