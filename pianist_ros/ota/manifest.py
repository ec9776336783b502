"""Signed version manifests: canonical JSON, ed25519 signatures, expiry and replay checks.

A manifest is an envelope in the shape of a TUF metadata file::

    {"signed": {"_type": "pianist-ota-manifest", "spec_version": 1,
                "version": "1.0.1", "git_hash": "<40 hex>", "sequence": 7,
                "issued_at": "2026-01-01T00:00:00Z", "expires": "2026-01-08T00:00:00Z",
                "rollout_percent": 100},
     "signatures": [{"keyid": "<sha256 of the raw public key>", "sig": "<hex>"}]}

The signature covers the canonical form of ``signed`` (sorted keys, no spaces,
UTF-8). Verification is pure: no I/O, the caller passes the bytes, the pinned key,
the current time and the last accepted sequence (python-tuf's trusted_metadata_set
keeps the same separation).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
import hashlib
import json
import os
import re
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from packaging.version import InvalidVersion
from packaging.version import Version

from pianist_ros.ota.errors import ExpiredError
from pianist_ros.ota.errors import KeyLoadError
from pianist_ros.ota.errors import ManifestError
from pianist_ros.ota.errors import ReplayError
from pianist_ros.ota.errors import SignatureError

MANIFEST_TYPE = 'pianist-ota-manifest'
SPEC_VERSION = 1
_HASH_RE = re.compile(r'^(?:[0-9a-f]{40}|[0-9a-f]{64})$')
_MAX_VERSION_LEN = 64
_MAX_SIGNATURES = 16


@dataclass(frozen=True)
class Manifest:
    """A verified manifest's signed fields."""

    version: str
    git_hash: str
    sequence: int
    issued_at: float
    expires: float
    rollout_percent: float
    digest: str

    @property
    def parsed_version(self) -> Version:
        """Return the version as a :class:`packaging.version.Version`."""
        return Version(self.version)


def canonical_json(document: Any) -> bytes:
    """Return the canonical bytes that are signed: sorted keys, compact, UTF-8.

    :raises ManifestError: the document holds floats (no canonical form) or bad types.
    """
    _reject_floats(document)
    try:
        return json.dumps(document, sort_keys=True, separators=(',', ':'),
                          ensure_ascii=False, allow_nan=False).encode('utf-8')
    except (TypeError, ValueError) as exc:
        raise ManifestError(f'cannot canonicalise: {exc}') from exc


def _reject_floats(value: Any) -> None:
    if isinstance(value, float):
        raise ManifestError('floats are not allowed in signed data')
    if isinstance(value, dict):
        for item in value.values():
            _reject_floats(item)
    elif isinstance(value, list):
        for item in value:
            _reject_floats(item)


def key_id(public_key: Ed25519PublicKey) -> str:
    """Return the key id: hex SHA-256 of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """Return the raw public key as 64 hex characters (what goes into config)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def load_public_key(spec: str) -> Ed25519PublicKey:
    """Load the pinned key from a file path (PEM or raw) or inline hex / base64 text.

    :raises KeyLoadError: not an ed25519 public key.
    """
    data: bytes
    spec = spec.strip()
    if not spec:
        raise KeyLoadError('no public key configured')
    if _looks_like_path(spec) and not os.path.exists(spec):
        raise KeyLoadError(f'public key file {spec} does not exist')
    if os.path.isfile(spec):
        try:
            with open(spec, 'rb') as handle:
                data = handle.read(4096)
        except OSError as exc:
            raise KeyLoadError(f'cannot read public key {spec}: {exc}') from exc
    else:
        data = spec.encode('ascii', 'replace')
    try:
        if b'-----BEGIN' in data:
            key = serialization.load_pem_public_key(data)
            if not isinstance(key, Ed25519PublicKey):
                raise KeyLoadError('PEM key is not an ed25519 public key')
            return key
        return Ed25519PublicKey.from_public_bytes(_decode_raw(data.strip()))
    except KeyLoadError:
        raise
    except (ValueError, TypeError) as exc:
        raise KeyLoadError(f'invalid ed25519 public key: {exc}') from exc


def _looks_like_path(spec: str) -> bool:
    """Return whether ``spec`` names a file rather than inline key text.

    Base64 may contain ``/`` too, so only a leading ``/``, ``./``, ``../`` or ``~`` or a
    key-file extension counts.
    """
    return (spec.startswith(('/', './', '../', '~'))
            or spec.lower().endswith(('.pub', '.pem', '.key')))


def _decode_raw(data: bytes) -> bytes:
    if len(data) == 32:
        return data
    if len(data) == 64:
        try:
            return bytes.fromhex(data.decode('ascii'))
        except ValueError:
            pass
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyLoadError('public key is neither 32 raw bytes, hex nor base64') from exc
    if len(raw) != 32:
        raise KeyLoadError(f'public key must be 32 bytes, got {len(raw)}')
    return raw


def generate_private_key() -> Ed25519PrivateKey:
    """Return a fresh ed25519 signing key."""
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """Return ``key`` as unencrypted PKCS#8 PEM (protect the file, not the bytes)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_private_key(path: str) -> Ed25519PrivateKey:
    """Load an ed25519 private key from a PEM file.

    :raises KeyLoadError: unreadable or not ed25519.
    """
    try:
        with open(path, 'rb') as handle:
            key = serialization.load_pem_private_key(handle.read(16384), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyLoadError(f'cannot load private key {path}: {exc}') from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyLoadError(f'{path} is not an ed25519 private key')
    return key


def format_time(epoch: float) -> str:
    """Return ``epoch`` as an ISO 8601 UTC string with a ``Z`` suffix."""
    return datetime.fromtimestamp(int(epoch), tz=timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def parse_time(text: Any, name: str) -> float:
    """Parse an ISO 8601 UTC time (``Z`` or an offset) to epoch seconds.

    :raises ManifestError: not a string or not a time with a zone.
    """
    if not isinstance(text, str) or len(text) > 40:
        raise ManifestError(f'{name} must be an ISO 8601 time string')
    try:
        # Python 3.10's fromisoformat does not accept 'Z'.
        when = datetime.fromisoformat(text[:-1] + '+00:00' if text.endswith('Z') else text)
    except ValueError as exc:
        raise ManifestError(f'{name} is not an ISO 8601 time: {text!r}') from exc
    if when.tzinfo is None:
        raise ManifestError(f'{name} must carry a time zone (use Z)')
    return when.timestamp()


def build_signed(version: str, git_hash: str, sequence: int, issued_at: float,
                 expires: float, rollout_percent: int = 100) -> dict:
    """Return a ``signed`` section, checked the same way a device will check it.

    :raises ManifestError: a field is invalid.
    """
    signed = {
        '_type': MANIFEST_TYPE, 'spec_version': SPEC_VERSION, 'version': version,
        'git_hash': git_hash, 'sequence': sequence, 'issued_at': format_time(issued_at),
        'expires': format_time(expires), 'rollout_percent': rollout_percent,
    }
    _check_signed(signed)
    return signed


def sign(signed: dict, private_key: Ed25519PrivateKey) -> dict:
    """Return the envelope ``{"signed": ..., "signatures": [...]}`` for ``signed``."""
    signature = private_key.sign(canonical_json(signed))
    return {'signed': signed,
            'signatures': [{'keyid': key_id(private_key.public_key()),
                            'sig': signature.hex()}]}


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    # Duplicate keys let two parsers read different documents from the same signed bytes.
    out = {}
    for key, value in pairs:
        if key in out:
            raise ManifestError(f'duplicate key {key!r}')
        out[key] = value
    return out


def parse_envelope(raw: bytes) -> dict:
    """Parse manifest bytes into the envelope dict, structurally checked.

    :raises ManifestError: not UTF-8 JSON, or not an envelope.
    """
    try:
        document = json.loads(raw.decode('utf-8'), object_pairs_hook=_no_duplicates,
                              parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ManifestError(f'manifest is not valid JSON: {exc}') from exc
    if not isinstance(document, dict):
        raise ManifestError('manifest must be a JSON object')
    if not isinstance(document.get('signed'), dict):
        raise ManifestError('manifest has no "signed" object')
    return document


def _refuse_constant(name: str) -> Any:
    raise ManifestError(f'{name} is not allowed in a manifest')


def _check_signed(signed: dict) -> None:
    if signed.get('_type') != MANIFEST_TYPE:
        raise ManifestError(f'"_type" must be {MANIFEST_TYPE!r}')
    if signed.get('spec_version') != SPEC_VERSION:
        raise ManifestError(f'unsupported spec_version {signed.get("spec_version")!r}')
    required = ('version', 'git_hash', 'sequence', 'issued_at', 'expires')
    missing = [name for name in required if name not in signed]
    if missing:
        raise ManifestError('missing fields: ' + ', '.join(missing))
    version = signed['version']
    if not isinstance(version, str) or len(version) > _MAX_VERSION_LEN:
        raise ManifestError('version must be a short string')
    try:
        Version(version)
    except InvalidVersion as exc:
        raise ManifestError(f'version {version!r} is not a PEP 440 version') from exc
    git_hash = signed['git_hash']
    if not isinstance(git_hash, str) or not _HASH_RE.match(git_hash):
        raise ManifestError('git_hash must be a full lowercase hex commit id (40 or 64)')
    sequence = signed['sequence']
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
        raise ManifestError('sequence must be a positive integer')
    issued = parse_time(signed['issued_at'], 'issued_at')
    expires = parse_time(signed['expires'], 'expires')
    if expires <= issued:
        raise ManifestError('expires must be after issued_at')
    percent = signed.get('rollout_percent', 100)
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ManifestError('rollout_percent must be an integer in [0, 100]')


def verify(raw: bytes, public_key: Ed25519PublicKey, now: float,
           min_sequence: int = 0, seen_digest: str = '') -> Manifest:
    """Verify manifest bytes against the pinned key and return its signed fields.

    Order matters: the signature is checked before any signed field is trusted.

    :param raw: the body as downloaded (already size-capped).
    :param public_key: the pinned key.
    :param now: wall-clock time (epoch seconds) for the expiry check.
    :param min_sequence: the last accepted sequence; lower ones are replays.
    :param seen_digest: digest of the manifest accepted with ``min_sequence``; the same
        sequence with other content is refused (a signer equivocating or a key leak).
    :raises ManifestError: malformed or missing fields.
    :raises SignatureError: unsigned, or no valid signature by the pinned key.
    :raises ExpiredError: ``expires`` is not in the future.
    :raises ReplayError: ``sequence`` is lower than ``min_sequence`` (or equal but different).
    :return: the verified manifest.
    """
    envelope = parse_envelope(raw)
    signed = envelope['signed']
    signatures = envelope.get('signatures')
    if not signatures:
        raise SignatureError('manifest is unsigned')
    if not isinstance(signatures, list) or len(signatures) > _MAX_SIGNATURES:
        raise SignatureError('"signatures" must be a short list')
    payload = canonical_json(signed)
    wanted = key_id(public_key)
    matching = [s for s in signatures if isinstance(s, dict) and s.get('keyid') == wanted]
    if not matching:
        raise SignatureError('manifest is not signed by the pinned key')
    if not any(_signature_ok(public_key, s.get('sig'), payload) for s in matching):
        raise SignatureError('bad signature')
    _check_signed(signed)
    digest = hashlib.sha256(payload).hexdigest()
    expires = parse_time(signed['expires'], 'expires')
    if expires <= now:
        raise ExpiredError(f'manifest expired at {signed["expires"]}')
    sequence = signed['sequence']
    if sequence < min_sequence:
        raise ReplayError(f'sequence {sequence} is older than accepted {min_sequence}')
    if sequence == min_sequence and seen_digest and digest != seen_digest:
        raise ReplayError(f'sequence {sequence} was already used for another manifest')
    return Manifest(version=signed['version'], git_hash=signed['git_hash'],
                    sequence=sequence, issued_at=parse_time(signed['issued_at'], 'issued_at'),
                    expires=expires, rollout_percent=float(signed.get('rollout_percent', 100)),
                    digest=digest)


def _signature_ok(public_key: Ed25519PublicKey, sig: Any, payload: bytes) -> bool:
    if not isinstance(sig, str) or len(sig) != 128:
        return False
    try:
        public_key.verify(bytes.fromhex(sig), payload)
    except (ValueError, InvalidSignature):
        return False
    return True


def cohort_bucket(device_id: str, version: str) -> float:
    """Return the device's rollout bucket in [0, 100) for one release.

    Salting with the version spreads the canary burden over the fleet; for one release
    the bucket is fixed, so raising ``rollout_percent`` only ever adds devices.
    """
    digest = hashlib.sha256(f'{version}:{device_id}'.encode('utf-8')).digest()
    return int.from_bytes(digest[:8], 'big') % 10000 / 100.0


def in_cohort(device_id: str, manifest: Manifest) -> bool:
    """Return whether this device takes part in the manifest's staged rollout."""
    return cohort_bucket(device_id, manifest.version) < manifest.rollout_percent
