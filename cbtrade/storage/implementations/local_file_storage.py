"""LocalFileStorage: raw data objects as files under a root folder.

Writes are atomic (a temp file in the same folder, flushed and fsynced, then ``os.replace``),
so a crash never leaves a partial object. The conditional write holds an ``fcntl.flock`` on a
per-object lock file while it compares the ETag (a hash of the content) and replaces the file,
so writers in different processes serialise and none loses another's candles. Temp and lock
files start with ``.`` and are ignored by reads and listings.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from cbtrade.errors import (
    StorageError,
    StorageFullError,
    StoragePermissionError,
)
from cbtrade.storage.object_storage import (
    DEFAULT_CONCURRENCY,
    ObjectRawDataStorage,
    PreconditionFailedError,
    SealingPolicy,
)
from cbtrade.storage.path_utility import OBJECT_SUFFIX

_T = TypeVar("_T")


def _etag(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _is_data_file(name: str, suffix: str = OBJECT_SUFFIX) -> bool:
    return name.endswith(suffix) and not name.startswith(".")


@contextmanager
def _os_errors(path: Path) -> Iterator[None]:
    """Turn OSError into the typed StorageError subclass, naming ``path``."""
    try:
        yield
    except PermissionError as exc:
        raise StoragePermissionError(f"{path}: permission denied ({exc.strerror})") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFullError(f"{path}: no space left ({exc.strerror})") from exc
        raise StorageError(f"{path}: {exc.strerror or exc}") from exc


class LocalFileStorage(ObjectRawDataStorage):
    """Raw data as files under ``root`` (for local runs and tests)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        write_attempts: int = 20,
        concurrency: int = DEFAULT_CONCURRENCY,
        sealing: SealingPolicy | None = None,
    ) -> None:
        super().__init__(write_attempts=write_attempts, concurrency=concurrency, sealing=sealing)
        self._root = Path(root)

    @property
    def root(self) -> Path:
        """The folder the keys are resolved against."""
        return self._root

    def _path(self, key: str) -> Path:
        return self._root.joinpath(*key.split("/"))

    async def _run(self, path: Path, func: Callable[[], _T]) -> _T:
        def call() -> _T:
            with _os_errors(path):
                return func()

        return await asyncio.to_thread(call)

    async def _read_object(self, key: str) -> tuple[bytes, str] | None:
        path = self._path(key)
        data = await self._run(path, lambda: _read_if_exists(path))
        return None if data is None else (data, _etag(data))

    async def _write_object(self, key: str, data: bytes, *, etag: str | None) -> None:
        path = self._path(key)
        await self._run(path, lambda: _write_if_unchanged(path, data, etag))

    async def _list_keys(
        self, prefix: str, *, limit: int | None = None, suffix: str = OBJECT_SUFFIX
    ) -> list[str]:
        # Any prefix of a key, as a blob listing takes it: the folder it names or lies in,
        # then the names under that which start with it.
        folder = self._path(
            prefix.rstrip("/") if prefix.endswith("/") else prefix.rpartition("/")[0]
        )

        def walk() -> list[str]:
            keys: list[str] = []
            for dirpath, _dirnames, filenames in os.walk(folder, onerror=_raise):
                relative = Path(dirpath).relative_to(self._root).as_posix()
                keys.extend(
                    key
                    for name in filenames
                    if _is_data_file(name, suffix)
                    and (key := f"{relative}/{name}").startswith(prefix)
                )
                if limit is not None and len(keys) >= limit:
                    return keys[:limit]
            return keys

        return await self._run(folder, walk)

    async def _list_child_names(self, prefix: str) -> list[str]:
        folder = self._path(prefix.rstrip("/"))

        def children() -> list[str]:
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                return []
            return [
                entry.name
                for entry in entries
                if entry.is_dir() and not entry.name.startswith(".") and _holds_data(entry.path)
            ]

        return await self._run(folder, children)

    async def check_health(self) -> None:
        """Check the root exists (creating it if needed) and is writable."""

        def probe() -> None:
            self._root.mkdir(parents=True, exist_ok=True)
            probe_path = self._root / f".health.{uuid.uuid4().hex}.tmp"
            probe_path.write_bytes(b"ok")
            probe_path.unlink()

        await self._run(self._root, probe)

    async def close(self) -> None:
        """Nothing to release: files are opened per operation."""


def _raise(exc: OSError) -> None:
    if not isinstance(exc, FileNotFoundError):
        raise exc


def _holds_data(folder: str) -> bool:
    for _dirpath, _dirnames, filenames in os.walk(folder, onerror=_raise):
        if any(_is_data_file(name) for name in filenames):
            return True
    return False


def _read_if_exists(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write_if_unchanged(path: Path, data: bytes, etag: str | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        current = _read_if_exists(path)
        if (None if current is None else _etag(current)) != etag:
            raise PreconditionFailedError(f"{path} changed since it was read")
        temp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
        try:
            with open(temp, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        os.close(lock_fd)  # releases the flock
