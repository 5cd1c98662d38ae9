"""Weight resolution: models folder, Hugging Face cache, controlnet_aux ckpts, download, offline error.

Downloads go to a real HTTP server on 127.0.0.1 (``HF_ENDPOINT`` points there), serving random
bytes the way the hub does (``resolve/main`` URLs, a redirect to a CDN host path, ``X-Linked-Etag``
carrying the SHA-256); one route drops the connection mid-file.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from scenario_detect.nodes.local import weights
from scenario_detect.nodes.local.weights import WeightFile, WeightsUnavailable

SPEC = WeightFile("someorg/somerepo", "tiny_model.pth", "test network", "1 MB")
PAYLOAD = os.urandom(300_000)


class _Hub(http.server.BaseHTTPRequestHandler):
    """Routes: /<org>/<repo>/resolve/main/<file>; the file name picks the behaviour."""

    hits: list[str] = []

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        _Hub.hits.append(self.path)
        name = self.path.rsplit("/", 1)[-1]
        sha = hashlib.sha256(PAYLOAD).hexdigest()
        if self.path.startswith("/cdn/"):
            return self._send(PAYLOAD)
        if "missing" in name:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if "redirect" in name:
            self.send_response(302)
            self.send_header("Location", "/cdn/blob")
            self.send_header("X-Linked-Etag", f'"{sha}"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if "drop" in name:
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # the peer sees the connection end mid-file
            return None
        if "corrupt" in name:
            return self._send(PAYLOAD, etag="0" * 64)
        return self._send(PAYLOAD, etag=sha)

    def _send(self, body: bytes, etag: str = "") -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if etag:
            self.send_header("X-Linked-Etag", f'"{etag}"')
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def hub() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


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


def test_download_into_models_folder(env: Path, monkeypatch: pytest.MonkeyPatch, hub: str) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub)
    path = weights.weight_path(SPEC, models_dir=env / "models")
    assert path == env / "models" / "someorg" / "somerepo" / SPEC.filename
    assert path.read_bytes() == PAYLOAD
    assert list(path.parent.iterdir()) == [path]  # no temp file left
    hits = len(_Hub.hits)
    assert weights.weight_path(SPEC, models_dir=env / "models") == path  # found, not fetched again
    assert len(_Hub.hits) == hits


def test_download_follows_redirect_and_checks_announced_sha(
    env: Path, monkeypatch: pytest.MonkeyPatch, hub: str
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub)
    spec = WeightFile("someorg/somerepo", "redirect.pth")
    assert weights.weight_path(spec, models_dir=env / "models").read_bytes() == PAYLOAD


@pytest.mark.parametrize("name", ["drop.pth", "corrupt.pth", "missing.pth"])
def test_failed_download_leaves_no_file(env: Path, monkeypatch: pytest.MonkeyPatch, hub: str, name: str) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub)
    spec = WeightFile("someorg/somerepo", name)
    with pytest.raises(WeightsUnavailable) as caught:
        weights.weight_path(spec, models_dir=env / "models")
    folder = env / "models" / "someorg" / "somerepo"
    assert f"{hub}/someorg/somerepo/resolve/main/{name}" in str(caught.value)
    assert str(folder) in str(caught.value)
    assert not folder.exists() or list(folder.iterdir()) == []  # neither the file nor .incomplete


def test_stale_incomplete_file_is_replaced(env: Path, monkeypatch: pytest.MonkeyPatch, hub: str) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub)
    folder = env / "models" / "someorg" / "somerepo"
    _put(folder / (SPEC.filename + ".incomplete"), b"left by a killed process")
    assert weights.weight_path(SPEC, models_dir=env / "models").read_bytes() == PAYLOAD
    assert sorted(p.name for p in folder.iterdir()) == [SPEC.filename]


def test_repo_folder_gathers_all_files(env: Path, monkeypatch: pytest.MonkeyPatch, hub: str) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub)
    hf = _hf_layout(env / "hf", WeightFile("someorg/somerepo", "config.json"), "e" * 40)
    # The HF cache holds only one of the two files: the models folder gets both.
    folder = weights.repo_folder("someorg/somerepo", ["config.json", "model.safetensors"], env / "models")
    assert folder == env / "models" / "someorg" / "somerepo"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
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
    with pytest.raises(RuntimeError, match="bad.pth"):
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
    assert "config.json" not in message.split("Download", 1)[1].split(" from ", 1)[0]
    for name in ("a.safetensors", "b.json"):
        assert f"http://127.0.0.1:9/someorg/somerepo/resolve/main/{name}" in message
    assert str(env / "models" / "someorg" / "somerepo") in message
