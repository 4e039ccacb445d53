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
    """Write ``data`` (text or bytes) to ``path`` atomically; an ``OSError`` (a full disk, a folder
    that cannot be written) is raised again naming ``path``, and ``path`` is left as it was."""
    return atomic_write_all({path: data})[0]


def atomic_write_all(contents: dict) -> list[Path]:
    """Write several files as one: every ``{path: text or bytes}`` goes to a temporary file first,
    and only when all are written are they renamed into place, so a failed write changes none
    of them. (A kill between two renames can still leave a mix; readers of paired files detect
    that by a shared id, as :func:`dfsae.paper.experiments.load_results` does.)"""
    paths = [Path(p) for p in contents]
    with contextlib.ExitStack() as stack:
        temporaries = []
        for path, data in zip(paths, contents.values(), strict=True):
            try:
                tmp = stack.enter_context(temporary_beside(path))
                tmp.write_bytes(data.encode() if isinstance(data, str) else data)
            except OSError as err:
                raise OSError(err.errno, f"cannot write {path}: {err.strerror or err}") from err
            temporaries.append(tmp)
        for tmp, path in zip(temporaries, paths, strict=True):
            publish(tmp, path)
    return paths


LOCK = ".dfsae-lock"


class FolderInUseError(RuntimeError):
    """Another live process holds the lock of a folder (see :func:`folder_lock`)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def folder_lock(folder, purpose: str = "a run"):
    """Hold ``folder``'s lock (the file ``.dfsae-lock`` in it, created exclusively) while the block
    runs, so two runs never write one results folder at once. A second taker gets
    :class:`FolderInUseError` naming the holder (process id, host, start time and purpose); a lock
    left by a process that no longer runs on this host is taken over. The folder is created."""
    import json
    import socket
    import time

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
          "purpose": purpose}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text())
            except (OSError, ValueError):
                holder = {}
            stale = holder.get("host") == me["host"] and isinstance(holder.get("pid"), int) \
                and not _alive(holder["pid"])
            if stale:
                path.unlink(missing_ok=True)
                continue
            raise FolderInUseError(f"{folder} is in use by process {holder.get('pid', '?')} on "
                              f"{holder.get('host', '?')} since {holder.get('started', '?')} "
                              f"({holder.get('purpose', 'unknown')}); wait for it to finish, or write "
                              f"elsewhere. If no such process runs, delete {path}.") from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
