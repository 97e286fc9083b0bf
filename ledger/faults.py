"""Named crash points for recovery tests.

A long-running service calls :func:`crash_point` at the places where a crash is most dangerous
(e.g. after a chain transaction was sent and before its outcome is recorded). When the environment
variable ``BYR_CRASH_AT`` names that point, the process kills itself with SIGKILL there, exactly as
an operator's ``kill -9`` or a power loss would. Unset (the normal case), it does nothing.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "BYR_CRASH_AT"


def crash_point(name: str) -> None:
    """Die with SIGKILL when ``BYR_CRASH_AT`` equals ``name``."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
