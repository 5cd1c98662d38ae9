"""A 16-bit result PNG from Scenario keeps its precision in the IMAGE (the same decoder as the CLI)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from fake_scenario import FakeScenario
from scenario_support import images, run

pytestmark = pytest.mark.timeout(60)


def test_16_bit_depth_result_is_not_clipped() -> None:
    height, width = 48, 80
    depth = np.tile(np.round(np.linspace(0, 65535, width)).astype(np.uint16), (height, 1))
    depth[:, 1] = 300  # between two 8-bit levels (1 and 2 of 255): only 16 bits tell it apart
    ok, png = cv2.imencode(".png", depth)
    assert ok
    with FakeScenario(job_seconds=0.05) as fake:
        fake.result_png = png.tobytes()  # the API's depth map, as a 16-bit gray PNG
        result = run(fake, images(1, height, width), "depth")
        assert fake.requests_to("GET", r"^/content/")  # it came over HTTP from the fake
    out = result.images[0].numpy()
    assert out.shape == (height, width, 3)
    expected = depth.astype(np.float64) / 65535
    assert np.abs(out[..., 0] - expected).max() < 1e-6  # full precision, not white from column 2 on
    assert abs(float(out[0, 1, 0]) - 300 / 65535) < 1e-7
