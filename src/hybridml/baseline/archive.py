"""The ``.hml`` container: three zip members, one digest over all, an optional key.

Layout (format version 2):

- ``manifest.json``: what the model is (columns, classes, backbones, versions);
- ``model.skops``: the fitted scikit-learn pipeline, in skops format;
- ``integrity.json``: ``sha256`` over the other two members (length-prefixed,
  so bytes cannot move between them) and, when saved with a key, ``hmac`` (an
  HMAC-SHA256 of the same bytes under that key).

Reading bounds everything before it is read: the file's size, the members
(exactly these three names, once each), each member's size. The digest (and
the HMAC, when a key is set) is checked before the manifest is even parsed as
JSON. A digest catches damage and naive edits only: whoever edits a file can
recompute it. Only a key proves the file was saved by someone who holds it.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import zipfile
from pathlib import Path

FORMAT_VERSION = 2
KEY_ENV = "HYBRIDML_MODEL_KEY"
MANIFEST, PAYLOAD, INTEGRITY = "manifest.json", "model.skops", "integrity.json"
MAX_MANIFEST_BYTES = 2**20  # a manifest is a few KB; 1 MiB is generous
MAX_INTEGRITY_BYTES = 4096
MAX_PAYLOAD_BYTES = 2**31  # 2 GiB: a forest on many rows is large, not this
_DOMAIN = b"hybridml-model-v2\0"


def resolve_key(key: str | bytes | None) -> bytes | None:
    """The signing key: ``key`` if given, else ``$HYBRIDML_MODEL_KEY``, else None."""
    if key is None:
        key = os.environ.get(KEY_ENV) or None
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, bytes) or len(key) < 16:
        raise ValueError(
            f"key: got a key of {len(key) if isinstance(key, bytes) else '?'} bytes. "
            "Expected at least 16 bytes (a random secret, e.g. python -c "
            "'import secrets; print(secrets.token_hex(32))'). Use a longer key."
        )
    return key


def _message(manifest: bytes, payload: bytes) -> bytes:
    return _DOMAIN + len(manifest).to_bytes(8, "big") + manifest + payload


def pack(manifest: bytes, payload: bytes, key: bytes | None) -> bytes:
    """The bytes of a ``.hml`` file."""
    message = _message(manifest, payload)
    integrity = {"sha256": hashlib.sha256(message).hexdigest()}
    if key is not None:
        integrity["hmac_sha256"] = hmac.new(key, message, hashlib.sha256).hexdigest()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, manifest)
        archive.writestr(PAYLOAD, payload)
        archive.writestr(INTEGRITY, json.dumps(integrity))
    return buffer.getvalue()


def _error(path: Path, got: str, fix: str) -> ValueError:
    return ValueError(
        f"model file {str(path)!r}: got {got}. Expected a .hml file written by "
        f"hybridml (save_model or baseline --save-best). {fix}"
    )


def unpack(path: Path, key: bytes | None) -> tuple[bytes, bytes, bool]:
    """Read and verify ``path``; return (manifest bytes, payload bytes, signed).

    Nothing is parsed beyond the zip directory and ``integrity.json`` until
    the digest (and the HMAC, with a key) has been checked.
    """
    if path.stat().st_size > MAX_PAYLOAD_BYTES + 2 * MAX_MANIFEST_BYTES:
        raise _error(path, "a file over 2 GiB", "Check the path.")
    try:
        archive = zipfile.ZipFile(path)
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _error(path, f"a file that is not a zip archive ({exc})", _SAVE) from exc
    with archive:
        names = [info.filename for info in infos]
        if sorted(names) != sorted([MANIFEST, PAYLOAD, INTEGRITY]):
            old = sorted(names) == sorted([MANIFEST, PAYLOAD])
            got = (
                "format version 1 (no digest over its manifest)"
                if old
                else f"members {names[:6]}"
            )
            raise _error(path, got, _SAVE)
        limits = {
            MANIFEST: MAX_MANIFEST_BYTES,
            PAYLOAD: MAX_PAYLOAD_BYTES,
            INTEGRITY: MAX_INTEGRITY_BYTES,
        }
        data = {name: _read(archive, name, limits[name], path) for name in limits}
    integrity = _integrity(data[INTEGRITY], path)
    message = _message(data[MANIFEST], data[PAYLOAD])
    if not hmac.compare_digest(
        hashlib.sha256(message).hexdigest(), integrity.get("sha256", "")
    ):
        raise _error(
            path,
            "contents whose sha256 does not match the file's digest (edited or "
            "damaged after saving)",
            _SAVE,
        )
    signed = "hmac_sha256" in integrity
    if key is not None:
        if not signed:
            raise _error(
                path,
                f"an unsigned file while a key is set ({KEY_ENV} or --key)",
                "Ask for a signed file, or unset the key to load it unverified.",
            )
        mac = hmac.new(key, message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, str(integrity["hmac_sha256"])):
            raise _error(
                path,
                "a signature that does not verify with this key (another key, or "
                "edited after signing)",
                "Use the key it was saved with; never load it otherwise.",
            )
    return data[MANIFEST], data[PAYLOAD], signed


_SAVE = "Save it again with this version of hybridml."


def _read(archive: zipfile.ZipFile, name: str, limit: int, path: Path) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise _error(path, f"a {name} of {info.file_size} bytes (limit {limit})", _SAVE)
    try:
        with archive.open(info) as member:
            data = member.read(limit + 1)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise _error(path, f"an unreadable {name} ({exc})", _SAVE) from exc
    if len(data) > limit:
        raise _error(path, f"a {name} over {limit} bytes", _SAVE)
    return data


def _integrity(raw: bytes, path: Path) -> dict:
    try:
        integrity = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise _error(path, "an unreadable integrity.json", _SAVE) from exc
    if not isinstance(integrity, dict) or not all(
        isinstance(integrity.get(k, ""), str) for k in ("sha256", "hmac_sha256")
    ):
        raise _error(path, "a malformed integrity.json", _SAVE)
    return integrity
