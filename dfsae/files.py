"""Writing files atomically: to a temporary file beside the target, then renamed over it.

An interrupted or failed write never leaves a partial file behind, and the file gets the
permissions the process's umask gives any new file (``tempfile`` alone would make it 0600).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def temporary_beside(path, suffix: str = ".tmp"):
    """Yield a temporary path in ``path``'s folder; it is removed unless the caller renamed it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def publish(tmp, path) -> Path:
    """Rename the finished temporary file ``tmp`` over ``path``, with the umask's permissions
    (some writers, e.g. safetensors, recreate the file they are given)."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)
    return Path(path)


def atomic_write(path, data: str | bytes) -> Path:
    """Write ``data`` (text or bytes) to ``path`` atomically."""
    path = Path(path)
    with temporary_beside(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        publish(tmp, path)
    return path
