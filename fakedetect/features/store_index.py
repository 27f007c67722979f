"""The feature store's index: image key -> (shard, row, row checksum), one SQLite file per backbone
folder (`index.sqlite`), next to the shards it describes (docs/feature_store.md "The index").

SQLite (the standard library's) because every update is one transaction: a process killed
mid-update leaves the previous state (its rollback journal is undone on the next open), and a
lookup of 10,000 keys reads a few B-tree pages, not a file of every key. Writers take the
folder's `index.lock` (the operating system's lock, so a killed holder releases it) around every
change; readers rely on SQLite's own locking.

The index is never trusted blindly: every open compares the shards it lists (name, size,
mtime) with the shards on disk (one directory scan, no file opened). A new shard is verified
(re-hashed against its name) and indexed; a shard gone or changed behind its back, or an
unreadable index, makes it rebuild from the shards.
"""
from __future__ import annotations

import logging
import os
import signal
import sqlite3
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from filelock import FileLock

from fakedetect.features import shard_files

log = logging.getLogger("featurestore")
INDEX = "index.sqlite"
LOCK = "index.lock"
VERSION = "2"  # 2: vectorised row checksums
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shards (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, size INTEGER NOT NULL,
                                   mtime_ns INTEGER NOT NULL, rows INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS keys (key BLOB PRIMARY KEY, shard INTEGER NOT NULL, row INTEGER NOT NULL,
                                 checksum INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS keys_by_shard ON keys (shard);
"""
KILL_ENV = "FAKEDETECT_STORE_TEST_KILL"  # tests only: SIGKILL this process at a named point
LOOKUP_CHUNK = 500  # keys per SELECT ... IN (...): under SQLite's parameter limit



def test_kill(point: str) -> None:
    """Kill this process at `point` when the tests ask for it (tests/test_store_index.py)."""
    if os.environ.get(KILL_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


# A verified shard as the index needs it: (keys, rows) or None when it does not verify.
Reader = Callable[[Path], "tuple[np.ndarray, np.ndarray] | None"]


class Index:
    """One backbone folder's index."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / INDEX
        self.lock = FileLock(folder / LOCK)
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            try:
                db.executescript(SCHEMA)
                version = db.execute("SELECT value FROM meta WHERE name = 'version'").fetchone()
                if version is None:
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (VERSION,))
                elif version[0] != VERSION:
                    raise sqlite3.DatabaseError(f"index version {version[0]}")
            except sqlite3.DatabaseError:
                db.close()
                raise
            self._db = db
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic change, under the folder's index lock."""
        with self.lock:
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def indexed(self) -> dict[str, tuple[int, int]]:
        """The shards the index lists: name -> (size, mtime_ns)."""
        return {name: (size, mtime) for name, size, mtime in
                self._connect().execute("SELECT name, size, mtime_ns FROM shards")}

    def sync(self, read: Reader) -> None:
        """Bring the index in line with the shards on disk: index new ones (each verified by `read`),
        rebuild everything when a listed shard is gone or changed, or the index is unreadable."""
        try:
            if self.indexed() == shard_files.listing(self.folder):
                return
        except sqlite3.DatabaseError:
            pass
        with self.lock:
            try:
                listed = self.indexed()
            except sqlite3.DatabaseError as error:
                log.warning("%s is unreadable (%s): rebuilding it from the shards", self.path, error)
                self.close()
                for leftover in (self.path, self.path.with_name(INDEX + "-journal")):
                    leftover.unlink(missing_ok=True)
                listed = self.indexed()
            on_disk = shard_files.listing(self.folder)
            stale = [name for name, stat in listed.items() if on_disk.get(name) != stat]
            if stale:
                log.warning("%s: %d indexed shards are gone or changed: rebuilding the index", self.folder, len(stale))
                with self.transaction() as db:
                    db.execute("DELETE FROM keys")
                    db.execute("DELETE FROM shards")
                listed = {}
            for name in sorted(set(on_disk) - set(listed)):
                shard = read(self.folder / name)
                if shard is not None:
                    self.add(name, *shard)

    def add(self, name: str, keys: np.ndarray, rows: np.ndarray) -> None:
        """Index one verified shard (its file in place); a key another shard holds keeps that shard."""
        self.replace(name, keys, rows, [])

    def replace(self, name: str, keys: np.ndarray, rows: np.ndarray, old: list[str]) -> None:
        """In one transaction: forget the shards `old` and index the shard `name` (compaction)."""
        st = (self.folder / name).stat()
        checksums = shard_files.row_checksums(keys, rows)
        keys_blob = keys.tolist()  # the hex text's bytes
        with self.transaction() as db:
            for gone in [*old, name]:
                db.execute("DELETE FROM keys WHERE shard IN (SELECT id FROM shards WHERE name = ?)", (gone,))
                db.execute("DELETE FROM shards WHERE name = ?", (gone,))
            shard = db.execute("INSERT INTO shards (name, size, mtime_ns, rows) VALUES (?, ?, ?, ?)",
                               (name, st.st_size, st.st_mtime_ns, len(keys))).lastrowid
            db.executemany("INSERT OR IGNORE INTO keys VALUES (?, ?, ?, ?)",
                           zip(keys_blob, [shard] * len(keys), range(len(keys)), checksums.tolist()))
            test_kill("mid-index")  # tests: a process killed inside the transaction

    def drop(self, names: Iterable[str]) -> None:
        """Forget shards (set aside or compacted away); their keys are no longer found."""
        with self.transaction() as db:
            for name in names:
                db.execute("DELETE FROM keys WHERE shard IN (SELECT id FROM shards WHERE name = ?)", (name,))
                db.execute("DELETE FROM shards WHERE name = ?", (name,))

    def lookup(self, wanted: Iterable[str]) -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
        """Where the wanted keys are: shard name -> (keys, rows, checksums), in row order."""
        db = self._connect()
        names = dict(db.execute("SELECT id, name FROM shards"))
        blobs = sorted(k.encode() for k in wanted)  # in key order: each query walks one stretch of the B-tree
        hits: list[tuple[bytes, int, int, int]] = []
        for start in range(0, len(blobs), LOOKUP_CHUNK):
            chunk = blobs[start:start + LOOKUP_CHUNK]
            query = f"SELECT key, shard, row, checksum FROM keys WHERE key IN ({','.join('?' * len(chunk))})"
            hits.extend(db.execute(query, chunk))
        if not hits:
            return {}
        keys, shards, rows, checksums = zip(*hits)
        shards, rows, checksums = np.array(shards), np.array(rows, np.int64), np.array(checksums, np.int64)
        order = np.lexsort((rows, shards))
        found = {}
        for shard in np.unique(shards):
            at = order[shards[order] == shard]
            found[names[int(shard)]] = ([keys[i].decode() for i in at], rows[at], checksums[at])
        return found

    def counts(self) -> tuple[int, int]:
        """(keys, shards) indexed."""
        db = self._connect()
        return (db.execute("SELECT COUNT(*) FROM keys").fetchone()[0],
                db.execute("SELECT COUNT(*) FROM shards").fetchone()[0])

    def rows_of(self, name: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The keys the index takes from one shard: (keys, rows, checksums), in row order."""
        hits = self._connect().execute(
            "SELECT key, row, checksum FROM keys WHERE shard = (SELECT id FROM shards WHERE name = ?) ORDER BY row",
            (name,)).fetchall()
        return ([k.decode() for k, _, _ in hits], np.array([r for _, r, _ in hits], np.int64),
                np.array([c for _, _, c in hits], np.int64))

    def shard_rows(self) -> dict[str, int]:
        """Indexed shards: name -> keys the index takes from it (0 for a shard whose every key
        another shard holds)."""
        return dict(self._connect().execute(
            "SELECT name, (SELECT COUNT(*) FROM keys WHERE keys.shard = shards.id) FROM shards"))
