"""The Ed25519 keys access tokens are signed with, read from PEM, each named by its thumbprint.

Operators give the edge a bundle of PEM private keys (``CONVEYOR_JWT_SIGNING_KEYS``): the
first signs, the ones after it only verify, so tokens signed before a rotation keep working
until they expire. A key's id (``kid``) is its RFC 7638 JWK thumbprint: derived from the key
itself, so every replica names a key alike without being told, and a new key gets a new id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)
HOW_TO_MAKE_ONE = (
    "make one with `openssl genpkey -algorithm ed25519` (or `conveyor new-signing-key`)"
)


class UnusableSigningKeys(ValueError):
    """The PEM given holds no usable key; the message says which one and what to do."""


def _base64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    # The public half as an RFC 8037 JWK, without its id: what JWKS publishes.
    public_jwk: dict[str, str]
    kid: str

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @classmethod
    def of(cls, private: Ed25519PrivateKey) -> SigningKey:
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        jwk = {"crv": "Ed25519", "kty": "OKP", "x": _base64url(raw)}
        # RFC 7638: the required members, sorted, without whitespace, hashed with SHA-256.
        canonical = json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode()
        return cls(private, jwk, _base64url(hashlib.sha256(canonical).digest()))


def read_signing_keys(pem: str) -> tuple[SigningKey, ...]:
    """Every key of a PEM bundle, in its order; UnusableSigningKeys for anything else."""
    blocks = [match.group(0) for match in _PEM_BLOCK.finditer(pem)]
    if not blocks:
        raise UnusableSigningKeys(
            f"CONVEYOR_JWT_SIGNING_KEYS holds no PEM private key; {HOW_TO_MAKE_ONE}"
        )
    keys = []
    for place, block in enumerate(blocks, start=1):
        try:
            private = serialization.load_pem_private_key(block.encode(), password=None)
        except (ValueError, TypeError) as error:
            raise UnusableSigningKeys(
                f"key {place} of CONVEYOR_JWT_SIGNING_KEYS is not an unencrypted PEM private "
                f"key; {HOW_TO_MAKE_ONE}"
            ) from error
        if not isinstance(private, Ed25519PrivateKey):
            raise UnusableSigningKeys(
                f"key {place} of CONVEYOR_JWT_SIGNING_KEYS is not an Ed25519 key, the only "
                f"kind access tokens are signed with; {HOW_TO_MAKE_ONE}"
            )
        keys.append(SigningKey.of(private))
    if len({key.kid for key in keys}) < len(keys):
        raise UnusableSigningKeys("CONVEYOR_JWT_SIGNING_KEYS holds the same key twice")
    return tuple(keys)


def new_signing_key_pem() -> str:
    """A fresh Ed25519 private key in PEM, as `openssl genpkey -algorithm ed25519` writes it."""
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
