"""Real signing keys, JSON Web Key Sets and JSON Web Tokens for tests (RS256 and ES256)."""

import base64
import json
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(value: int, length: int | None = None) -> str:
    length = length or (value.bit_length() + 7) // 8
    return b64url(value.to_bytes(length, "big"))


class Key:
    """An RSA (RS256) or P-256 (ES256) signing key with its public JWK."""

    def __init__(self, kind: str, kid: str):
        self.kind, self.kid = kind, kid
        if kind == "RSA":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            numbers = self.private.public_key().public_numbers()
            self.jwk = {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
                        "n": _int(numbers.n), "e": _int(numbers.e)}  # fmt: skip
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            numbers = self.private.public_key().public_numbers()
            self.jwk = {"kty": "EC", "kid": kid, "alg": "ES256", "use": "sig", "crv": "P-256",
                        "x": _int(numbers.x, 32), "y": _int(numbers.y, 32)}  # fmt: skip

    def sign(self, claims: dict) -> str:
        header = {"alg": "RS256" if self.kind == "RSA" else "ES256", "typ": "JWT",
                  "kid": self.kid}  # fmt: skip
        signing_input = ".".join(
            b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        ).encode()
        if self.kind == "RSA":
            signature = self.private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = decode_dss_signature(self.private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signing_input.decode() + "." + b64url(signature)


def jwks(*keys: Key) -> str:
    return json.dumps({"keys": [key.jwk for key in keys]})


def claims(issuer: str, audience: str, lifetime: int = 3600, **extra) -> dict:
    # An hour: tokens made when a test module is collected must outlive a slow, loaded run.
    now = int(time.time())
    return {"iss": issuer, "aud": audience, "iat": now, "exp": now + lifetime, **extra}
