"""The audit chain's HMAC keys: a keyring file outside the audit directory, or keys from settings.

Every record names the id of the key that sealed it, so keys can rotate while old records stay
verifiable: the keyring keeps every key it ever had, the newest signs. Where several hosts share
one PostgreSQL log they must seal with the same key: give it to each as SOPHIA_AUDIT_KEY (and
earlier ones as SOPHIA_AUDIT_PREVIOUS_KEYS) instead of a keyring file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .paths import write_atomically

# A supplied key is text; fewer characters than this cannot hold 128 bits from any alphabet.
MIN_SUPPLIED_KEY_CHARS = 32
_KEY_BYTES = 32


@dataclass(frozen=True)
class AuditKey:
    key_id: str
    secret: bytes = b""

    def seal(self, message: bytes) -> str:
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:  # the secret never reaches a log line or a traceback
        return f"AuditKey(key_id={self.key_id!r})"


def supplied_key_id(secret: bytes) -> str:
    """A key id derived from the key, so hosts given the same key agree on its id without talking."""
    return "s-" + hashlib.sha256(b"sophia audit key id\0" + secret).hexdigest()[:14]


class KeyringError(OSError):
    """The keyring file exists but cannot be used (unreadable, not JSON, wrong shape)."""


class AuditKeyring:
    """Keys by id; `current()` is the one that seals new records (created on first use)."""

    def __init__(self, path: Path | None = None, supplied: list[bytes] | None = None):
        if path is None and not supplied:
            raise ValueError("an audit keyring needs a file path or supplied keys")
        self.path = path
        self.supplied = bool(supplied)
        self._keys: dict[str, AuditKey] = {}
        self._current: AuditKey | None = None
        self._stamp: tuple[int, int] | None = None
        self._missing: set[str] = set()
        if supplied:
            keys = [AuditKey(supplied_key_id(s), s) for s in supplied]
            self._keys = {k.key_id: k for k in keys}
            self._current = keys[0]

    def exists(self) -> bool:
        """True once a key exists (the first record created it, or settings supply one)."""
        return self.supplied or (self.path is not None and self.path.exists())

    def current(self) -> AuditKey:
        """The sealing key, reloading the file when it changed (a rotation by another process)."""
        if self.supplied:
            assert self._current is not None
            return self._current
        assert self.path is not None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._create()
            st = os.stat(self.path)
        if (st.st_ino, st.st_mtime_ns) != self._stamp or self._current is None:
            self._load(st)
        assert self._current is not None
        return self._current

    def get(self, key_id: str) -> AuditKey | None:
        """The key with this id, or None when this keyring never held it."""
        if (key_id not in self._keys and key_id not in self._missing and not self.supplied
                and self.path is not None and self.path.exists()):
            self._load(os.stat(self.path))
            if key_id not in self._keys:
                self._missing.add(key_id)  # one reload per unknown id, however many records name it
        return self._keys.get(key_id)

    def can_create(self) -> bool:
        """Whether the first record could create the key (cheap: no file is written)."""
        if self.supplied or self.path is None:
            return True
        if self.path.exists():
            return os.access(self.path, os.R_OK)
        parent = self.path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        return os.access(parent, os.W_OK | os.X_OK)

    def rotate(self) -> tuple[str | None, AuditKey]:
        """Add a new sealing key; older keys stay for verification. Returns (old id, new key)."""
        if self.supplied or self.path is None:
            raise KeyringError(
                "the audit key comes from SOPHIA_AUDIT_KEY: set a new one there and move the old one "
                "to SOPHIA_AUDIT_PREVIOUS_KEYS on every host"
            )
        with self._file_lock():
            old = self.current().key_id if self.path.exists() else None
            entries = self._read_entries() if self.path.exists() else []
            fresh = _new_entry()
            entries.append(fresh)
            self._write_entries(entries, replace=True)
            self._load(os.stat(self.path))
        return old, self.current()

    # -- the file ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        assert self.path is not None
        _private_dir(self.path.parent)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _create(self) -> None:
        with self._file_lock():
            if not self.path or self.path.exists():
                return
            self._write_entries([_new_entry()], replace=False)

    def _write_entries(self, entries: list[dict[str, object]], *, replace: bool) -> None:
        assert self.path is not None
        body = json.dumps({"version": 1, "keys": entries}, indent=1).encode()
        write_atomically(self.path, body, replace=replace)

    def _read_entries(self) -> list[dict[str, object]]:
        assert self.path is not None
        try:
            data = json.loads(self.path.read_bytes())
            entries = data["keys"]
            if not isinstance(entries, list) or not entries:
                raise ValueError("no keys")
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyringError(f"the audit keyring {self.path} is unreadable ({type(exc).__name__})") from None
        return entries

    def _load(self, st: os.stat_result) -> None:
        keys: dict[str, AuditKey] = {}
        newest: AuditKey | None = None
        for entry in self._read_entries():
            try:
                key = AuditKey(str(entry["id"]), bytes.fromhex(str(entry["key"])))
            except (KeyError, ValueError, TypeError):
                raise KeyringError(f"the audit keyring {self.path} has a malformed key") from None
            keys[key.key_id] = key
            newest = key
        self._keys, self._current, self._stamp = keys, newest, (st.st_ino, st.st_mtime_ns)


def _new_entry() -> dict[str, object]:
    return {"id": "k-" + secrets.token_hex(7), "key": secrets.token_hex(_KEY_BYTES), "created": round(time.time(), 3)}


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
