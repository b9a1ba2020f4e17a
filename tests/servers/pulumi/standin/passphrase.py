"""Pulumi's passphrase secrets provider, as the stand-in CLI and the state fixtures need it.

Format (pulumi/pkg/secrets/passphrase): key = PBKDF2-HMAC-SHA256(passphrase, salt, 1,000,000, 32);
ciphertexts are "v1:<b64 nonce>:<b64 AES-256-GCM ciphertext+tag>"; the salt state is
"v1:<b64 salt>:" followed by the ciphertext of the word "pulumi" (used to check the passphrase).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ITERATIONS = 1_000_000


class WrongPassphrase(Exception):
    """The passphrase does not open this salt state."""


@functools.lru_cache(maxsize=8)
def derive_key(passphrase: str, salt: bytes) -> bytes:
    """PBKDF2 with Pulumi's 1,000,000 rounds (~1 s here), memoised on disk when a cache is given.

    STANDIN_KEY_CACHE names a directory private to one test session: every stand-in process would
    otherwise pay the full derivation again for the same stack.
    """
    cache_dir = os.environ.get("STANDIN_KEY_CACHE")
    entry = None
    if cache_dir:
        entry = Path(cache_dir) / hashlib.sha256(passphrase.encode() + b"\0" + salt).hexdigest()
        if entry.is_file():
            return entry.read_bytes()
    key = hashlib.pbkdf2_hmac("sha256", passphrase.encode(), salt, ITERATIONS, 32)
    if entry is not None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_bytes(key)
    return key


def encrypt(key: bytes, plaintext: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), None)
    return f"v1:{base64.b64encode(nonce).decode()}:{base64.b64encode(sealed).decode()}"


def decrypt(key: bytes, ciphertext: str) -> str:
    version, nonce, sealed = ciphertext.split(":", 2)
    if version != "v1":
        raise ValueError(f"unknown ciphertext version {version!r}")
    return AESGCM(key).decrypt(base64.b64decode(nonce), base64.b64decode(sealed), None).decode()


def new_salt_state(passphrase: str, salt: bytes | None = None) -> tuple[str, bytes]:
    salt = salt or os.urandom(8)
    key = derive_key(passphrase, salt)
    return f"v1:{base64.b64encode(salt).decode()}:{encrypt(key, 'pulumi')}", key


def key_from_salt_state(passphrase: str, state: str) -> bytes:
    version, salt_b64, check = state.split(":", 2)
    if version != "v1":
        raise ValueError(f"unknown salt state version {version!r}")
    key = derive_key(passphrase, base64.b64decode(salt_b64))
    try:
        if decrypt(key, check) != "pulumi":
            raise WrongPassphrase("incorrect passphrase")
    except Exception as exc:  # cryptography raises InvalidTag for a wrong key
        raise WrongPassphrase(
            "incorrect passphrase, please set PULUMI_CONFIG_PASSPHRASE to the correct passphrase"
        ) from exc
    return key
