"""Validation of certificates: the PEM chain parses, the key parses and matches the leaf, and the
leaf is valid now. What Envoy would refuse to serve (RSA under 2048 bits, EC curves other than
P-256/P-384/P-521, other key types) is refused here.

Messages never quote the private key.
"""

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from rest_framework import serializers

from config.errors import ValidationFailed
from gateways.validation.common import run_spec_serializer
from tenants.serializers import StrictSerializer

MAX_CHAIN_CHARS = 64 * 1024
MAX_KEY_CHARS = 16 * 1024
MAX_CHAIN_LENGTH = 16
MIN_RSA_BITS = 2048
EC_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}

CHAIN = "spec.certificatePem"
KEY = "spec.privateKeyPem"


class CertificateSpecSerializer(StrictSerializer):
    """What a client writes. The key is write-only: responses never carry it."""

    certificatePem = serializers.CharField(
        max_length=MAX_CHAIN_CHARS,
        trim_whitespace=False,
        help_text="PEM certificate chain, leaf first",
    )
    privateKeyPem = serializers.CharField(
        max_length=MAX_KEY_CHARS,
        trim_whitespace=False,
        required=False,
        allow_null=True,
        write_only=True,
        help_text="PEM private key of the leaf (unencrypted). Never returned. Omitted: the "
        "stored key is kept; null: no key (the chain can then only be a CA bundle).",
    )


@dataclass(frozen=True)
class CheckedCertificate:
    spec: dict  # {"certificatePem": the chain, re-encoded}
    private_key: str | None  # PKCS#8 PEM, or None
    facts: dict  # what status shows: dnsNames, subject, issuer, validity, fingerprint


def validate_certificate(raw, stored_key: str | None = None, now=None) -> CheckedCertificate:
    """Checks a certificate spec. ``privateKeyPem`` omitted means ``stored_key``; ``null``, none.

    Returns the chain re-encoded (comments and stray text dropped) and the key as PKCS#8 PEM.
    """
    data = run_spec_serializer(CertificateSpecSerializer, raw)
    given = "privateKeyPem" in data
    key_pem = data["privateKeyPem"] if given else stored_key
    chain = _load_chain(data["certificatePem"])
    leaf = chain[0]
    _check_validity(leaf, now or datetime.now(UTC))
    key = None
    if key_pem is not None:
        key = _load_key(key_pem) if given else _load_stored_key(key_pem)
        _check_key_matches(leaf, key, given)
        _check_key_type(key)
    pem = "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in chain)
    key_out = None
    if key is not None:
        key_out = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    return CheckedCertificate({"certificatePem": pem}, key_out, _facts(leaf, key is not None))


def _load_chain(text: str) -> list[x509.Certificate]:
    try:
        chain = x509.load_pem_x509_certificates(text.encode())
    except (ValueError, UnsupportedAlgorithm):
        raise ValidationFailed.one(
            CHAIN,
            "is not a PEM certificate chain: expected one or more "
            "'-----BEGIN CERTIFICATE-----' blocks that parse as X.509 certificates",
        ) from None
    if len(chain) > MAX_CHAIN_LENGTH:
        raise ValidationFailed.one(
            CHAIN, f"holds {len(chain)} certificates; at most {MAX_CHAIN_LENGTH} are allowed"
        )
    return chain


def _load_key(text: str):
    try:
        return serialization.load_pem_private_key(text.encode(), password=None)
    except TypeError:
        raise ValidationFailed.one(
            KEY, "is encrypted with a passphrase; upload the unencrypted key"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValidationFailed.one(
            KEY, "is not a PEM private key (PKCS#8, or RSA or EC in the traditional format)"
        ) from None


def _load_stored_key(text: str):
    """The key already stored was checked when it was written: it always loads."""
    return serialization.load_pem_private_key(text.encode(), password=None)


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_key_matches(leaf: x509.Certificate, key, given: bool) -> None:
    try:
        matches = _public_der(leaf.public_key()) == _public_der(key.public_key())
    except (ValueError, UnsupportedAlgorithm):
        matches = False
    if matches:
        return
    if given:
        raise ValidationFailed.one(
            KEY, "does not match the public key of the first certificate in certificatePem"
        )
    raise ValidationFailed.one(
        CHAIN,
        "the first certificate does not match the stored private key; "
        "send the matching privateKeyPem with it",
    )


def _check_key_type(key) -> None:
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValidationFailed.one(
                KEY, f"is an RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} are required"
            )
        return
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in EC_CURVES:
            raise ValidationFailed.one(
                KEY,
                f"uses the curve {key.curve.name}; ECDSA keys must use "
                + ", ".join(EC_CURVES.values()),
            )
        return
    raise ValidationFailed.one(KEY, "must be an RSA or ECDSA key (the key types Envoy serves)")


def _check_validity(leaf: x509.Certificate, now: datetime) -> None:
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now < not_before:
        raise ValidationFailed.one(
            CHAIN, f"the first certificate is not valid before {_iso(not_before)}"
        )
    if now > not_after:
        raise ValidationFailed.one(CHAIN, f"the first certificate expired on {_iso(not_after)}")


def _facts(leaf: x509.Certificate, has_key: bool) -> dict:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns_names = []
    except ValueError:  # malformed extensions
        raise ValidationFailed.one(
            CHAIN, "the first certificate has malformed extensions"
        ) from None
    return {
        "dnsNames": [_printable(name) for name in dns_names],
        "subject": _printable(leaf.subject.rfc4514_string()),
        "issuer": _printable(leaf.issuer.rfc4514_string()),
        "notBefore": _iso(leaf.not_valid_before_utc),
        "notAfter": _iso(leaf.not_valid_after_utc),
        "fingerprintSha256": hashlib.sha256(
            leaf.public_bytes(serialization.Encoding.DER)
        ).hexdigest(),
        "hasPrivateKey": has_key,
    }


def _printable(text: str) -> str:
    """Control characters escaped: a crafted certificate must not break the JSON column."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
