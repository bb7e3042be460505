"""Where the local stack's objects and table items live between processes: one SQLite file and blobs.

moto keeps everything in memory, so a state folder used to be put back into moto at every
start: the start, and its memory, grew with every earlier upload. Instead the buckets' keys
and the table's items are read from here when a request needs them, and written here when a
request that changed them ends (``thumbs/local/moto_internals.py``, seams 13 and 14). A start
then costs the same with 10,000 earlier uploads as with none.

    state.db         objects (bucket, key -> blob, etag, size, metadata) and items (table, key -> item)
    blobs/<name>     object bytes, by content: an upload and its copies share one file. The
                     name is the object's ETag (an MD5) when no other bytes hold it and the file
                     system has hard links, else the SHA-256

SQLite (the standard library's) rather than a file per row: one transaction per request,
an index to list a bucket's keys in order, and a file that other tools can read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL, key TEXT NOT NULL, blob TEXT NOT NULL, etag TEXT NOT NULL, size INTEGER NOT NULL,
    modified TEXT NOT NULL, meta TEXT NOT NULL, PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS items (
    tbl TEXT NOT NULL, hash TEXT NOT NULL, item TEXT NOT NULL, PRIMARY KEY (tbl, hash)
) WITHOUT ROWID;
"""

_ETAG_NAME = re.compile(r"[0-9a-f]{32}(-[0-9]+)?")  # a single-part upload's MD5, or a multipart upload's


class Store:
    """Objects and items of the local stack, safe to use from the server's threads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(root / "state.db", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash loses at most the last commits, never the file
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self.writes = 0  # rows written by this process: a start that writes nothing shows here
        self.item_writes = 0  # of them, table items: records.json is written out again when it moves

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # objects ----------------------------------------------------------------------------------
    def put_blob(self, data: bytes, etag: str) -> str:
        """The name of a blob holding ``data``: one that holds it already, or a new one.

        The first name tried is the object's ETag, which S3 (moto) has computed already: the
        MD5 of a single-part upload. A SHA-256 of every body, only to name its blob, cost
        3.7 ms per 4 MB. An MD5 proves nothing (colliding pairs are easy to make), so a blob
        of that name is shared only if its bytes are the same, and it is created by a hard
        link, which never replaces a file: two writers of one name cannot swap their bytes.
        Otherwise (other bytes under that MD5, or a file system without hard links) the
        SHA-256 names it, as it named every blob before.
        """
        named = etag.strip('"')
        named = named if _ETAG_NAME.fullmatch(named) else ""
        if named and self._holds(self.blobs / named, data):
            return named
        partial = self.blobs / f".{os.getpid()}.{threading.get_ident()}.partial"
        partial.write_bytes(data)
        try:
            if named:
                try:
                    os.link(partial, self.blobs / named)
                    return named
                except FileExistsError:  # written by another request since the look
                    if self._holds(self.blobs / named, data):
                        return named
                except OSError:  # no hard links on this file system
                    pass
            digest = hashlib.sha256(data).hexdigest()
            if not (self.blobs / digest).exists():  # its name is its content: one there holds these bytes
                partial.replace(self.blobs / digest)  # a reader never sees half a blob
            return digest
        finally:
            partial.unlink(missing_ok=True)

    @staticmethod
    def _holds(path: Path, data: bytes) -> bool:
        try:
            return path.stat().st_size == len(data) and path.read_bytes() == data
        except FileNotFoundError:
            return False

    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest

    def put_object(self, bucket: str, key: str, blob: str, etag: str, size: int, modified: str, meta: dict) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?, ?)",
                (bucket, key, blob, etag, size, modified, json.dumps(meta)),
            )
            self.writes += 1

    def delete_object(self, bucket: str, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM objects WHERE bucket = ? AND key = ?", (bucket, key))
            self.writes += 1

    def get_object(self, bucket: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT blob, etag, size, modified, meta FROM objects WHERE bucket = ? AND key = ?", (bucket, key)
            ).fetchone()
        if row is None:
            return None
        blob, etag, size, modified, meta = row
        return {"blob": blob, "etag": etag, "size": size, "modified": modified, "meta": json.loads(meta)}

    def has_object(self, bucket: str, key: str) -> bool:
        with self._lock:
            found = self._db.execute("SELECT 1 FROM objects WHERE bucket = ? AND key = ?", (bucket, key)).fetchone()
        return found is not None

    def object_keys(self, bucket: str) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT key FROM objects WHERE bucket = ? ORDER BY key", (bucket,)).fetchall()
        return [key for (key,) in rows]

    def count_objects(self, bucket: str) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM objects WHERE bucket = ?", (bucket,)).fetchone()
        return int(count)

    # items ------------------------------------------------------------------------------------
    def put_item(self, table: str, hash_key: str, item: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO items VALUES (?, ?, ?)", (table, hash_key, json.dumps(item)))
            self.writes += 1
            self.item_writes += 1

    def delete_item(self, table: str, hash_key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM items WHERE tbl = ? AND hash = ?", (table, hash_key))
            self.writes += 1
            self.item_writes += 1

    def get_item(self, table: str, hash_key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT item FROM items WHERE tbl = ? AND hash = ?", (table, hash_key)).fetchone()
        return json.loads(row[0]) if row else None

    def item_keys(self, table: str) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT hash FROM items WHERE tbl = ? ORDER BY hash", (table,)).fetchall()
        return [key for (key,) in rows]

    def items(self, table: str) -> Iterator[dict[str, Any]]:
        """Every item of ``table``, one at a time (records.json is written from this, not from a scan)."""
        reader = sqlite3.connect(self.root / "state.db")  # its own connection: rows stream, nothing piles up
        try:
            for (item,) in reader.execute("SELECT item FROM items WHERE tbl = ? ORDER BY hash", (table,)):
                yield json.loads(item)
        finally:
            reader.close()

    def count_items(self, table: str) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM items WHERE tbl = ?", (table,)).fetchone()
        return int(count)

    def item_page(self, table: str, status: str | None, offset: int, limit: int) -> list[dict[str, Any]]:
        """A page of ``table``'s items by key, optionally only those whose ``status`` is ``status``."""
        query = "SELECT item FROM items WHERE tbl = ?"
        params: list[Any] = [table]
        if status is not None:
            query += " AND json_extract(item, '$.status.S') = ?"
            params.append(status)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY hash LIMIT ? OFFSET ?", (*params, limit, offset)).fetchall()
        return [json.loads(item) for (item,) in rows]
