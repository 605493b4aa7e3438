"""Encryption of secrets at rest (keys, passwords, certificates, kubeconfigs).

``GANTRY_ENCRYPTION_KEYS`` holds comma-separated Fernet keys: the first encrypts, all decrypt,
so keys rotate by putting a new one first and re-saving (``manage.py rotate_encryption`` later).
"""

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
    return _fernet(tuple(settings.GANTRY_ENCRYPTION_KEYS)).encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _fernet(tuple(settings.GANTRY_ENCRYPTION_KEYS)).decrypt(ciphertext.encode()).decode()
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
