"""Weight resolution: models folder, Hugging Face cache, controlnet_aux ckpts, download, offline error.

Downloads go through huggingface_hub to a real HTTP server on 127.0.0.1 (``HF_ENDPOINT`` points
there) that answers like the hub (``tests/fake_hub.py``: ETags, sizes, ``Range`` requests, a
redirect to a CDN on another host name, 404s); the file name picks a behaviour. Interrupted
downloads are driven by the hub's ``mid_file`` hook (a download held mid-file), never by sleeps.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from fake_hub import FakeHub

from scenario_detect.nodes import host
from scenario_detect.nodes.local import weights
from scenario_detect.nodes.local.weights import WeightFile, WeightsUnavailable

SPEC = WeightFile("someorg/somerepo", "tiny_model.pth", "test network", "1 MB")
PAYLOAD = os.urandom(300_000)
# The "flaky" file: larger than huggingface_hub's 10 MB read chunk, so the bytes before the cut reach
# the disk (it resumes from the last chunk it wrote) like a real multi-hundred-MB download's do.
LARGE = os.urandom(24 << 20)

HUB = FakeHub(default=PAYLOAD)
HUB.files["someorg/somerepo/flaky.pth"] = LARGE
for _name in ("killed.pth", "cancelled.pth"):
    HUB.files[f"someorg/somerepo/{_name}"] = LARGE
# Where the hub holds an interrupted download: past huggingface_hub's first 10 MB read, so those
# bytes are on disk (it writes what it reads in 10 MB blocks) when the download stops.
HOLD_AT = 12 << 20


@pytest.fixture(scope="module")
def hub() -> Iterator[str]:
    with HUB.serve() as url:
        yield url


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No inherited weights settings: every folder is under tmp_path, downloads go nowhere real."""
    for key in (
        "HF_HUB_OFFLINE",
        "SCENARIO_DETECT_OFFLINE",
        "HF_HOME",
        "HUGGINGFACE_HUB_CACHE",
        "HF_TOKEN",
        "AUX_ANNOTATOR_CKPTS_PATH",
        "SCENARIO_DETECT_MODELS_DIR",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing answers
    return tmp_path


def _put(path: Path, data: bytes = b"weights") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _hf_layout(root: Path, spec: WeightFile, rev: str) -> Path:
    repo = root / ("models--" + spec.repo.replace("/", "--"))
    _put(repo / "refs" / "main", rev.encode())
    return _put(repo / "snapshots" / rev / spec.filename)


def test_models_folder_hit_nested_and_flat(env: Path) -> None:
    models = env / "models"
    nested = _put(models / "someorg" / "somerepo" / SPEC.filename)
    assert weights.weight_path(SPEC, models_dir=models) == nested
    nested.unlink()
    flat = _put(models / SPEC.filename)
    assert weights.weight_path(SPEC, models_dir=models) == flat


def test_env_models_dir_and_cli_default(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert weights.download_dir() == env / "xdg" / "scenario-detect" / "models"
    monkeypatch.setenv("SCENARIO_DETECT_MODELS_DIR", str(env / "mine"))
    found = _put(env / "mine" / "someorg" / "somerepo" / SPEC.filename)
    assert weights.download_dir() == env / "mine"
    assert weights.weight_path(SPEC) == found


def test_hf_cache_hit_prefers_refs_main(env: Path) -> None:
    _hf_layout(env / "hf", SPEC, "b" * 40)
    older = env / "hf" / "models--someorg--somerepo" / "snapshots" / ("a" * 40) / SPEC.filename
    _put(older)
    found = weights.weight_path(SPEC, models_dir=env / "models")
    assert found.parent.name == "b" * 40


def test_hf_home_is_honoured(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(env / "hfhome"))
    path = _hf_layout(env / "hfhome" / "hub", SPEC, "c" * 40)
    assert weights.weight_path(SPEC, models_dir=env / "models") == path


def test_controlnet_aux_ckpts_hit(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUX_ANNOTATOR_CKPTS_PATH", str(env / "ckpts"))
    path = _put(env / "ckpts" / "someorg" / "somerepo" / SPEC.filename)
    assert weights.weight_path(SPEC, models_dir=env / "models") == path


def test_models_folder_wins_over_other_copies(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUX_ANNOTATOR_CKPTS_PATH", str(env / "ckpts"))
    _put(env / "ckpts" / "someorg" / "somerepo" / SPEC.filename)
    hf = _hf_layout(env / "hf", SPEC, "d" * 40)
    assert weights.weight_path(SPEC, models_dir=env / "models") == hf
    ours = _put(env / "models" / "someorg" / "somerepo" / SPEC.filename)
    assert weights.weight_path(SPEC, models_dir=env / "models") == ours


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "SCENARIO_DETECT_OFFLINE"])
def test_offline_miss_names_file_url_and_folder(env: Path, monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "1")
    with pytest.raises(WeightsUnavailable) as caught:
        weights.weight_path(SPEC, models_dir=env / "models")
    message = str(caught.value)
    assert "tiny_model.pth" in message
    assert "http://127.0.0.1:9/someorg/somerepo/resolve/main/tiny_model.pth" in message
    assert str(env / "models" / "someorg" / "somerepo") in message
    assert "offline" in message
    assert not (env / "models").exists()


def _real_files(folder: Path) -> list[str]:
    """The files a person sees in ``folder``: the hidden folder of partial downloads (.cache) aside."""
    return sorted(p.name for p in folder.iterdir() if p.name != ".cache") if folder.is_dir() else []


def test_download_into_models_folder(env: Path, monkeypatch: pytest.MonkeyPatch, hub: str) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub)
    path = weights.weight_path(SPEC, models_dir=env / "models")
    assert path == env / "models" / "someorg" / "somerepo" / SPEC.filename
    assert path.read_bytes() == PAYLOAD
    assert _real_files(path.parent) == [SPEC.filename]  # no temp file left
    assert not list((path.parent / ".cache").rglob("*.partial"))
    assert ("GET", f"/someorg/somerepo/resolve/main/{SPEC.filename}", "") in HUB.hits
    hits = len(HUB.hits)
    assert weights.weight_path(SPEC, models_dir=env / "models") == path  # found, not fetched again
    assert len(HUB.hits) == hits


def test_download_follows_redirect_to_another_host_and_checks_announced_sha(
    env: Path, monkeypatch: pytest.MonkeyPatch, hub: str
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub)
    spec = WeightFile("someorg/somerepo", "redirect.pth")
    assert weights.weight_path(spec, models_dir=env / "models").read_bytes() == PAYLOAD
    assert ("GET", "/cdn/someorg/somerepo/redirect.pth", "") in HUB.hits  # the body came from the "CDN"


def test_download_cut_half_way_resumes_from_the_byte_it_had(
    env: Path, monkeypatch: pytest.MonkeyPatch, hub: str
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub)
    spec = WeightFile("someorg/somerepo", "flaky.pth")
    HUB.hits.clear()
    path = weights.weight_path(spec, models_dir=env / "models")
    assert path.read_bytes() == LARGE
    gets = [(route, ranged) for method, route, ranged in HUB.hits if method == "GET"]
    # First the whole file (cut after half), then only the rest: a Range request from the last byte
    # written before the cut (huggingface_hub writes in 10 MB chunks).
    assert [route for route, _ in gets] == ["/someorg/somerepo/resolve/main/flaky.pth"] * 2
    assert gets[0][1] == ""
    resumed_at = int(re.fullmatch(r"bytes=(\d+)-", gets[1][1]).group(1))
    assert 0 < resumed_at <= len(LARGE) // 2


@pytest.mark.parametrize("name", ["corrupt.pth", "missing.pth"])
def test_failed_download_leaves_no_file(env: Path, monkeypatch: pytest.MonkeyPatch, hub: str, name: str) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub)
    spec = WeightFile("someorg/somerepo", name)
    with pytest.raises(WeightsUnavailable) as caught:
        weights.weight_path(spec, models_dir=env / "models")
    folder = env / "models" / "someorg" / "somerepo"
    assert f"{hub}/someorg/somerepo/resolve/main/{name}" in str(caught.value)
    assert str(folder) in str(caught.value)
    assert _real_files(folder) == []  # neither the file nor a partial one under its name
    assert not folder.is_dir() or not list(folder.rglob("*.partial"))  # a corrupt one is deleted too


def test_failed_download_lists_every_file_the_model_still_needs(
    env: Path, monkeypatch: pytest.MonkeyPatch, hub: str
) -> None:
    """The second of three files is missing on the hub: the error names it AND the third, each with
    its size, URL and folder; the first one is downloaded and not listed."""
    monkeypatch.setenv("HF_ENDPOINT", hub)
    specs = [WeightFile("someorg/somerepo", "first.pth", "net", "1 MB"),
             WeightFile("someorg/somerepo", "missing.pth", "net", "2 MB"),
             WeightFile("otherorg/other", "third.pth", "net", "3 MB")]
    with pytest.raises(WeightsUnavailable) as caught:
        weights.weight_paths(specs, models_dir=env / "models")
    message = str(caught.value)
    assert "needs 2 files" in message and "missing.pth" in message.splitlines()[0]
    listed = [line for line in message.splitlines() if line.startswith("  - ")]
    assert listed == [
        f"  - missing.pth, 2 MB: {hub}/someorg/somerepo/resolve/main/missing.pth -> folder "
        f"{env / 'models' / 'someorg' / 'somerepo'}",
        f"  - third.pth, 3 MB: {hub}/otherorg/other/resolve/main/third.pth -> folder "
        f"{env / 'models' / 'otherorg' / 'other'}",
    ]
    assert (env / "models" / "someorg" / "somerepo" / "first.pth").read_bytes() == PAYLOAD


def test_unreachable_endpoint_lists_every_file_at_once(env: Path) -> None:
    """HF_ENDPOINT is the discard port (nothing listens): the first HEAD fails at once, and the
    error lists both files of the model, not only the first."""
    specs = [WeightFile("someorg/somerepo", "config.json"), WeightFile("someorg/somerepo", "model.safetensors",
                                                                      "test net", "99 MB")]
    with pytest.raises(WeightsUnavailable) as caught:
        weights.repo_folder("someorg/somerepo", specs, env / "models")
    message = str(caught.value)
    assert "download of 'config.json' failed" in message
    for name, size in (("config.json", ""), ("model.safetensors", ", 99 MB")):
        assert f"  - {name}{size}: http://127.0.0.1:9/someorg/somerepo/resolve/main/{name} -> folder " in message
    assert str(env / "models" / "someorg" / "somerepo") in message


def test_repo_folder_gathers_all_files(env: Path, monkeypatch: pytest.MonkeyPatch, hub: str) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub)
    hf = _hf_layout(env / "hf", WeightFile("someorg/somerepo", "config.json"), "e" * 40)
    # The HF cache holds only one of the two files: the models folder gets both.
    folder = weights.repo_folder("someorg/somerepo", ["config.json", "model.safetensors"], env / "models")
    assert folder == env / "models" / "someorg" / "somerepo"
    assert _real_files(folder) == ["config.json", "model.safetensors"]
    _put(hf.parent / "model.safetensors")
    assert weights.repo_folder("someorg/somerepo", ["config.json", "model.safetensors"], env / "models") in (
        folder,
        hf.parent,
    )


def test_load_state_dict_refuses_pickled_code(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(2)}, good)
    assert torch.equal(weights.load_state_dict(good)["w"], torch.ones(2))
    bad = tmp_path / "bad.pth"
    torch.save({"w": torch.ones(2), "obj": _Pickled()}, bad)
    with pytest.raises(weights.WeightFileUnusable, match="bad.pth.*pickled Python objects"):
        weights.load_state_dict(bad)


def test_safetensors_are_read(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_file({"w": torch.zeros(3)}, str(path))
    assert torch.equal(weights.load_state_dict(path)["w"], torch.zeros(3))


class _Pickled:
    """Any non-tensor object: weights_only=True must refuse to rebuild it."""


def test_repo_folder_offline_names_every_missing_file(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCENARIO_DETECT_OFFLINE", "1")
    _put(env / "models" / "someorg" / "somerepo" / "config.json")
    with pytest.raises(WeightsUnavailable) as caught:
        weights.repo_folder("someorg/somerepo", ["config.json", "a.safetensors", "b.json"], env / "models")
    message = str(caught.value)
    listed = [line for line in message.splitlines() if line.startswith("  - ")]
    folder = env / "models" / "someorg" / "somerepo"
    assert listed == [
        f"  - {name}: http://127.0.0.1:9/someorg/somerepo/resolve/main/{name} -> folder {folder}"
        for name in ("a.safetensors", "b.json")
    ]  # config.json is there already: not listed
    assert "offline" in message


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 120  # liveness only: the test is driven by the hub's hooks
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.02)


def _on_disk(partial: Path) -> Callable[[], bool]:
    return lambda: partial.is_file() and partial.stat().st_size > 0


def _gets(name: str) -> list[str]:
    """The Range header of each GET the hub saw for ``name``."""
    return [ranged for method, route, ranged in HUB.hits if method == "GET" and route.endswith("/" + name)]


_DOWNLOAD_IN_A_CHILD = """
import sys
from pathlib import Path
from scenario_detect.nodes.local import weights
weights.weight_path(weights.WeightFile("someorg/somerepo", sys.argv[2]), models_dir=Path(sys.argv[1]))
"""


def test_download_killed_mid_file_resumes_in_another_process(
    env: Path, monkeypatch: pytest.MonkeyPatch, hub: str
) -> None:
    """A child process downloads a 24 MB file; the hub holds it mid-file and the child is killed
    (SIGKILL, no clean-up of any kind). The next download, here, asks only for the bytes the
    partial file lacks (``Range: bytes=<its size>-``) and the result is the served file."""
    monkeypatch.setenv("HF_ENDPOINT", hub)
    models = env / "models"
    folder = models / "someorg" / "somerepo"
    partial = weights.partial_path(folder, "killed.pth", _sha(LARGE))
    held, release = threading.Event(), threading.Event()

    def hold(key: str) -> None:
        if key.endswith("/killed.pth"):
            held.set()
            release.wait(timeout=120)

    HUB.mid_file, HUB.mid_file_at = hold, HOLD_AT
    output = env / "child.log"
    try:
        with open(output, "wb") as log:
            child = subprocess.Popen(
                [sys.executable, "-c", _DOWNLOAD_IN_A_CHILD, str(models), "killed.pth"],
                env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
            )
            try:
                _wait_until(lambda: held.is_set() or child.poll() is not None, "the child's download")
                assert held.is_set(), output.read_text(errors="replace")
                _wait_until(_on_disk(partial), "the child's first bytes on disk")
            finally:
                child.kill()
                child.wait()
    finally:
        release.set()
        HUB.mid_file, HUB.mid_file_at = None, 1 << 16
    assert child.returncode == -signal.SIGKILL
    had = partial.stat().st_size
    assert 0 < had < len(LARGE)
    assert _real_files(folder) == []  # nothing under the real name

    HUB.hits.clear()
    path = weights.weight_path(WeightFile("someorg/somerepo", "killed.pth"), models_dir=models)
    assert _gets("killed.pth") == [f"bytes={had}-"]
    assert path.read_bytes() == LARGE
    assert _real_files(folder) == ["killed.pth"] and not partial.exists()


def test_cancelled_download_keeps_its_bytes_and_the_next_run_resumes(
    env: Path, monkeypatch: pytest.MonkeyPatch, hub: str
) -> None:
    """Cancel (an abandoned run, as ComfyUI's Cancel reaches a worker run) lands mid-file: the run
    stops with Interrupted, the bytes on disk stay in the partial file, and the next run continues
    them with a Range request."""
    monkeypatch.setenv("HF_ENDPOINT", hub)
    models = env / "models"
    folder = models / "someorg" / "somerepo"
    partial = weights.partial_path(folder, "cancelled.pth", _sha(LARGE))
    spec = WeightFile("someorg/somerepo", "cancelled.pth")
    cancel = threading.Event()

    def cancel_once_on_disk(key: str) -> None:
        if key.endswith("/cancelled.pth"):
            _wait_until(_on_disk(partial), "the first bytes on disk")
            cancel.set()  # the rest of the file follows; the next progress update stops the run

    HUB.mid_file, HUB.mid_file_at = cancel_once_on_disk, HOLD_AT
    host.set_abandon_event(cancel)
    try:
        with pytest.raises(host.Interrupted):
            weights.weight_path(spec, models_dir=models)
    finally:
        host.set_abandon_event(None)
        HUB.mid_file, HUB.mid_file_at = None, 1 << 16
    had = partial.stat().st_size
    assert 0 < had < len(LARGE)
    assert _real_files(folder) == []

    HUB.hits.clear()
    assert weights.weight_path(spec, models_dir=models).read_bytes() == LARGE
    assert _gets("cancelled.pth") == [f"bytes={had}-"]
    assert not partial.exists()


def test_partial_of_a_file_changed_upstream_is_discarded(
    env: Path, monkeypatch: pytest.MonkeyPatch, hub: str
) -> None:
    """A partial left by a download of an older version of the file (another etag) is not
    continued: the new version is fetched whole and the old bytes are deleted."""
    monkeypatch.setenv("HF_ENDPOINT", hub)
    folder = env / "models" / "someorg" / "somerepo"
    older, newer = os.urandom(200_000), os.urandom(200_000)
    HUB.files["someorg/somerepo/changed.pth"] = newer
    stale = _put(weights.partial_path(folder, "changed.pth", _sha(older)), older[:100_000])
    HUB.hits.clear()
    path = weights.weight_path(WeightFile("someorg/somerepo", "changed.pth"), models_dir=env / "models")
    assert path.read_bytes() == newer
    assert _gets("changed.pth") == [""]  # the whole file, no Range
    assert not stale.exists()
    assert not list(folder.rglob("*.partial"))


def test_server_that_ignores_range_still_yields_the_right_file(
    env: Path, monkeypatch: pytest.MonkeyPatch, hub: str
) -> None:
    """The partial is continued with a Range request, the server answers 200 with the whole file:
    the partial is rewritten from byte 0, not appended to."""
    monkeypatch.setenv("HF_ENDPOINT", hub)
    folder = env / "models" / "someorg" / "somerepo"
    partial = _put(weights.partial_path(folder, "norange.pth", _sha(PAYLOAD)), PAYLOAD[:100_000])
    HUB.hits.clear()
    path = weights.weight_path(WeightFile("someorg/somerepo", "norange.pth"), models_dir=env / "models")
    assert _gets("norange.pth") == ["bytes=100000-"]
    assert path.read_bytes() == PAYLOAD
    assert not partial.exists()


def test_partial_with_wrong_bytes_fails_the_checksum_and_is_deleted(
    env: Path, monkeypatch: pytest.MonkeyPatch, hub: str
) -> None:
    """Bytes on disk that are not the file's (a damaged partial under the right etag) are caught by
    the SHA-256 check; the partial is deleted so the next run starts clean and succeeds."""
    monkeypatch.setenv("HF_ENDPOINT", hub)
    folder = env / "models" / "someorg" / "somerepo"
    spec = WeightFile("someorg/somerepo", "damaged.pth")
    partial = _put(weights.partial_path(folder, "damaged.pth", _sha(PAYLOAD)), os.urandom(100_000))
    with pytest.raises(WeightsUnavailable, match="checksum mismatch"):
        weights.weight_path(spec, models_dir=env / "models")
    assert not partial.exists() and _real_files(folder) == []
    assert weights.weight_path(spec, models_dir=env / "models").read_bytes() == PAYLOAD


def test_a_download_another_process_holds_is_waited_for_not_repeated(
    env: Path, monkeypatch: pytest.MonkeyPatch, hub: str
) -> None:
    """While another process holds the file's download lock, a run waits; when that process has
    put the file in place and lets go, the run uses it without fetching a byte."""
    from filelock import FileLock

    monkeypatch.setenv("HF_ENDPOINT", hub)
    folder = env / "models" / "someorg" / "somerepo"
    lock = weights.lock_path(folder, "shared.pth")
    lock.parent.mkdir(parents=True)
    other = FileLock(str(lock))  # its own open file: flock conflicts with ours as another process's does
    other.acquire()
    HUB.hits.clear()
    result: list[Path | BaseException] = []

    def run() -> None:
        try:
            result.append(weights.weight_path(WeightFile("someorg/somerepo", "shared.pth"), models_dir=env / "models"))
        except BaseException as exc:  # noqa: BLE001 (reported by the assertion below)
            result.append(exc)

    waiter = threading.Thread(target=run)
    try:
        waiter.start()
        _wait_until(lambda: any(route.endswith("/shared.pth") for _, route, _ in HUB.hits), "the run's HEAD")
        assert not result  # still waiting for the lock
        _put(folder / "shared.pth", PAYLOAD)  # what the other process downloaded
    finally:
        other.release()
        waiter.join(timeout=120)
    assert result == [folder / "shared.pth"]
    assert _gets("shared.pth") == []


def test_cancel_while_waiting_for_another_process_stops_the_run(
    env: Path, monkeypatch: pytest.MonkeyPatch, hub: str
) -> None:
    """Cancel is honoured while waiting for another process's download: the run stops there,
    without fetching the file itself."""
    from filelock import FileLock

    monkeypatch.setenv("HF_ENDPOINT", hub)
    folder = env / "models" / "someorg" / "somerepo"
    lock = weights.lock_path(folder, "blocked.pth")
    lock.parent.mkdir(parents=True)
    other = FileLock(str(lock))
    other.acquire()
    cancel = threading.Event()
    cancel.set()
    host.set_abandon_event(cancel)
    HUB.hits.clear()
    try:
        with pytest.raises(host.Interrupted):
            weights.weight_path(WeightFile("someorg/somerepo", "blocked.pth"), models_dir=env / "models")
    finally:
        host.set_abandon_event(None)
        other.release()
    assert _gets("blocked.pth") == []
    assert _real_files(folder) == []
