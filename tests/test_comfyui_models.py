"""controlnet-aux model-backed methods inside the real ComfyUI server, with random weights.

The session server gets ``random_weights.models_root()`` as its ``scenario_detect`` models folder
through ``extra_model_paths.yaml`` (setup step in ``random_weights.py``), downloads disabled. Each
method runs LoadImage -> Detect -> SaveImage over HTTP; the networks are loaded once (the server
log's "Loading <name>" lines are counted) and released when ComfyUI unloads models (POST /free).
"""

from __future__ import annotations

import hashlib
import time

import comfy_host
import numpy as np
import pytest
import random_weights  # noqa: F401  (registers the models folder with the shared server)
from comfy_host import ComfyServer, PromptFailed
from fake_hub import FakeHub
from PIL import Image
from test_comfyui_detect import HEIGHT, WIDTH, detect_graph, keypoints_graph, make_test_image, pose_keypoint_value

from scenario_detect.nodes.local import weights

pytestmark = pytest.mark.comfyui
pytest.importorskip("controlnet_aux")

# (modality, method, networks it loads)
METHODS = [
    ("mlsd", "mlsd_large", ["mlsd"]),
    ("scribble", "pidinet_scribble", ["pidinet"]),
    ("scribble", "hed_scribble", ["hed"]),
    ("sketch", "lineart", ["lineart"]),
    ("sketch", "lineart_coarse", ["lineart_coarse"]),
    ("lineart_anime", "lineart_anime", ["lineart_anime"]),
    ("pose", "openpose_body", ["openpose_body"]),
    ("pose", "openpose_full", ["openpose_body", "openpose_hand", "openpose_face"]),
    ("pose", "dwpose", ["dwpose_detector", "dwpose_estimator"]),  # eager modules from the archives, in ModelPatcher
    ("normal", "normal_bae", ["normal_bae"]),
]


@pytest.fixture(scope="module")
def image_name(comfy_server: ComfyServer) -> str:
    return comfy_server.upload_image(make_test_image(1), name="models-test.png")


@pytest.fixture(scope="module")
def other_image(comfy_server: ComfyServer) -> str:
    # Another input, so ComfyUI's execution cache cannot answer the second run without Detect.
    return comfy_server.upload_image(make_test_image(2), name="models-test-2.png")


def _log(server: ComfyServer) -> str:
    return server.log_path.read_text(errors="replace")


def _loads(server: ComfyServer, name: str) -> int:
    return _log(server).count(f"Loading {name} from ")


def _run(server: ComfyServer, image_name: str, modality: str, method: str) -> np.ndarray:
    history = server.run(detect_graph(server, image_name, modality=modality, local_method=method), timeout=300)
    [path] = server.output_images(history)
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize(("modality", "method", "networks"), METHODS, ids=[m[1] for m in METHODS])
def test_model_method_end_to_end(
    comfy_server: ComfyServer, image_name: str, other_image: str, modality: str, method: str, networks: list[str]
) -> None:
    first = _run(comfy_server, image_name, modality, method)
    assert first.shape == (HEIGHT, WIDTH, 3)
    loads = {n: _loads(comfy_server, n) for n in networks}
    assert all(count >= 1 for count in loads.values()), loads
    second = _run(comfy_server, other_image, modality, method)
    assert second.shape == (HEIGHT, WIDTH, 3)
    assert {n: _loads(comfy_server, n) for n in networks} == loads  # ran again, not loaded again
    assert "memory leak" not in _log(comfy_server)  # ComfyUI's bookkeeping of our networks is clean


@pytest.mark.parametrize("method", ["openpose_body", "openpose_full"])
def test_pose_keypoint_output_in_a_real_prompt(comfy_server: ComfyServer, image_name: str, method: str) -> None:
    graph = keypoints_graph(comfy_server, image_name, batch=2, modality="pose", local_method=method)
    value = pose_keypoint_value(comfy_server, graph, timeout=300)
    assert [(entry["canvas_width"], entry["canvas_height"]) for entry in value] == [(WIDTH, HEIGHT)] * 2
    for person in (p for entry in value for p in entry["people"]):  # random weights seldom find anyone
        assert [len(person[k]) for k in ("pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d",
                                         "hand_right_keypoints_2d")] == [54, 210, 63, 63]


def test_unload_models_releases_and_next_run_reloads(comfy_server: ComfyServer, image_name: str) -> None:
    _run(comfy_server, image_name, "scribble", "pidinet_scribble")
    before = _loads(comfy_server, "pidinet")
    start = len(_log(comfy_server))
    # What the "Free model and node cache" button sends: unload_all_models() and a cache reset.
    status, _ = comfy_server.post_json("/free", {"unload_models": True, "free_memory": True})
    assert status == 200
    deadline = time.monotonic() + 30
    while "Released pidinet" not in _log(comfy_server)[start:]:  # ComfyUI detached our patcher
        assert time.monotonic() < deadline, "ComfyUI's unload_all_models did not release the network"
        time.sleep(0.2)
    _run(comfy_server, image_name, "scribble", "pidinet_scribble")
    assert _loads(comfy_server, "pidinet") == before + 1
    after = _log(comfy_server)[start:]
    assert "Traceback" not in after and "memory leak" not in after


def test_missing_weights_are_downloaded_into_the_models_folder(tmp_path) -> None:
    """A server with an empty models folder (given by extra_model_paths.yaml) and downloads allowed.
    A run cancelled mid-download leaves no file under the real name, only its partial file (hidden
    under .cache); the next run continues that partial over HTTP (a loopback hub, ``fake_hub.py``)
    into the folder, then runs."""
    payload = (random_weights.models_root() / "lllyasviel" / "Annotators" / "table5_pidinet.pth").read_bytes()
    hub = FakeHub(default=payload)
    hub.slow_gets = 1
    with hub.serve() as url:
        options, models = comfy_host.without_weights(
            tmp_path, HF_ENDPOINT=url, SCENARIO_DETECT_OFFLINE="0", HF_HUB_OFFLINE="0"
        )
        with comfy_host.start_server(options, name="download") as server:
            name = server.upload_image(make_test_image(0), name="download.png")
            folder = models / "lllyasviel" / "Annotators"
            partial = weights.partial_path(folder, "table5_pidinet.pth", hashlib.sha256(payload).hexdigest())
            prompt = server.queue_prompt(
                detect_graph(server, name, modality="scribble", local_method="pidinet_scribble")
            )
            deadline = time.monotonic() + 60
            while not partial.exists():  # the download has started
                assert time.monotonic() < deadline, "the download never started"
                time.sleep(0.05)
            server.interrupt()
            with pytest.raises(PromptFailed) as cancelled:
                server.wait_for(prompt, timeout=60)
            assert cancelled.value.error["event"] == "execution_interrupted"
            assert _files(folder) == [str(partial.relative_to(folder))]  # no file under the real name
            had = partial.stat().st_size  # what reached the disk (huggingface_hub writes 10 MB blocks)
            hub.hits.clear()
            result = _run(server, name, "scribble", "pidinet_scribble")
            log = _log(server)
    path = models / "lllyasviel" / "Annotators" / "table5_pidinet.pth"
    assert path.read_bytes() == payload
    assert _files(path.parent) == ["table5_pidinet.pth"]  # the partial became the file
    gets = [ranged for method, route, ranged in hub.hits if method == "GET"]
    assert gets == [f"bytes={had}-" if had else ""]  # the next run continued from the bytes on disk
    assert result.shape == (HEIGHT, WIDTH, 3)
    assert ("Resuming" if had else "Downloading") + " table5_pidinet.pth" in log
    assert f"Loading pidinet from {path}" in log


def _files(folder) -> list[str]:
    """Files under ``folder`` a person would see or that hold data: lock files (under .cache) aside,
    but any partial download included."""
    if not folder.is_dir():
        return []
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*")
        if p.is_file() and (".cache" not in p.parts or p.name.endswith((".partial", ".incomplete")))
    )
