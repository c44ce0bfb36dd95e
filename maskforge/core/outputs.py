"""What a command writes: one maskforge command at a time on each folder or file (an flock,
freed by the kernel when its holder dies, so a killed command never leaves it stuck), and the
faults of the storage under it (full, read-only, not ours) as one-line errors that name it.

Stdlib only: cli.py words every command's storage faults with `storage_message`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".maskforge.lock"
# Write errors that are the storage's, not one file's: out of space, read-only, no permission.
# Every later write fails the same way, so a batch stops on them instead of going on.
STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)
# Of those, the ones only a write gives (a read may be refused with EACCES or EPERM too).
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})
ADVICE = "what was written before is kept: free some space or make it writable, then rerun"


def is_storage_fault(exc: BaseException) -> bool:
    """True for an OSError that says the place written to is full, read-only or not ours."""
    return isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS


class FolderInUseError(ValueError):
    """Another maskforge command holds the folder (or file) this one would write."""


class StorageError(OSError):
    """A storage fault while a command wrote target (its folder, or the file it writes)."""

    def __init__(self, target: Path | str, fault: OSError):
        super().__init__(fault.errno, fault.strerror, fault.filename or str(target))
        self.target = str(target)

    def __str__(self) -> str:
        named = self.filename is not None and Path(os.fsdecode(self.filename)) != Path(self.target)
        where = f" ({os.fsdecode(self.filename)})" if named else ""
        return f"Cannot write to {self.target}: {self.strerror}{where}; {ADVICE}."


def storage_message(exc: BaseException) -> str | None:
    """The one-line error for a storage fault a command stopped on (None for other errors):
    a StorageError's, or for a bare write fault (full, read-only) one naming its file."""
    if isinstance(exc, StorageError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
        if exc.filename is None:
            return f"Cannot write: {exc.strerror}; {ADVICE}."
        return str(StorageError(os.fsdecode(exc.filename), exc))
    return None


@contextmanager
def folder_lock(
    folder: Path, command: str, name: str = LOCK_FILE, shown: Path | None = None
) -> Iterator[None]:
    """Hold folder/name (an exclusive flock) for the block, with who holds it written in it.

    Another command holding it: FolderInUseError at once, naming shown (default: folder) and
    the holder (command, pid, host, start). The file is removed when the block ends."""
    path = Path(folder) / name
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 300, 0).decode("utf-8", "replace").strip() or "pid unknown"
            os.close(fd)
            what = "folder" if shown is None else "file"
            raise FolderInUseError(
                f"{shown or folder} is in use by another maskforge command "
                f"({holder.splitlines()[0]}); wait for it to finish or choose another {what}."
            ) from None
        try:  # the last holder may have removed the file between our open and flock
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        holder = f"maskforge {command}, pid {os.getpid()} on {socket.gethostname()}"
        os.ftruncate(fd, 0)
        os.write(fd, f"{holder}, started {started}\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)  # still locked: a waiting command retries on a new file
        os.close(fd)


@contextmanager
def output_folder(
    folder: Path, command: str, *, file: Path | None = None, lock_name: str = LOCK_FILE
) -> Iterator[Path]:
    """The folder a command writes, held for the block: created (with its parents) where
    missing, then locked (folder_lock: a second command is refused before it writes), and a
    storage fault inside it raised as a StorageError naming it (a fault elsewhere, such as a
    cache folder's, is left as it is). file: the one file the command writes there, named in
    the errors instead of the folder. Folders made here and left empty are removed again."""
    folder = Path(folder)
    shown = file if file is not None else folder
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    lock = folder / lock_name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with folder_lock(folder, command, lock_name, file):
            yield folder
    except OSError as exc:
        if isinstance(exc, StorageError) or not is_storage_fault(exc):
            raise
        if exc.filename is not None and not _inside(exc.filename, folder):
            raise
        if exc.filename is not None and Path(os.fsdecode(exc.filename)) == lock:
            exc.filename = None  # the lock file means nothing to the user
        raise StorageError(shown, exc) from exc
    finally:
        for path in made:  # deepest first
            try:
                path.rmdir()
            except OSError:
                break


def _inside(filename: str | bytes | int, folder: Path) -> bool:
    if isinstance(filename, int):
        return True  # a file descriptor: one the command opened
    target = os.path.abspath(os.fsdecode(filename))
    return os.path.commonpath([target, os.path.abspath(folder)]) == os.path.abspath(folder)
