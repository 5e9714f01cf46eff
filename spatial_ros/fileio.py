"""Atomic output files with ordinary permissions.

``tempfile.mkstemp`` creates its file with mode 0600 (private), and ``os.replace`` keeps that
mode, so results written "atomically" ended up readable by their owner only. The helpers here
give the final file the mode a plain ``open(path, "w")`` would: 0666 minus the umask (0644 with
the usual umask 022).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    try:  # Linux >= 4.7 shows it without changing it (os.umask would, briefly, for all threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o077)  # elsewhere: read by setting a safe value, then set straight back
    os.umask(umask)
    return umask


def new_file_mode() -> int:
    """0666 minus the process umask (what ``open(path, "w")`` would create)."""
    return 0o666 & ~_umask()


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same directory: same file system); when the
    block succeeds, give it :func:`new_file_mode` and rename it over ``path``; when it raises,
    remove it. The parent directory is created."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
