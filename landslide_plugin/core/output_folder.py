"""An output folder that belongs to the user: the plugin replaces only files it wrote, all at once.

A run writes into a hidden working folder inside the output folder and, when every file is complete,
puts the new set in place in one step (:meth:`OutputFolder.commit`):

- **Manifest.** ``.landslide-plugin-manifest.json`` lists every file the plugin put there, with its
  size and modification time. Only a file listed there, and unchanged since, may be replaced or
  removed by a later run; a file the run would write that is not (the user's own ``report.html``, or
  the plugin's file changed since) stops the run *before any work* (:meth:`OutputFolder.claim`).
  Every other file in the folder is never touched.
- **Inputs.** A file that is also an input of the run is never replaced or removed, even when an
  earlier run wrote it.
- **All or nothing.** The files being replaced are first moved into a hidden backup folder, then the
  new ones are moved in (renames within one folder: no copy, no cross-filesystem move). If any step
  fails, the new files are taken out and the backup moved back: the folder is as it was.
- **Lock.** ``.landslide-plugin.lock`` keeps a second run out of a folder a running run uses. A lock
  whose process is gone (a crashed QGIS) is taken over; so is one older than ``STALE_LOCK_S``.

``OutputFolder`` is QGIS-free; the one-step pipeline uses it, and any algorithm that writes a set of
files into a folder can.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

MANIFEST_NAME = ".landslide-plugin-manifest.json"
LOCK_NAME = ".landslide-plugin.lock"
WORK_PREFIX = ".landslide-run-"
BACKUP_PREFIX = ".landslide-backup-"
#: A lock older than this is taken over even when its process seems alive (a reused process id).
STALE_LOCK_S = 24 * 3600
#: Sidecars GDAL and QGIS keep beside a raster; they follow their raster (statistics of an old
#: raster would mislead QGIS about the new one).
SIDECAR_SUFFIXES = (".aux.xml", ".ovr", ".msk")

_held_locks: dict[str, str] = {}  # folder -> token of the locks this process holds
_held_guard = threading.Lock()


class FolderError(ValueError):
    """The output folder cannot be used as asked; the message says why and what to do."""


class FolderBusy(FolderError):
    """Another run is using the output folder."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _signature(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _human(error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return "the disk is full"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied"
    return error.strerror or str(error)


class OutputFolder:
    """A run's view of its output folder; use as a context manager.

    >>> with OutputFolder(folder, inputs=[pre, post, dem]) as out:
    ...     out.claim(["mask_threshold.tif", "report.html"])      # before any work
    ...     write(out.work / "mask_threshold.tif")
    ...     out.commit({"mask_threshold.tif": out.work / "mask_threshold.tif"}, remove_stale=True)

    Leaving the block without ``commit`` (an error, a cancel) removes the working folder, releases
    the lock and, if the run created the output folder and nothing else is in it, removes it too.
    """

    def __init__(self, folder: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = ()):
        self.folder = Path(folder)
        self.inputs = [Path(p) for p in inputs if p]
        self.work: Path | None = None
        self._token = uuid.uuid4().hex
        self._created = False
        self._claimed: set[str] = set()
        self.notes: list[str] = []  # what the run should tell the user about the folder

    # -- entering and leaving ---------------------------------------------------------------------
    def __enter__(self) -> OutputFolder:
        folder = self.folder
        if folder.exists() and not folder.is_dir():
            raise FolderError(f"The output folder {folder} is a file, not a folder: choose a folder.")
        if not folder.exists():
            try:
                folder.mkdir(parents=True)
                self._created = True
            except OSError as exc:
                raise FolderError(f"The output folder {folder} cannot be created ({_human(exc)}): choose a "
                                  "folder you can write to.") from None
        self._lock()
        try:
            self._remove_abandoned_work()
            try:
                self.work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=folder))
            except OSError as exc:
                raise FolderError(f"The output folder {folder} is not writable ({_human(exc)}): choose a folder "
                                  "you can write to.") from None
        except BaseException:
            self._unlock()
            self._remove_if_created()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            if self.work is not None:
                shutil.rmtree(self.work, ignore_errors=True)
                self.work = None
        finally:
            self._unlock()
            if exc_info[0] is not None:
                self._remove_if_created()

    def _remove_if_created(self) -> None:
        """A failed run into a folder it created leaves no empty folder behind."""
        if self._created:
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only when empty

    # -- what the plugin wrote ----------------------------------------------------------------------
    def manifest(self) -> dict[str, dict]:
        """name -> {size, mtime_ns} of the files earlier runs of the plugin put in the folder."""
        path = self.folder / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            files = data.get("files", {})
            return {str(k): dict(v) for k, v in files.items() if isinstance(v, dict) and "/" not in str(k)}
        except (OSError, ValueError, AttributeError):
            return {}

    def is_ours(self, name: str, manifest: Mapping[str, dict] | None = None) -> bool:
        """True when ``name`` in the folder was written by the plugin and has not been changed since."""
        manifest = self.manifest() if manifest is None else manifest
        path = self.folder / name
        if name not in manifest or not path.is_file():
            return False
        try:
            signature = _signature(path)
        except OSError:
            return False
        recorded = manifest[name]
        return (signature["size"] == recorded.get("size")
                and signature["mtime_ns"] == recorded.get("mtime_ns"))

    def _is_input(self, path: Path) -> bool:
        return any(_same_file(path, p) for p in self.inputs if p.exists())

    def claim(self, names: Iterable[str]) -> None:
        """Check, before any work, that the run may write ``names`` into the folder.

        Raises FolderError naming the first file that is the user's (not written by the plugin, or
        changed since) or an input of this run, with what to do about it.
        """
        manifest = self.manifest()
        for name in names:
            path = self.folder / name
            if self._is_input(path):
                raise FolderError(
                    f"{path} is an input of this run and the run would write a file of that name into the output "
                    "folder: copy the input elsewhere or choose another output folder.")
            if path.is_dir():
                raise FolderError(f"The output folder holds a folder named {name}, where the run would write a file: "
                                  "rename it or choose another output folder.")
            if path.exists() and not self.is_ours(name, manifest):
                why = ("was changed after the plugin wrote it" if name in manifest
                       else "was not written by this plugin")
                raise FolderError(
                    f"The output folder already holds {name}, which {why}; the run would replace it. Move or rename "
                    f"that file, or choose another output folder.")
            self._claimed.add(name)

    # -- putting the new files in place -----------------------------------------------------------
    def commit(self, outputs: Mapping[str, str | os.PathLike], *, remove_stale: bool = True) -> None:
        """Move ``outputs`` (name in the folder -> finished file in the working folder) into place.

        With ``remove_stale``, files of earlier runs that this run did not write again are removed, so
        the folder never mixes two runs (only files the manifest lists, unchanged, and no input).
        All or nothing: on any error the folder is restored and FolderError says what happened.
        """
        if self.work is None:
            raise RuntimeError("commit() outside the 'with' block")
        unclaimed = sorted(set(outputs) - self._claimed)
        if unclaimed:
            self.claim(unclaimed)  # a name decided late is checked all the same (nothing is moved yet)
        manifest = self.manifest()
        new_files: dict[str, Path] = {}
        for name, source in outputs.items():
            new_files[name] = Path(source)
            for suffix in SIDECAR_SUFFIXES:
                sidecar = Path(str(source) + suffix)
                if sidecar.exists():
                    new_files[name + suffix] = sidecar
        # What leaves the folder: our old versions of the new files, their sidecars, and stale files.
        leaving = []
        for name in outputs:  # claimed: absent, or the plugin's own and unchanged
            for candidate in (name, *(name + suffix for suffix in SIDECAR_SUFFIXES)):
                if (self.folder / candidate).is_file():
                    leaving.append(candidate)
        if remove_stale:
            for name in manifest:
                if name in new_files or name in leaving:
                    continue
                path = self.folder / name
                if not path.exists():
                    continue
                if self._is_input(path):
                    self.notes.append(f"{name} of an earlier run is an input of this one: kept")
                elif self.is_ours(name, manifest):
                    leaving.append(name)
                    for suffix in SIDECAR_SUFFIXES:
                        if (self.folder / (name + suffix)).is_file() and name + suffix not in manifest:
                            leaving.append(name + suffix)
                elif path.exists() and name not in new_files:
                    self.notes.append(f"{name} was changed since the plugin wrote it: left in place")
        for name in leaving:
            if self._is_input(self.folder / name):
                raise FolderError(f"{self.folder / name} is an input of this run and would be replaced: copy the "
                                  "input elsewhere or choose another output folder.")

        backup = Path(tempfile.mkdtemp(prefix=BACKUP_PREFIX, dir=self.folder))
        moved_out: list[str] = []
        moved_in: list[str] = []
        try:
            for name in leaving:
                os.replace(self.folder / name, backup / name)
                moved_out.append(name)
            for name, source in new_files.items():
                os.replace(source, self.folder / name)
                moved_in.append(name)
            new_manifest = {n: s for n, s in manifest.items() if n not in leaving and (self.folder / n).exists()}
            for name in moved_in:
                new_manifest[name] = _signature(self.folder / name)
            self._write_manifest(new_manifest)
        except OSError as exc:
            problems = self._roll_back(backup, moved_out, moved_in, new_files)
            message = (f"Could not put the results into {self.folder} ({_human(exc)}: {exc.filename or ''}); "
                       "the folder was restored to what it held before the run.")
            if problems:
                message = (f"Could not put the results into {self.folder} ({_human(exc)}), and restoring it failed "
                           f"for {', '.join(problems)}: the previous files are in {backup}.")
            raise FolderError(message) from exc
        shutil.rmtree(backup, ignore_errors=True)

    def _roll_back(self, backup: Path, moved_out: list[str], moved_in: list[str], new_files) -> list[str]:
        problems = []
        for name in reversed(moved_in):
            try:
                os.replace(self.folder / name, new_files[name])
            except OSError:
                with contextlib.suppress(OSError):
                    os.remove(self.folder / name)
        for name in reversed(moved_out):
            try:
                os.replace(backup / name, self.folder / name)
            except OSError:
                problems.append(name)
        if not problems:
            shutil.rmtree(backup, ignore_errors=True)
        return problems

    def _write_manifest(self, files: Mapping[str, dict]) -> None:
        path = self.folder / MANIFEST_NAME
        data = {"written_by": "landslide_plugin", "about": "Files the Landslide mapping plugin wrote here; only "
                "these may be replaced by its next run. Delete this file to protect them all.",
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": dict(sorted(files.items()))}
        fd, tmp = tempfile.mkstemp(prefix=".manifest-", suffix=".part", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                json.dump(data, stream, indent=1)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise

    # -- the lock -------------------------------------------------------------------------------------
    def _lock(self) -> None:
        path = self.folder / LOCK_NAME
        key = os.path.realpath(self.folder)
        with _held_guard:
            if key in _held_locks:
                raise FolderBusy(f"Another run is writing into {self.folder} right now: wait for it to finish or "
                                 "choose another output folder.")
            for _attempt in range(2):
                try:
                    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    if self._lock_is_stale(path):
                        with contextlib.suppress(FileNotFoundError):
                            os.remove(path)
                        continue
                    raise FolderBusy(
                        f"Another run is writing into {self.folder} right now ({self._describe_lock(path)}): wait for "
                        f"it to finish or choose another output folder.") from None
                except OSError as exc:
                    raise FolderError(f"The output folder {self.folder} is not writable ({_human(exc)}): choose a "
                                      "folder you can write to.") from None
                with os.fdopen(fd, "w", encoding="utf-8") as stream:
                    json.dump({"pid": os.getpid(), "host": socket.gethostname(), "token": self._token,
                               "started": time.time()}, stream)
                _held_locks[key] = self._token
                return
            raise FolderBusy(f"Could not lock {self.folder}: another run keeps taking it; try again.")

    def _unlock(self) -> None:
        key = os.path.realpath(self.folder)
        with _held_guard:
            if _held_locks.get(key) != self._token:
                return
            del _held_locks[key]
            path = self.folder / LOCK_NAME
            with contextlib.suppress(OSError, ValueError):
                if json.loads(path.read_text(encoding="utf-8")).get("token") == self._token:
                    os.remove(path)

    @staticmethod
    def _read_lock(path: Path) -> dict:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _lock_is_stale(self, path: Path) -> bool:
        info = self._read_lock(path)
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return True
        if not info:
            return age > 60  # unreadable: a run that died while writing it, or one starting right now
        if age > STALE_LOCK_S:
            return True
        if info.get("host") != socket.gethostname():
            return False  # another machine's run (a shared drive): trust it until it is old
        pid = int(info.get("pid", -1))
        if pid == os.getpid():
            return info.get("token") not in _held_locks.values()  # left by a run of this process that died
        return not _process_alive(pid)

    def _describe_lock(self, path: Path) -> str:
        info = self._read_lock(path)
        if not info:
            return "locked"
        started = time.strftime("%H:%M:%S", time.localtime(float(info.get("started", 0))))
        return f"process {info.get('pid')} on {info.get('host')}, started at {started}"

    def _remove_abandoned_work(self) -> None:
        """Working and backup folders left by a run that died (its lock was stale): ours, so removed."""
        for entry in self.folder.iterdir():
            if entry.is_dir() and entry.name.startswith(WORK_PREFIX):
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.is_dir() and entry.name.startswith(BACKUP_PREFIX):
                # A commit interrupted by a crash: put back what it had not replaced yet.
                for item in entry.iterdir():
                    target = self.folder / item.name
                    if not target.exists():
                        with contextlib.suppress(OSError):
                            os.replace(item, target)
                shutil.rmtree(entry, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":  # pragma: no cover - Windows: ask the kernel through ctypes
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)
        if not handle:
            return False
        ctypes.windll.kernel32.CloseHandle(handle)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
