"""Encryption of provider keys at rest.

Fernet (AES-128-CBC + HMAC-SHA256) through MultiFernet for rotation. Each master key in
DAC_ENCRYPTION_KEYS (newest first) is stretched with HKDF into a per-org key, so a ciphertext
only decrypts in the org it was written for: a row copied into another org fails. Nothing here
ever logs or raises with a plaintext.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class VaultError(Exception):
    """A stored key could not be decrypted (wrong org, removed master key, or tampering)."""


def generate_master_key() -> str:
    return Fernet.generate_key().decode()


def _master_bytes(master: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(master.encode())
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != 32:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("DAC_ENCRYPTION_KEYS holds a value that is not a Fernet key (32 url-safe base64 bytes).")
    return raw


@lru_cache(maxsize=4096)
def _org_fernet(master: str, org_id: int) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"dac-provider-keys", info=f"org:{org_id}".encode()).derive(
        _master_bytes(master)
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _fernets(org_id: int) -> list[Fernet]:
    return [_org_fernet(master, org_id) for master in settings.DAC_ENCRYPTION_KEYS]


def encrypt(plaintext: str, *, org_id: int) -> str:
    return MultiFernet(_fernets(org_id)).encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str, *, org_id: int) -> str:
    try:
        return MultiFernet(_fernets(org_id)).decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise VaultError("The stored key cannot be decrypted with the configured master keys for this organization.") from None


def is_under_newest_key(ciphertext: str, *, org_id: int) -> bool:
    try:
        _fernets(org_id)[0].decrypt(ciphertext.encode())
        return True
    except InvalidToken:
        return False


def rotate(ciphertext: str, *, org_id: int) -> str:
    """Re-encrypt under the newest master key (raises VaultError if no master key opens it)."""
    try:
        return MultiFernet(_fernets(org_id)).rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise VaultError("The stored key cannot be decrypted with the configured master keys for this organization.") from None


def mask(plaintext: str) -> str:
    """First 8 and last 4 characters; short keys show less so the mask never reveals them."""
    if len(plaintext) <= 16:
        return plaintext[:2] + "…" + plaintext[-2:]
    return f"{plaintext[:8]}…{plaintext[-4:]}"
