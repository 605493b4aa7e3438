"""Certificates and keys made at test time: self-signed, RSA or EC, valid, expired or future."""

import datetime
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID


@cache
def private_key(kind: str = "ec", label: str = ""):
    """One key per (kind, label), made once: RSA keys take a while to generate.

    Kinds: ``ec`` (P-256), ``ec384``, ``rsa`` (2048 bits), ``rsa1024``, ``secp256k1``, ``ed25519``.
    """
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "secp256k1":
        return ec.generate_private_key(ec.SECP256K1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    bits = 1024 if kind == "rsa1024" else 2048
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def key_pem(key, passphrase: bytes | None = None) -> str:
    encryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


def certificate(
    names=("app.example.com",),
    kind: str = "ec",
    label: str = "",
    start_days: float = -1,
    days: float = 365,
) -> tuple[str, str]:
    """(certificate PEM, key PEM): self-signed for ``names``, valid from now + ``start_days``."""
    key = private_key(kind, label)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "ca")])
    start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=start_days)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
    )
    if names:
        san = x509.SubjectAlternativeName([x509.DNSName(name) for name in names])
        builder = builder.add_extension(san, critical=False)
    algorithm = None if kind == "ed25519" else hashes.SHA256()
    cert = builder.sign(key, algorithm)
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem(key)


def fingerprint(cert_pem: str) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return cert.fingerprint(hashes.SHA256()).hex()
