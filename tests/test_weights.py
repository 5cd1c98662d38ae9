"""Weight resolution: models folder, Hugging Face cache, controlnet_aux ckpts, download, offline error.

Downloads go through huggingface_hub to a real HTTP server on 127.0.0.1 (``HF_ENDPOINT`` points
there) that answers like the hub (``tests/fake_hub.py``: ETags, sizes, ``Range`` requests, a
redirect to a CDN on another host name, 404s); the file name picks a behaviour.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fake_hub import FakeHub

from scenario_detect.nodes.local import weights
from scenario_detect.nodes.local.weights import WeightFile, WeightsUnavailable

SPEC = WeightFile("someorg/somerepo", "tiny_model.pth", "test network", "1 MB")
PAYLOAD = os.urandom(300_000)
# The "flaky" file: larger than huggingface_hub's 10 MB read chunk, so the bytes before the cut reach
# the disk (it resumes from the last chunk it wrote) like a real multi-hundred-MB download's do.
LARGE = os.urandom(24 << 20)

HUB = FakeHub(default=PAYLOAD)
HUB.files["someorg/somerepo/flaky.pth"] = LARGE


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
    """The files a person sees in ``folder``: huggingface_hub's bookkeeping folder (.cache) aside."""
    return sorted(p.name for p in folder.iterdir() if p.name != ".cache") if folder.is_dir() else []


def test_download_into_models_folder(env: Path, monkeypatch: pytest.MonkeyPatch, hub: str) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub)
    path = weights.weight_path(SPEC, models_dir=env / "models")
    assert path == env / "models" / "someorg" / "somerepo" / SPEC.filename
    assert path.read_bytes() == PAYLOAD
    assert _real_files(path.parent) == [SPEC.filename]  # no temp file left
    assert not list((path.parent / ".cache").rglob("*.incomplete"))
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
    assert not folder.is_dir() or not list(folder.rglob("*.incomplete"))


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
    listed = [line for line in message.splitlines() if line.startswith("  - ")]
    folder = env / "models" / "someorg" / "somerepo"
    assert listed == [
        f"  - {name}: http://127.0.0.1:9/someorg/somerepo/resolve/main/{name} -> folder {folder}"
        for name in ("a.safetensors", "b.json")
    ]  # config.json is there already: not listed
    assert "offline" in message
