"""A persistent, crash-safe key-value cache for model responses (sqlite, WAL, autocommit).

Every response is committed the moment it arrives, so a crash or a kill never pays for a
request twice and a rerun resumes where the last one stopped. Keys are hashes of everything
that determines a response (model identity, messages, sampling parameters).

Location: $SCODER_CACHE_DIR or `.cache/scoder/` at the repository root (git-ignored). The
cache sits outside DVC's outputs on purpose: DVC deletes a stage's outputs before running
it, and the point of the cache is to survive exactly that.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any


def default_cache_dir() -> Path:
    env = os.environ.get("SCODER_CACHE_DIR")
    if env:
        return Path(env)
    from scoder.core.tracking import repo_root

    return repo_root() / ".cache" / "scoder"


def folder_digest(folder: str | os.PathLike) -> str:
    """sha256 over a folder's file names and contents (e.g. adapter weights, which change
    between bootstrap rounds under the same folder name)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(*parts: Any) -> str:
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, path: str | os.PathLike | None = None):
        path = Path(path) if path else default_cache_dir() / "responses.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def get(self, key: str) -> Any | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def has(self, key: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None

    def put(self, key: str, value: Any) -> None:
        text = json.dumps(value, ensure_ascii=False)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", (key, text))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
