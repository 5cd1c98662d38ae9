"""Where model weights come from: find them on disk, or download them once, never silently.

Public API (small on purpose; model-backed detectors use only this):

- ``WeightFile(repo, filename, description, size)``: one file of a Hugging Face hub repository.
- ``weight_path(spec, models_dir=None) -> Path``: the local path of that file, downloading it when
  needed and allowed; raises ``WeightsUnavailable`` (message names the file, its size, URL and the
  folder to put it in) when it cannot.
- ``weight_paths(specs, models_dir=None) -> list[Path]``: the same for a model made of several
  files; a failure lists EVERY file still missing, so a person fetches them all by hand at once.
- ``repo_folder(repo, filenames, models_dir=None) -> Path``: a folder holding all ``filenames`` of
  ``repo`` (for ``from_pretrained(folder, local_files_only=True)``-style loaders); ``filenames`` may
  be names or ``WeightFile``s (with sizes, for the message).
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
3. A download with huggingface_hub's ``get_hf_file_metadata`` and ``http_get`` into
   ``<first models folder>/<org>/<repo>`` from ``$HF_ENDPOINT`` (default ``https://huggingface.co``;
   a mirror works the same), so the file lands in our folder, not in the HF cache. The bytes go to
   ``partial_path(...)`` (``<folder>/.cache/scenario-detect/<file>.<etag>.partial``), which survives
   Cancel, errors and a killed process and is continued with a ``Range`` request next time (same
   etag only); the complete file is checked (size, the announced SHA-256) and renamed atomically
   (no partial file under the real name). ComfyUI's progress bar and Cancel apply.
   Disabled by ``HF_HUB_OFFLINE=1`` or ``SCENARIO_DETECT_OFFLINE=1``. huggingface_hub (a dependency
   of transformers and controlnet-aux) is imported only when a download starts.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import pickle
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

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


class WeightFileUnusable(WeightsUnavailable):
    """A weight file (or model folder) is on disk but cannot be used: cut short, another format, or
    another network's weights. No usable copy is available, hence the base class: callers that stop
    at a missing file (the CLI stops its batch) stop here too. ``path`` is the file, ``problem`` what
    is wrong with it; the message adds what to do."""

    def __init__(self, path: str | os.PathLike[str], problem: str, spec: WeightFile | None = None) -> None:
        self.path = Path(path)
        self.problem = problem.rstrip(".")
        self.spec = spec
        super().__init__(self._message())

    def _message(self) -> str:
        kind = "folder" if self.path.is_dir() else "file"
        label = f" ({self.spec.label})" if self.spec is not None else ""
        text = (
            f"The model {kind} {self.path}{label} cannot be used: {self.problem}. Delete it and run again to "
            "download a fresh copy"
        )
        if self.spec is not None:
            text += f", or download it by hand from {self.spec.url} into {self.path.parent}"
        return text + "."

    def naming(self, spec: WeightFile) -> WeightFileUnusable:
        """The same error, its message with the file's description and download address."""
        named = WeightFileUnusable(self.path, self.problem, spec)
        named.__cause__ = self.__cause__
        return named


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
    return weight_paths([spec], models_dir)[0]


def weight_paths(
    specs: list[WeightFile] | tuple[WeightFile, ...], models_dir: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Local paths of every file of one model (``weight_path`` for several files at once).

    Each file is looked for as ``weight_path`` does; the missing ones are downloaded. When one
    cannot be, the ``WeightsUnavailable`` message lists EVERY file still missing (name, size, URL
    and folder), so a person fetching them by hand gets them all in one go.
    """
    found = [find_weight(spec, models_dir) for spec in specs]
    missing = [
        (spec, target_folder(spec.repo, models_dir)) for spec, path in zip(specs, found, strict=True) if path is None
    ]
    fetched = iter(_fetch_all(missing))
    return [path if path is not None else next(fetched) for path in found]


_download_locks: dict[Path, threading.Lock] = {}
_download_locks_guard = threading.Lock()


def _download_lock(dest: Path) -> threading.Lock:
    with _download_locks_guard:
        return _download_locks.setdefault(dest.absolute(), threading.Lock())


def repo_folder(
    repo: str,
    filenames: list[str | WeightFile] | tuple[str | WeightFile, ...],
    models_dir: str | os.PathLike[str] | None = None,
    description: str = "",
) -> Path:
    """A folder holding every file of ``filenames`` from ``repo`` (downloading the missing ones).

    Checks, in order: our ``<folder>/<org>/<repo>/``, HF cache snapshots, comfyui_controlnet_aux
    ckpts; the first folder that has all files wins. Otherwise the missing files are downloaded
    into ``target_folder(repo)`` (files found elsewhere are not copied: that folder gets them all).
    ``filenames`` may be ``WeightFile``s of ``repo`` (their sizes then appear in error messages).
    """
    specs = [f if isinstance(f, WeightFile) else WeightFile(repo, f, description) for f in filenames]
    parts = repo.split("/")
    folders = [d.joinpath(*parts) for d in models_dirs(models_dir)]
    folders += _hf_snapshots(repo)
    folders += [d.joinpath(*parts) for d in controlnet_aux_ckpts_dirs()]
    for folder in folders:
        if all((folder / spec.filename).is_file() for spec in specs):
            return folder
    dest = target_folder(repo, models_dir)
    _fetch_all([(spec, dest) for spec in specs if not (dest / spec.filename).is_file()])
    return dest


def _fetch_all(missing: list[tuple[WeightFile, Path]]) -> list[Path]:
    """Download each ``(spec, folder)`` into its folder, in order; or raise WeightsUnavailable
    naming every file not downloaded yet (the failing one and all after it)."""
    if missing and offline():
        raise WeightsUnavailable(_missing_message(missing, "downloads are disabled (offline mode)"))
    paths = []
    for index, (spec, folder) in enumerate(missing):
        try:
            # One download per file at a time (two local runs may need the same model): the second
            # caller finds the file the first one finished.
            with _download_lock(folder / spec.filename):
                done = folder / spec.filename
                paths.append(done if done.is_file() and done.stat().st_size > 0 else download(spec, folder))
        except host.Interrupted:
            raise
        except Exception as exc:
            if type(exc).__name__ == "InterruptProcessingException":  # ComfyUI's Cancel: not a failure
                raise
            why = f"the download of '{spec.filename}' failed ({_short(exc)})"
            raise WeightsUnavailable(_missing_message(missing[index:], why)) from exc
    return paths


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    text = re.sub(r"(?i)(authorization|token)[^,;]*", r"\1=<hidden>", text)  # never echo a secret
    return text[:200]


def _missing_message(missing: list[tuple[WeightFile, Path]], why: str) -> str:
    """What is missing and how to get it by hand: every file with its size, URL and exact folder."""
    repos = ", ".join(sorted({spec.repo for spec, _ in missing}))
    described = sorted({spec.description for spec, _ in missing if spec.description})
    what = f" ({', '.join(described)})" if described else ""
    count, verb = ("1 file", "is") if len(missing) == 1 else (f"{len(missing)} files", "are")
    lines = [
        f"This model{what} needs {count} from the Hugging Face repository {repos} that {verb} not on this "
        f"machine, and {why}. Download each file below into the folder shown (keep its name), then run again:"
    ]
    for spec, folder in missing:
        size = f", {spec.size}" if spec.size else ""
        lines.append(f"  - {spec.filename}{size}: {spec.url} -> folder {folder}")
    lines.append(
        f"Files already in the Hugging Face cache ({hf_cache_dir()}) or in comfyui_controlnet_aux's ckpts "
        "folder are found too; HF_ENDPOINT selects a mirror for downloads."
    )
    return "\n".join(lines)


PARTIAL_DIR = (".cache", "scenario-detect")  # under a download folder: partial files and their locks


def partial_path(folder: Path, filename: str, etag: str) -> Path:
    """Where the unfinished download of ``folder/<filename>`` lives, for the hub's ``etag`` of it.

    ``<folder>/.cache/scenario-detect/<filename>.<etag>.partial``: hidden from the models folder (never
    found as a weight), on the same file system as the final file (the rename is atomic), and named
    by the etag so bytes of an older version of the file are never continued by a newer one.
    """
    key = etag if re.fullmatch(r"[\w-]{1,80}", etag) else hashlib.sha256(etag.encode()).hexdigest()[:32]
    return folder.joinpath(*PARTIAL_DIR, f"{filename}.{key or 'no-etag'}.partial")


def lock_path(folder: Path, filename: str) -> Path:
    """The lock file one process holds while it downloads ``folder/<filename>``."""
    return folder.joinpath(*PARTIAL_DIR, f"{filename}.lock")


def download(spec: WeightFile, folder: Path) -> Path:
    """Download ``spec`` into ``folder`` (as ``folder/<filename>``), resuming an earlier attempt.

    The bytes go to ``partial_path(folder, filename, etag)`` and stay there when the transfer stops
    for any reason (Cancel, an error, a killed process); the next attempt, in this process or
    another, continues them with a ``Range: bytes=<size>-`` request, if the hub still announces the
    same etag (a partial of another version of the file is deleted). Only a complete file whose size,
    and for large files SHA-256 (the hub's etag), match is renamed to the real name; a checksum
    mismatch deletes the partial. One process at a time downloads a file (a lock file beside the
    partial; the others wait, and find the finished file).

    Why huggingface_hub's pieces and not ``hf_hub_download``: ``hf_hub_download`` writes to a
    process-unique temporary file and deletes it on any error, so anything but a connection cut
    within one run started again from byte 0. We keep what it gave us by using the same building
    blocks: ``get_hf_file_metadata`` (``HF_ENDPOINT`` mirrors, ``HF_TOKEN``, the redirect to the CDN,
    etag and size) and ``http_get`` (its retries, which resume a cut transfer within the run, its
    handling of a server that ignores ``Range``, its size check). What we give up: Xet transfers
    (with the hf_xet package, which huggingface_hub installs on x86_64/arm64) have no resume across
    processes and no file we could continue, so files are fetched over plain HTTPS, which the hub
    serves for every file, Xet-backed ones included; for files of a few MB to ~1.5 GB, resuming
    matters more than Xet's parallel chunks. And ``hf_hub_download``'s copy from the HF cache, which
    ``find_weight`` already covers (any cached snapshot is used in place, nothing is downloaded).
    Progress goes to ComfyUI's progress bar, and to tqdm on a terminal; Cancel stops the transfer.
    huggingface_hub reads 10 MB at a time, so a stop loses at most the last 10 MB.
    """
    import huggingface_hub as hub

    folder.mkdir(parents=True, exist_ok=True)
    url = hub.hf_hub_url(spec.repo, spec.filename, revision="main", endpoint=endpoint())
    # A quick HEAD first: an unreachable host fails here at once (huggingface_hub's retries would
    # back off for ~20 s). It gives the etag (the partial's identity), the size and the CDN address.
    no_retry = {"retry_on_errors": False} if _accepts(hub.get_hf_file_metadata, "retry_on_errors") else {}
    meta = hub.get_hf_file_metadata(url, timeout=30, **no_retry)
    etag = meta.etag or ""
    dest = folder / spec.filename
    partial = partial_path(folder, spec.filename, etag)
    partial.parent.mkdir(parents=True, exist_ok=True)
    with _process_lock(lock_path(folder, spec.filename)):
        if dest.is_file() and dest.stat().st_size > 0:  # another process finished it while we waited
            return dest
        _discard_other_partials(partial)
        resume = partial.stat().st_size if partial.is_file() else 0
        if resume and (not etag or (meta.size is not None and resume > meta.size)):
            resume = 0  # unverifiable or longer than the file: start again
        if resume:
            log.info("Resuming %s from %s at byte %d, in %s", spec.filename, url, resume, folder)
        else:
            log.info("Downloading %s from %s to %s", spec.filename, url, folder)
        _transfer(url, meta, partial, resume, Path(spec.filename).name)
        _verify(partial, etag)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, dest)  # atomic: the real name only ever holds a complete file
    log.info("Downloaded %s (%d bytes)", dest, dest.stat().st_size)
    return dest


def _transfer(url: str, meta: Any, partial: Path, resume: int, shown_name: str) -> None:
    """The file's bytes from ``resume`` on, appended to ``partial`` (huggingface_hub's ``http_get``)."""
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    # As huggingface_hub does: the body of a large file comes from the CDN the hub redirects to,
    # and a token is only sent to the hub itself. Xet-backed files are fetched from the hub URL,
    # which redirects to their plain-HTTPS bridge.
    source = url if getattr(meta, "xet_file_data", None) is not None else urljoin(url, meta.location or url)
    headers = build_hf_headers()
    headers["Accept-Encoding"] = "identity"  # byte offsets of the file itself, so Range resumes it
    if _origin(source) not in {_origin(url), _origin(DEFAULT_ENDPOINT)}:
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    options: dict[str, Any] = {"displayed_filename": shown_name}
    if _accepts(http_get, "tqdm_class"):  # huggingface_hub >= 0.32
        options["tqdm_class"] = _progress_class()
    with open(partial, "r+b" if resume else "wb") as f:
        f.seek(resume)
        f.truncate()
        try:
            http_get(source, f, resume_size=resume, headers=headers, expected_size=meta.size, **options)
        except Exception as exc:
            if getattr(getattr(exc, "response", None), "status_code", None) == 416:
                f.close()
                partial.unlink(missing_ok=True)  # the server refuses our offset: start again next time
            raise


def _verify(partial: Path, etag: str) -> None:
    """Large (LFS) files: the etag is the content's SHA-256; a mismatch deletes the partial."""
    if re.fullmatch(r"[0-9a-f]{64}", etag.lower()):
        actual = _sha256(partial)
        if actual != etag.lower():
            partial.unlink(missing_ok=True)  # a spliced or corrupt partial must not be continued
            raise OSError(f"checksum mismatch: got sha256 {actual}, the hub announced {etag.lower()}")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def _discard_other_partials(partial: Path) -> None:
    """Delete partials of the same file for other etags: the file changed upstream since."""
    stem = partial.name.rsplit(".", 2)[0]  # "<name>" of "<name>.<etag>.partial"
    for other in partial.parent.glob(glob.escape(stem) + ".*.partial"):
        if other != partial and other.name.rsplit(".", 2)[0] == stem:
            log.info("Deleting %s: the hub now has another version of that file", other)
            other.unlink(missing_ok=True)


@contextmanager
def _process_lock(path: Path) -> Iterator[None]:
    """An OS file lock (released by the OS if the process dies), waited for with Cancel honoured.

    filelock comes with huggingface_hub. On a file system without ``flock`` we go without it (the
    per-process ``_download_lock`` still holds; two processes may then both download the file, and
    the size and checksum checks catch a spliced partial).
    """
    from filelock import FileLock, Timeout

    lock: FileLock | None = FileLock(str(path))
    waited = 0
    while lock is not None:
        try:
            lock.acquire(timeout=1)
            break
        except Timeout:
            host.throw_if_interrupted()
            waited += 1
            if waited % 10 == 0:
                log.info("Waiting for another process to finish downloading into %s (%d s)", path.parent, waited)
        except NotImplementedError:
            log.warning("No file locking on %s: downloading without a lock", path.parent)
            lock = None
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _accepts(fn: Any, name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _progress_class() -> type:
    """A tqdm class for huggingface_hub that also drives ComfyUI's progress bar and honours Cancel.

    On a terminal it draws tqdm's bar; elsewhere (ComfyUI's log, a pipe) it logs every ~10 %.
    """
    from tqdm.auto import tqdm

    class ComfyProgress(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["disable"] = sys.stderr is None or not sys.stderr.isatty()
            super().__init__(*args, **kwargs)
            self.done = int(kwargs.get("initial") or 0)
            self.bytes_total = int(kwargs.get("total") or 0)
            self.comfy = host.progress_bar(self.bytes_total)
            self.next_log = 0.1
            self.label = str(kwargs.get("desc") or "download")

        def update(self, n: float | None = 1) -> bool | None:
            host.throw_if_interrupted()  # Cancel in ComfyUI stops the transfer
            self.done += int(n or 0)
            self.comfy(self.done)
            total = self.bytes_total
            if self.disable and total and self.done / total >= self.next_log:
                log.info("%s: %d%% of %.1f MB", self.label, 100 * self.done // total, total / 1e6)
                self.next_log = (self.done * 10 // total + 1) / 10
            return super().update(n)

    return ComfyProgress


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Tensors of a checkpoint, never running pickled code.

    ``.safetensors`` through safetensors; anything else through ``torch.load(weights_only=True)``.
    A file that cannot be read raises ``WeightFileUnusable`` saying what is wrong with it.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        import torch

        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightFileUnusable(path, file_problem(path, exc)) from exc


T = TypeVar("T")
# What readers of weight files raise for a bad file (torch, pickle, zip, JSON); safetensors' own
# SafetensorError is matched by name (its module is imported only when a .safetensors file is read).
_READ_ERRORS: tuple[type[BaseException], ...] = (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError)


def built_from(path: Path, build: Callable[[Path], T]) -> T:
    """``build(path)``, where a failure caused by the file (or model folder) becomes one
    ``WeightFileUnusable`` naming it. Failures that say nothing about the file (a missing package,
    a Cancel, a bug raising AttributeError) pass through unchanged."""
    try:
        return build(path)
    except WeightsUnavailable:
        raise
    except Exception as exc:
        inspected = path if path.is_file() else _broken_member(path)
        problem = format_problem(inspected) if inspected is not None else None
        if problem is None and not (isinstance(exc, _READ_ERRORS) or type(exc).__name__ == "SafetensorError"):
            raise
        where = inspected if problem is not None and inspected is not None else path
        raise WeightFileUnusable(where, problem or _unreadable(exc)) from exc


def file_problem(path: Path, exc: BaseException) -> str:
    """What is wrong with a weight file its reader refused: from its bytes when they tell, else the reader's
    first sentence."""
    return format_problem(path) or _unreadable(exc)


def _unreadable(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if "weights only load failed" in text.lower() or "unsupported global" in text.lower():
        return "it holds pickled Python objects besides tensors, which could run code when read (refused)"
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0] or type(exc).__name__
    if len(first) > 160:
        first = first[:160].rsplit(" ", 1)[0] + " ..."
    return f"it could not be read ({_short(BaseException(first))})"


_ZIP_END = b"PK\x05\x06"  # a zip archive's end-of-central-directory record: the last thing written


def format_problem(path: Path) -> str | None:
    """What is wrong with ``path`` judging by its bytes, or None when it looks like a complete weights file.

    Torch checkpoints (``torch.save``, TorchScript) are zip archives; a copy cut short lacks the closing
    record. Safetensors announce their size in a header. An HTML or text page is what a failed download
    leaves behind under the file's name.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(64)
            f.seek(max(0, size - 65_600))
            tail = f.read()
    except OSError as exc:
        return f"it cannot be opened ({exc.strerror or exc})"
    have = _mb(size)
    if size == 0:
        return "it is empty"
    if path.suffix == ".safetensors":
        return _safetensors_problem(path, head, size)
    if path.suffix == ".json":
        return None if _json_ok(path) else f"it is not valid JSON ({have}; cut short or replaced)"
    if head.startswith(b"PK\x03\x04"):
        return None if _ZIP_END in tail else f"it is incomplete ({have} on disk; the copy or download was cut short)"
    if head.lstrip()[:1] in (b"<", b"{") or head.lstrip().lower().startswith(b"error"):
        return f"it is a text or HTML page ({have}), not a weights file; a failed download may have left it"
    if head[:1] == b"\x80":  # an older, non-zip torch.save pickle: read as is
        return None
    return f"it is not a PyTorch or safetensors weights file ({have}, starts with {head[:8].hex(' ')})"


def _safetensors_problem(path: Path, head: bytes, size: int) -> str | None:
    import json

    length = int.from_bytes(head[:8], "little") if len(head) >= 8 else 0
    if not 2 <= length <= 100_000_000:
        return f"it is not a safetensors file ({_mb(size)})"
    try:
        with open(path, "rb") as f:
            f.seek(8)
            header = json.loads(f.read(length))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return f"it is incomplete or not a safetensors file ({_mb(size)} on disk)"
    if size < 8 + length + end:
        return f"it is incomplete ({_mb(size)} of {_mb(8 + length + end)}; the copy or download was cut short)"
    return None


def _broken_member(folder: Path) -> Path | None:
    """The first file of a model folder whose bytes show a problem (for a folder that failed to load)."""
    if not folder.is_dir():
        return None
    for member in sorted(folder.iterdir()):
        if member.is_file() and member.suffix in (".safetensors", ".bin", ".pt", ".pth", ".json"):
            if format_problem(member) is not None:
                return member
    return None


def _json_ok(path: Path) -> bool:
    import json

    try:
        json.loads(path.read_text())
        return True
    except (OSError, ValueError):
        return False


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size} bytes"
