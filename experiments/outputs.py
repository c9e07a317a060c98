"""Where a run writes: a check before any compute, a lock per folder, all-or-nothing outputs.

The rules (``docs/experiments.md``, *Outputs*): a run names the entries of ``--out`` it
owns (an experiment's folder, ``REPORT.md``, ...); before computing it checks that the
folder can be written (``check_writable``), takes the folder's lock (``lock``: a second run
on the same folder is refused, naming the holder's pid), and checks that every entry it
will replace was written by an earlier run of the same kind (``refuse_foreign``). It then
writes into a hidden folder ``OUT/.partial-*`` on the same filesystem (``staged``), and
``commit`` moves the entries into place only once everything is written; an interrupted or
failed run removes its partial folder and leaves ``OUT`` as it was. Nothing else in
``OUT`` is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence

try:
    import fcntl
except ImportError:  # Windows: an exclusive create instead (a crash leaves the file behind)
    fcntl = None  # type: ignore[assignment]

LOCK = ".experiments.lock"  # held (flock) by the run writing the folder
PARTIAL = ".partial-"  # a run's outputs while they are written
REPLACED = ".replaced"  # inside the partial folder: the entries a commit replaced


class OutputError(Exception):
    """An output folder that cannot be used; the message names the folder and why."""


def check_writable(folder: pathlib.Path) -> None:
    """Raises ``OutputError`` unless ``folder`` is a writable folder or can be created as
    one (its nearest existing ancestor is a writable folder). Creates nothing."""
    folder = pathlib.Path(folder)
    probe = folder
    while not os.path.lexists(probe) and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        where = "" if probe == folder else f"its parent {probe} "
        raise OutputError(f"{folder}: {where}is a file; expected a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as error:
        raise OutputError(
            f"{folder}: cannot write in {probe} ({type(error).__name__}: "
            f"{error.strerror or error}); expected a writable folder"
        ) from None


def _holder(path: pathlib.Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return text or "a run that is starting (no pid written yet)"


@contextlib.contextmanager
def lock(folder: pathlib.Path, command: str) -> Iterator[pathlib.Path]:
    """Holds ``folder``'s lock (``folder/.experiments.lock``, created with the folder) for
    the block; raises ``OutputError`` naming the folder and the holder (pid, host, start,
    command) when another run holds it: the second run is refused, it does not wait.

    Where ``fcntl`` exists the lock is an ``flock``, released by the system when its holder
    dies (a killed run never blocks the next); the file is removed on release, and so is
    the folder if the lock created it and it is still empty."""
    folder = pathlib.Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    busy = f"{folder}: in use by another run ({{}}); wait for it to end or choose another --out"
    while True:
        if fcntl is None:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                raise OutputError(
                    busy.format(_holder(path)) + f" (if no run holds it, remove {path})"
                ) from None
            break
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(busy.format(_holder(path))) from None
        try:  # the file we locked is still the one at the path (not removed by its holder)
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    os.ftruncate(fd, 0)
    os.write(
        fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}: {command}\n".encode()
    )
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)
        if created:  # a run that wrote nothing leaves no empty folder behind
            with contextlib.suppress(OSError):
                folder.rmdir()


def remove_leftovers(folder: pathlib.Path) -> list[str]:
    """Removes the partial folders of runs that were killed before they could clean up
    (call it holding the lock: no live run is writing them); returns their names."""
    gone = sorted(p.name for p in pathlib.Path(folder).glob(PARTIAL + "*") if p.is_dir())
    for name in gone:
        shutil.rmtree(pathlib.Path(folder) / name, ignore_errors=True)
    return gone


def refuse_foreign(
    folder: pathlib.Path, ours: Mapping[str, Callable[[pathlib.Path], bool]], command: str
) -> None:
    """Raises ``OutputError`` if an entry of ``folder`` that the run will replace exists and
    its predicate in ``ours`` says that no earlier run of ``command`` wrote it."""
    for name, written_by_us in ours.items():
        path = pathlib.Path(folder) / name
        if os.path.lexists(path) and not written_by_us(path):
            raise OutputError(
                f"{folder}: holds {name}, which `{command}` did not write and this run would "
                "replace; move it away or choose another --out"
            )


def json_field(path: pathlib.Path, key: str) -> object:
    """``path``'s JSON object's ``key`` (None where the file is not such a JSON object)."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return payload.get(key) if isinstance(payload, dict) else None


def first_line(path: pathlib.Path) -> str:
    """The first line of a text file ("" where it cannot be read as one)."""
    try:
        with path.open(encoding="utf-8") as handle:
            return handle.readline().rstrip("\n")
    except (OSError, UnicodeDecodeError):
        return ""


@contextlib.contextmanager
def staged(folder: pathlib.Path) -> Iterator[pathlib.Path]:
    """A fresh partial folder ``folder/.partial-PID-*`` for the block to write into; on any
    exception (``KeyboardInterrupt`` included) it is removed and ``folder`` is left as it
    was. ``commit`` moves its entries into place; whatever is left is removed at the end."""
    stage = pathlib.Path(tempfile.mkdtemp(prefix=f"{PARTIAL}{os.getpid()}-", dir=folder))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignores SIGINT (Ctrl-C) for the block, a few renames that end the run: a commit is
    not cut in half. Elsewhere than in the main thread, it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def commit(stage: pathlib.Path, folder: pathlib.Path, names: Sequence[str]) -> None:
    """Moves ``stage/NAME`` to ``folder/NAME`` for every name, the entry there before (a
    file or a whole folder) moved into the stage (and removed with it): a few renames on one
    filesystem, during which Ctrl-C is ignored."""
    replaced = stage / REPLACED
    replaced.mkdir()
    with _sigint_ignored():
        for name in names:
            target = folder / name
            if os.path.lexists(target):
                os.replace(target, replaced / name)
            os.replace(stage / name, target)


def others(folder: pathlib.Path, written: Sequence[str]) -> list[str]:
    """The visible entries of ``folder`` that a run did not write (folders with a ``/``):
    what a run names as outputs of earlier runs or files not its own, left as they were."""
    return sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in pathlib.Path(folder).iterdir()
        if not p.name.startswith(".") and p.name not in written
    )
