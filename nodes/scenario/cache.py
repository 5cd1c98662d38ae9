"""On-disk cache of Scenario results (each remote run costs credits; ComfyUI's cache forgets at restart).

Where: ``<ComfyUI user dir>/scenario-detect/cache`` in ComfyUI, ``$XDG_CACHE_HOME`` (or ``~/.cache``)
``/scenario-detect/scenario-results`` for the CLI; ``SCENARIO_DETECT_CACHE_DIR`` overrides,
``SCENARIO_DETECT_CACHE_MB`` bounds it (default 512, least recently used first), ``SCENARIO_DETECT_CACHE=0``
turns it off. Keys cover the API address and account; entries hold the result image, asset ids and
cost, never a URL or credential. A damaged entry reads as a miss and is deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import host
from .credentials import Credentials

log = logging.getLogger("scenario_detect.scenario")

KEY_VERSION = b"scenario-detect-cache-v2"  # v2: keys include the API address and account
DEFAULT_MAX_MB = 512.0


@dataclass
class CachedResult:
    content: bytes
    asset_ids: list[str]
    cost: float | None


def cache_enabled(env: dict[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get("SCENARIO_DETECT_CACHE", "1").strip().lower() not in ("0", "false", "no", "off", "")


def default_cache_dir() -> Path:
    if os.environ.get("SCENARIO_DETECT_CACHE_DIR"):
        return Path(os.environ["SCENARIO_DETECT_CACHE_DIR"]).expanduser()
    if host.in_comfyui():
        return host.user_directory() / "scenario-detect" / "cache"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "scenario-detect" / "scenario-results"


def account_id(credentials: Credentials) -> str:
    """A short, stable, one-way name for the account behind a key (a hash of the key id, never the secret)."""
    return hashlib.sha256(b"scenario-detect-account\0" + credentials.api_key.encode()).hexdigest()[:16]


def cache_key(
    *,
    credentials: Credentials,
    modality: str,
    fields: dict[str, Any],
    original_assets: bool,
    pixels: bytes | None = None,
    shape: tuple[int, ...] = (),
    asset_id: str | None = None,
) -> str:
    """Hex digest over what decides the result: API address and account (an asset id means nothing to
    another account, a staging server's results are not production's), the input and the request."""
    h = hashlib.sha256(KEY_VERSION)
    h.update(
        json.dumps(
            {
                "api": credentials.base_url.rstrip("/"),
                "account": account_id(credentials),
                "modality": modality,
                "fields": fields,
                "originalAssets": bool(original_assets),
                "shape": list(shape),
                "asset": asset_id,
            },
            sort_keys=True,
        ).encode()
    )
    if pixels is not None:
        h.update(pixels)
    return h.hexdigest()


class ResultCache:
    def __init__(self, directory: Path | None = None, max_bytes: int | None = None):
        self.directory = Path(directory) if directory else default_cache_dir()
        if max_bytes is None:
            try:
                max_bytes = int(float(os.environ.get("SCENARIO_DETECT_CACHE_MB", DEFAULT_MAX_MB)) * 1024 * 1024)
            except ValueError:
                max_bytes = int(DEFAULT_MAX_MB * 1024 * 1024)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.directory / key[:2]
        return folder / f"{key}.png", folder / f"{key}.json"

    def get(self, key: str) -> CachedResult | None:
        """The entry for ``key``, or None when there is none or it is damaged (then it is deleted)."""
        image_path, meta_path = self._paths(key)
        if not meta_path.exists() and not image_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            content = image_path.read_bytes()
        except (OSError, ValueError):
            meta, content = None, b""
        entry = _entry(meta, content)
        if entry is None:
            # Torn by a crash mid-write, edited, or from another version: a miss, never an error.
            log.info("Scenario result cache: ignoring a damaged entry %s", key[:12])
            self._discard(image_path, meta_path)
            return None
        now = time.time()
        for path in (image_path, meta_path):
            try:
                os.utime(path, (now, now))  # least recently *used* goes first
            except OSError:
                pass
        return entry

    def _discard(self, *paths: Path) -> None:
        for path in paths:
            try:
                if path.is_dir() and not path.is_symlink():
                    continue  # not ours to delete; put() will report it cannot write
                path.unlink(missing_ok=True)
            except OSError:
                pass

    def put(self, key: str, content: bytes, asset_ids: list[str], cost: float | None) -> None:
        if len(content) > self.max_bytes:
            return
        image_path, meta_path = self._paths(key)
        try:
            image_path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(image_path, content)
            meta = {"size": len(content), "asset_ids": asset_ids, "cost": cost, "created": time.time()}
            _atomic_write(meta_path, json.dumps(meta).encode())
        except OSError as exc:
            log.warning(
                "Scenario result cache: cannot write to %s (%s); continuing without it", self.directory, exc.strerror
            )
            return
        self.prune()

    def prune(self) -> None:
        """Delete least recently used entries until the folder fits ``max_bytes``."""
        with self._lock:
            entries = []
            total = 0
            for path in self.directory.glob("*/*"):
                try:
                    stat = path.stat()
                except OSError:
                    continue
                entries.append((stat.st_mtime, stat.st_size, path))
                total += stat.st_size
            if total <= self.max_bytes:
                return
            for _, size, path in sorted(entries):
                try:
                    path.unlink()
                except OSError:
                    continue
                total -= size
                if total <= self.max_bytes:
                    break


def _entry(meta: Any, content: bytes) -> CachedResult | None:
    """A CachedResult when ``meta`` and ``content`` form a whole, well-formed entry."""
    if not isinstance(meta, dict) or not content:
        return None
    size, ids, cost = meta.get("size"), meta.get("asset_ids"), meta.get("cost")
    if isinstance(size, bool) or size != len(content):
        return None
    if not isinstance(ids, list) or not all(isinstance(a, str) for a in ids):
        return None
    if cost is not None and (isinstance(cost, bool) or not isinstance(cost, (int, float))):
        return None
    return CachedResult(content, list(ids), None if cost is None else float(cost))


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
