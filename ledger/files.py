"""Owner-only permissions for what the ledger keeps on disk: files 0600, folders 0700.

A home holds submitted records, events that describe them, caches derived from their texts and the
state of development chains; no other account on the machine has a reason to read any of it. Two
layers keep it that way. Every entry point narrows the process umask with :func:`restrict_umask`
(through ``api.environment.apply_process_defaults``), so whatever any library or child process
creates is owner-only. Each storage adapter also passes its folder and files through
:func:`private_dir` and :func:`private_database` (or :func:`private_file`): that covers callers
that never ran an entry point (tests, notebooks, library use) and tightens a home created by an
older version or under a looser umask.

Tightening only removes group and other permission bits, and only on paths this account owns: a
folder such as ``/tmp`` (owned by root) or any sticky, shared folder is left as it is.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
"""Bits every entry point adds to the process umask: nothing for group or others."""
DIR_MODE = 0o700
FILE_MODE = 0o600

_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def restrict_umask() -> int:
    """Add :data:`PRIVATE_UMASK` to the process umask (a stricter umask stays); the new umask."""
    previous = os.umask(PRIVATE_UMASK)
    narrowed = previous | PRIVATE_UMASK
    os.umask(narrowed)
    return narrowed


def tighten(path: Path) -> None:
    """Remove the group and other bits of ``path`` when this account owns it (no-op otherwise,
    and for sticky folders, which are shared on purpose)."""
    info = path.stat()
    if info.st_uid != os.geteuid() or info.st_mode & stat.S_ISVTX:
        return
    mode = stat.S_IMODE(info.st_mode)
    if mode & PRIVATE_UMASK:
        os.chmod(path, mode & ~PRIVATE_UMASK)


def private_dir(path: str | Path) -> Path:
    """``path`` as an existing folder without group or other permissions.

    Missing folders (parents included) are created 0700; an existing ``path`` is tightened, its
    existing parents are not touched. Raises ``FileExistsError`` when ``path`` is not a folder.
    """
    path = Path(path)
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        # exist_ok: another process may create the same folder at the same time.
        folder.mkdir(mode=DIR_MODE, exist_ok=True)
        tighten(folder)
    if not missing:
        if not path.is_dir():
            raise FileExistsError(f"{path} exists and is not a folder")
        tighten(path)
    return path


def private_file(path: str | Path) -> Path:
    """``path`` as an existing file without group or other permissions: created empty (0600) when
    missing, tightened otherwise. Its folder must exist (see :func:`private_dir`)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        pass  # kept as it is, apart from its mode
    else:
        os.close(fd)
    tighten(path)
    return path


def private_database(path: str | Path) -> Path:
    """A SQLite database file ready to be opened privately: its folder via :func:`private_dir`, the
    file created 0600 (an empty file is an empty database) and existing ``-wal``, ``-shm`` and
    ``-journal`` files tightened. SQLite gives the companion files it creates later the mode of the
    database file, so they are private too."""
    path = Path(path)
    private_dir(path.parent)
    private_file(path)
    for suffix in _SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            tighten(companion)
    return path
