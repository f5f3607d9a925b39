"""Ed25519 signatures over site manifests and model digests: the registry signs, edge
agents configured with its public key verify.

What is signed is spelled out here, field by field, rather than "the JSON": two
programs that parse and re-serialise a manifest need not produce the same bytes, but
they always agree on these lines.

    model:    millrace-model-v1 / name / version / sha256 / size
    manifest: millrace-manifest-v1 / site / updated_at / one line per model entry

``cryptography`` is imported only when a key is loaded, so a service that never signs
or verifies does not need it.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING

from millrace_common.contracts import AliasTarget, SiteManifest
from millrace_common.errors import IntegrityError, InvalidInput

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )


class SignatureInvalid(IntegrityError):
    """A manifest or model that is unsigned, or signed by another key, or altered."""


def model_payload(*, name: str, version: int, sha256: str, size: int) -> bytes:
    return "\n".join(["millrace-model-v1", name, str(version), sha256, str(size)]).encode()


def manifest_payload(manifest: SiteManifest) -> bytes:
    lines = ["millrace-manifest-v1", manifest.site, manifest.updated_at.isoformat()]
    lines += [
        " ".join(
            [
                t.name,
                t.alias,
                str(t.version),
                t.sha256,
                str(t.size),
                t.artifact_uri,
                t.signature or "",
            ]
        )
        for t in manifest.models
    ]
    return "\n".join(lines).encode()


def _target_payload(target: AliasTarget) -> bytes:
    return model_payload(
        name=target.name, version=target.version, sha256=target.sha256, size=target.size
    )


class Signer:
    """The registry's side: holds the private key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def from_pem_file(cls, path: str | Path) -> Signer:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            key = load_pem_private_key(_read(path, what="signing key"), password=None)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"{path} is not an unencrypted PEM private key: {exc}", field="signing_key_file"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidInput(f"{path} is not an Ed25519 private key", field="signing_key_file")
        return cls(key)

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self._key.sign(payload)).decode()

    def sign_target(self, target: AliasTarget) -> AliasTarget:
        return target.model_copy(update={"signature": self.sign(_target_payload(target))})

    def sign_manifest(self, manifest: SiteManifest) -> SiteManifest:
        """Every model entry signed, then the manifest (which covers the entries' signatures)."""
        signed = manifest.model_copy(
            update={"models": [self.sign_target(t) for t in manifest.models], "signature": None}
        )
        return signed.model_copy(update={"signature": self.sign(manifest_payload(signed))})

    def public_pem(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return self._key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def ensure_key_pair(private: Path) -> Path:
    """An Ed25519 signing key at ``private`` (mode 600) and its public key beside it
    (``<name>.pub.pem``), made if missing; the public key's path."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    public = private.with_name(private.stem + ".pub.pem")
    if not private.exists():
        private.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        private.touch(mode=0o600)
        private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    if not public.exists():
        public.write_bytes(Signer.from_pem_file(private).public_pem())
    return public


class Verifier:
    """A site's side: holds the registry's public key."""

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key

    @classmethod
    def from_pem_file(cls, path: str | Path) -> Verifier:
        return cls.from_pem(_read(path, what="trusted key"), source=str(path))

    @classmethod
    def from_pem(cls, pem: bytes, *, source: str = "the key") -> Verifier:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            key = load_pem_public_key(pem)
        except ValueError as exc:
            raise InvalidInput(
                f"{source} is not a PEM public key: {exc}", field="trusted_key_file"
            ) from None
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidInput(f"{source} is not an Ed25519 public key", field="trusted_key_file")
        return cls(key)

    def verify(self, payload: bytes, signature: str | None, *, what: str) -> None:
        from cryptography.exceptions import InvalidSignature

        if not signature:
            raise SignatureInvalid(f"{what} is not signed")
        try:
            self._key.verify(base64.b64decode(signature, validate=True), payload)
        except (InvalidSignature, ValueError):
            raise SignatureInvalid(
                f"{what} has a bad signature (not the registry's key, or altered)"
            ) from None

    def verify_manifest(self, manifest: SiteManifest) -> None:
        self.verify(
            manifest_payload(manifest),
            manifest.signature,
            what=f"the manifest of site '{manifest.site}'",
        )

    def verify_target(self, target: AliasTarget) -> None:
        self.verify(
            _target_payload(target), target.signature, what=f"{target.name} v{target.version}"
        )


def _read(path: str | Path, *, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInput(
            f"cannot read the {what} {path}: {exc.strerror}", field="key_file"
        ) from None
