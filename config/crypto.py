"""Encryption of secrets at rest (keys, passwords, certificates, kubeconfigs).

``GANTRY_ENCRYPTION_KEYS`` holds comma-separated Fernet keys: the first encrypts, all decrypt,
so keys rotate by putting a new one first and re-saving (``manage.py rotate_encryption`` later).
"""

import zlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as error:
        raise ImproperlyConfigured(
            "GANTRY_ENCRYPTION_KEYS must be url-safe base64 Fernet keys of 32 bytes "
            "(make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())')"
        ) from error


def encrypt(plaintext: str) -> str:
    return encrypt_bytes(plaintext.encode())


def decrypt(ciphertext: str) -> str:
    return decrypt_bytes(ciphertext).decode()


def encrypt_bytes(data: bytes) -> str:
    return _fernet(tuple(settings.GANTRY_ENCRYPTION_KEYS)).encrypt(data).decode()


def decrypt_bytes(ciphertext: str) -> bytes:
    try:
        return _fernet(tuple(settings.GANTRY_ENCRYPTION_KEYS)).decrypt(ciphertext.encode())
    except InvalidToken:
        raise ImproperlyConfigured(
            "a stored secret cannot be decrypted with GANTRY_ENCRYPTION_KEYS (was a key removed?)"
        ) from None


class EncryptedTextField(models.TextField):
    """A text column stored encrypted; Python code sees plaintext."""

    def from_db_value(self, value, expression, connection):
        return None if value is None else decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return None if value is None else encrypt(value)


COMPRESSED = "z:"  # never the start of a Fernet token (base64 of a 0x80 version byte: "gAAAAA")


class CompressedEncryptedTextField(EncryptedTextField):
    """For large texts (compiled configs): zlib-compressed, then encrypted. A 10,000-route
    config is 2.6 MB of JSON and about a tenth of that compressed, so the row written per
    change and read by every xDS server is a tenth. Values stored plainly encrypted (before
    this field) still read. Compressing before encrypting can reveal through the stored
    length whether guessed text is in the config; only the database sees that length (the
    API shows the plaintext ``size``), and it holds one gateway's config only."""

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        if value.startswith(COMPRESSED):
            return zlib.decompress(decrypt_bytes(value[len(COMPRESSED) :])).decode()
        return decrypt(value)

    def get_prep_value(self, value):
        value = models.TextField.get_prep_value(self, value)
        if value is None:
            return None
        return COMPRESSED + encrypt_bytes(zlib.compress(value.encode(), 1))
