"""Where model weights come from: find them on disk, or download them once, never silently.

Public API (small on purpose; model-backed detectors use only this):

- ``WeightFile(repo, filename, description, size)``: one file of a Hugging Face hub repository.
- ``weight_path(spec, models_dir=None) -> Path``: the local path of that file, downloading it when
  needed and allowed; raises ``WeightsUnavailable`` (message names the file, its URL and the folder
  to put it in) when it cannot.
- ``repo_folder(repo, filenames, models_dir=None) -> Path``: a folder holding all ``filenames`` of
  ``repo`` (for ``from_pretrained(folder, local_files_only=True)``-style loaders).
- ``find_weight(spec, models_dir=None) -> Path | None``: look only, never download.
- ``models_dirs()`` / ``download_dir()`` / ``register_models_folder()``: our models folders.
- ``load_state_dict(path) -> dict``: safetensors, or ``torch.load(weights_only=True)``.

Resolution order for a file ``<org>/<repo>/<file>``:

1. Our models folders, each as ``<folder>/<org>/<repo>/<file>`` (the layout downloads use) or flat
   ``<folder>/<file>``. Inside ComfyUI these are ``folder_paths.get_folder_paths("scenario_detect")``:
   ``ComfyUI/models/scenario_detect`` plus any ``scenario_detect:`` entry of
   ``extra_model_paths.yaml``. Outside ComfyUI (CLI, tests) it is ``$SCENARIO_DETECT_MODELS_DIR`` or
   ``~/.cache/scenario-detect/models``. ``$SCENARIO_DETECT_MODELS_DIR`` is searched first in both.
2. Weights users already have: the Hugging Face cache
   (``$HF_HUB_CACHE`` or ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``,
   ``models--<org>--<repo>/snapshots/<rev>/<file>``, the ``refs/main`` revision first), then
   comfyui_controlnet_aux's ``custom_nodes/comfyui_controlnet_aux/ckpts/<org>/<repo>/<file>`` (or
   ``$AUX_ANNOTATOR_CKPTS_PATH/<org>/<repo>/<file>``, that pack's own override).
3. A download over plain HTTPS from ``$HF_ENDPOINT`` (default ``https://huggingface.co``)
   ``/<org>/<repo>/resolve/main/<file>`` into the first models folder, through
   ``<file>.incomplete`` and an atomic rename, so no partial file is ever left under the real name.
   Disabled by ``HF_HUB_OFFLINE=1`` or ``SCENARIO_DETECT_OFFLINE=1``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import host

log = logging.getLogger("scenario_detect.weights")

FOLDER_NAME = "scenario_detect"  # the folder_paths name, and ComfyUI/models/<this>
ENV_MODELS_DIR = "SCENARIO_DETECT_MODELS_DIR"
ENV_OFFLINE = "SCENARIO_DETECT_OFFLINE"
DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "true", "yes", "on"}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightFile:
    """One file of a Hugging Face hub repository."""

    repo: str  # "org/name"
    filename: str  # path inside the repository
    description: str = ""  # what it is, for messages ("M-LSD line detector")
    size: str = ""  # human size for messages and docs ("6.3 MB")

    @property
    def url(self) -> str:
        return f"{endpoint()}/{self.repo}/resolve/main/{self.filename}"

    @property
    def label(self) -> str:
        extra = ", ".join(x for x in (self.description, self.size) if x)
        return f"'{self.filename}' ({extra})" if extra else f"'{self.filename}'"


class WeightsUnavailable(FileNotFoundError):
    """A weight file is not on disk and could not be downloaded; the message says what to do."""


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", ENV_OFFLINE))


def cli_models_dir() -> Path:
    """The models folder outside ComfyUI: $SCENARIO_DETECT_MODELS_DIR or ~/.cache/scenario-detect/models."""
    if os.environ.get(ENV_MODELS_DIR):
        return Path(os.environ[ENV_MODELS_DIR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "scenario-detect" / "models"


def register_models_folder() -> None:
    """Make ``ComfyUI/models/scenario_detect`` a known model folder (idempotent; no-op outside ComfyUI).

    extra_model_paths.yaml is read before custom nodes load, so a user's ``scenario_detect:`` entry
    already exists here and stays first (downloads go there); the default folder is appended.
    """
    if not host.in_comfyui():
        return
    import folder_paths

    folder_paths.add_model_folder_path(FOLDER_NAME, os.path.join(folder_paths.models_dir, FOLDER_NAME))


def models_dirs(models_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Our models folders in search order; the first is where downloads go.

    ``models_dir`` (tests, callers with their own folder) replaces the whole list.
    """
    if models_dir is not None:
        return [Path(models_dir)]
    dirs: list[Path] = []
    if os.environ.get(ENV_MODELS_DIR):
        dirs.append(Path(os.environ[ENV_MODELS_DIR]).expanduser())
    if host.in_comfyui():
        import folder_paths

        register_models_folder()
        dirs += [Path(p) for p in folder_paths.get_folder_paths(FOLDER_NAME)]
    else:
        dirs.append(cli_models_dir())
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def download_dir(models_dir: str | os.PathLike[str] | None = None) -> Path:
    return models_dirs(models_dir)[0]


def target_folder(repo: str, models_dir: str | os.PathLike[str] | None = None) -> Path:
    """The exact folder a file of ``repo`` is downloaded to (and where users may put it)."""
    return download_dir(models_dir).joinpath(*repo.split("/"))


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, as huggingface_hub itself resolves it."""
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(key):
            return Path(os.environ[key]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "huggingface" / "hub"


def _hf_snapshots(repo: str) -> list[Path]:
    """Snapshot folders of ``repo`` in the HF cache, the ``refs/main`` one first."""
    root = hf_cache_dir() / ("models--" + repo.replace("/", "--"))
    snapshots = root / "snapshots"
    if not snapshots.is_dir():
        return []
    found = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.name)
    try:
        main = (root / "refs" / "main").read_text().strip()
    except OSError:
        main = ""
    return sorted(found, key=lambda p: p.name != main)


def controlnet_aux_ckpts_dirs() -> list[Path]:
    """comfyui_controlnet_aux's ``ckpts`` folders: ``$AUX_ANNOTATOR_CKPTS_PATH`` (that pack's own
    setting) and ``comfyui_controlnet_aux/ckpts`` in every known custom_nodes folder."""
    dirs: list[Path] = []
    if os.environ.get("AUX_ANNOTATOR_CKPTS_PATH"):
        dirs.append(Path(os.environ["AUX_ANNOTATOR_CKPTS_PATH"]).expanduser())
    roots: list[Path] = []
    if host.in_comfyui():
        import folder_paths

        try:
            roots += [Path(p) for p in folder_paths.get_folder_paths("custom_nodes")]
        except KeyError:
            pass
    # This pack lives in custom_nodes/<pack>/nodes/local/weights.py when installed by folder.
    roots.append(Path(os.path.abspath(__file__)).parents[3])  # not resolved: a symlinked pack counts
    for root in roots:
        d = root / "comfyui_controlnet_aux" / "ckpts"
        if d not in dirs:
            dirs.append(d)
    return dirs


def candidates(spec: WeightFile, models_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Every place ``spec`` is looked for, in order."""
    parts = spec.repo.split("/")
    paths: list[Path] = []
    for d in models_dirs(models_dir):
        paths.append(d.joinpath(*parts, spec.filename))
        paths.append(d / Path(spec.filename).name)
    paths += [snap / spec.filename for snap in _hf_snapshots(spec.repo)]
    paths += [d.joinpath(*parts, spec.filename) for d in controlnet_aux_ckpts_dirs()]
    return paths


def find_weight(spec: WeightFile, models_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The first existing non-empty copy of ``spec``, or None. Never downloads."""
    for path in candidates(spec, models_dir):
        try:
            if path.is_file() and path.stat().st_size > 0:
                return path
        except OSError:
            continue
    return None


def weight_path(spec: WeightFile, models_dir: str | os.PathLike[str] | None = None) -> Path:
    """The local path of ``spec``: found on disk, else downloaded (when allowed), else a clear error."""
    found = find_weight(spec, models_dir)
    if found is not None:
        return found
    return _fetch(spec, target_folder(spec.repo, models_dir) / spec.filename)


_download_locks: dict[Path, threading.Lock] = {}
_download_locks_guard = threading.Lock()


def _download_lock(dest: Path) -> threading.Lock:
    with _download_locks_guard:
        return _download_locks.setdefault(dest.absolute(), threading.Lock())


def _fetch(spec: WeightFile, dest: Path) -> Path:
    """Download ``spec`` to ``dest``, or raise WeightsUnavailable saying how to get it by hand."""
    # One download per file at a time: two threads writing the same .incomplete file would corrupt it;
    # the second one finds the file the first one finished.
    with _download_lock(dest):
        if dest.is_file() and dest.stat().st_size > 0:
            return dest
        return _fetch_unlocked(spec, dest)


def _fetch_unlocked(spec: WeightFile, dest: Path) -> Path:
    if offline():
        raise WeightsUnavailable(_missing_message(spec, dest, "downloads are disabled (offline mode)"))
    try:
        download(spec.url, dest, label=spec.filename)
    except host.Interrupted:
        raise
    except Exception as exc:
        if type(exc).__name__ == "InterruptProcessingException":  # ComfyUI's Cancel: not a failure
            raise
        raise WeightsUnavailable(_missing_message(spec, dest, f"the download failed ({_short(exc)})")) from exc
    return dest


def repo_folder(
    repo: str,
    filenames: list[str] | tuple[str, ...],
    models_dir: str | os.PathLike[str] | None = None,
    description: str = "",
) -> Path:
    """A folder holding every file of ``filenames`` from ``repo`` (downloading the missing ones).

    Checks, in order: our ``<folder>/<org>/<repo>/``, HF cache snapshots, comfyui_controlnet_aux
    ckpts; the first folder that has all files wins. Otherwise the missing files are downloaded
    into ``target_folder(repo)`` (files found elsewhere are not copied: that folder gets them all).
    """
    parts = repo.split("/")
    folders = [d.joinpath(*parts) for d in models_dirs(models_dir)]
    folders += _hf_snapshots(repo)
    folders += [d.joinpath(*parts) for d in controlnet_aux_ckpts_dirs()]
    for folder in folders:
        if all((folder / f).is_file() for f in filenames):
            return folder
    dest = target_folder(repo, models_dir)
    missing = [name for name in filenames if not (dest / name).is_file()]
    if offline() and missing:
        urls = ", ".join(WeightFile(repo, name).url for name in missing)
        what = f" ({description})" if description else ""
        raise WeightsUnavailable(
            f"The model '{repo}'{what} is not on this machine and downloads are disabled (offline mode). "
            f"Download {', '.join(missing)} from {urls} and put them in the folder {dest}; then run again. "
            f"A complete copy in the Hugging Face cache ({hf_cache_dir()}) is found too."
        )
    for name in missing:
        _fetch(WeightFile(repo, name, description), dest / name)
    return dest


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    text = re.sub(r"(?i)(authorization|token)[^,;]*", r"\1=<hidden>", text)  # never echo a secret
    return text[:200]


def _missing_message(spec: WeightFile, dest: Path, why: str) -> str:
    return (
        f"Model file {spec.label} from the Hugging Face repository '{spec.repo}' is not on this machine "
        f"and {why}. Download it from {spec.url} and put it in the folder {dest.parent} "
        f"(so the file is {dest}); then run again. Files already in the Hugging Face cache "
        f"({hf_cache_dir()}) or in comfyui_controlnet_aux's ckpts folder are found too."
    )


def download(url: str, dest: Path, label: str = "", timeout: float = 30.0) -> Path:
    """Stream ``url`` to ``dest`` through ``dest.incomplete`` and an atomic rename.

    On any failure or interrupt the temp file is removed and the exception re-raised: ``dest`` is
    either complete or absent. Verifies the SHA-256 the hub announces (``X-Linked-Etag``) when present.
    """
    import httpx

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".incomplete")
    headers = {"User-Agent": "comfyui-scenario-detect"}
    if os.environ.get("HF_TOKEN"):
        # httpx drops Authorization on redirects to another host (the hub's CDN).
        headers["Authorization"] = f"Bearer {os.environ['HF_TOKEN']}"
    name = label or dest.name
    log.info("Downloading %s from %s to %s", name, url, dest)
    try:
        with httpx.stream("GET", url, headers=headers, follow_redirects=True, timeout=timeout) as response:
            response.raise_for_status()
            expected_sha = _announced_sha256(response)
            total = int(response.headers.get("Content-Length") or 0)
            report = _Progress(name, total)
            digest = hashlib.sha256()
            done = 0
            with open(tmp, "wb") as out:
                for chunk in response.iter_bytes(_CHUNK):
                    host.throw_if_interrupted()
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    report(done)
            report.close()
        if total and done != total:
            raise OSError(f"connection closed after {done} of {total} bytes")
        if expected_sha and digest.hexdigest() != expected_sha:
            raise OSError(f"checksum mismatch: got sha256 {digest.hexdigest()}, the hub announced {expected_sha}")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("Downloaded %s (%d bytes)", dest, done)
    return dest


def _announced_sha256(response: Any) -> str:
    for r in [*response.history, response]:
        etag = r.headers.get("X-Linked-Etag") or ""
        etag = etag.strip('"').lower().removeprefix("w/").strip('"')
        if re.fullmatch(r"[0-9a-f]{64}", etag):
            return etag
    return ""


class _Progress:
    """ComfyUI's progress bar plus tqdm on a terminal, else a log line every ~10 %."""

    def __init__(self, name: str, total: int) -> None:
        self.total = total
        self.bar = host.progress_bar(total) if total else (lambda value: None)
        self.tqdm = None
        self.next_log = 0.1
        self.start = time.monotonic()
        self.last = 0
        if sys.stderr is not None and sys.stderr.isatty():
            try:
                from tqdm import tqdm

                self.tqdm = tqdm(total=total or None, unit="B", unit_scale=True, desc=name)
            except ImportError:
                pass
        self.name = name

    def __call__(self, done: int) -> None:
        self.bar(done)
        if self.tqdm is not None:
            self.tqdm.update(done - self.last)
        elif self.total and done / self.total >= self.next_log:
            log.info("%s: %d%% of %.1f MB", self.name, 100 * done // self.total, self.total / 1e6)
            self.next_log += 0.1
        self.last = done

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Tensors of a checkpoint, never running pickled code.

    ``.safetensors`` through safetensors; anything else through ``torch.load(weights_only=True)``.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RuntimeError(
            f"could not read the model file {path} ({_short(exc)}). It may be truncated or not a "
            "weights file: delete it and run again to download a fresh copy."
        ) from exc
