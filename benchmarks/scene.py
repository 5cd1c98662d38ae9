"""A deterministic test scene (gradients, shapes, text, mild noise) shared by benchmarks and docs."""

from __future__ import annotations

import numpy as np


def make_scene(height: int = 512, width: int = 512, seed: int = 0) -> np.ndarray:
    """[H, W, 3] float32 0..1 RGB with edges, lines, curves and texture at every scale."""
    import cv2

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack(
        [0.15 + 0.7 * x / width, 0.25 + 0.5 * y / height, 0.7 - 0.4 * x / width], axis=-1
    ).astype(np.float32)
    canvas = np.ascontiguousarray((image * 255).astype(np.uint8))
    s = min(height, width) / 512.0

    def pt(px: float, py: float) -> tuple[int, int]:
        return int(px * width), int(py * height)

    cv2.rectangle(canvas, pt(0.1, 0.15), pt(0.42, 0.62), (210, 40, 40), -1)
    cv2.rectangle(canvas, pt(0.1, 0.15), pt(0.42, 0.62), (0, 0, 0), max(1, int(4 * s)))
    cv2.circle(canvas, pt(0.7, 0.42), int(0.2 * min(height, width)), (40, 200, 90), -1)
    cv2.circle(canvas, pt(0.7, 0.42), int(0.1 * min(height, width)), (250, 250, 250), max(1, int(3 * s)))
    triangle = np.array([pt(0.15, 0.9), pt(0.47, 0.7), pt(0.66, 0.96)], np.int32)
    cv2.fillPoly(canvas, [triangle], (30, 30, 160))
    for i in range(7):
        cv2.line(canvas, pt(0.04 + i * 0.13, 0.04), pt(0.12 + i * 0.13, 0.12), (255, 255, 255), max(1, int(3 * s)))
    cv2.putText(canvas, "Detect", pt(0.62, 0.85), cv2.FONT_HERSHEY_SIMPLEX, 1.2 * s, (0, 0, 0), max(1, int(2 * s)))
    noisy = canvas.astype(np.float32) / 255.0 + rng.normal(0, 0.01, canvas.shape).astype(np.float32)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)


def photo_batch(size: int, count: int) -> list[np.ndarray]:
    """Natural photos (scikit-image's bundled samples) at size x size, else synthetic scenes.

    Edge detectors cost more on real texture than on flat synthetic shapes, so timings on photos
    are the honest ones; the fallback keeps the script usable without scikit-image.
    """
    import cv2

    try:
        from skimage import data
    except ImportError:
        return [make_scene(size, size, seed=i) for i in range(count)]
    samples = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    frames = []
    for index in range(count):
        photo = cv2.resize(samples[index % len(samples)], (size, size), interpolation=cv2.INTER_CUBIC)
        frames.append(photo.astype(np.float32) / 255.0)
    return frames
