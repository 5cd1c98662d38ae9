"""Stand-ins for DWPose's two TorchScript files, in the released container with the released interface.

The real files are ``torch.jit`` archives: ``yolox_l.torchscript.pt`` maps one BGR 0..255 image
[1, 3, 640, 640] to YOLOX's raw head output [1, 8400, 85] (box offsets, then sigmoid objectness and 80
sigmoid class scores, levels of stride 8, 16, 32 in row-major order); ``dw-ll_ucoco_384_bs5.torchscript.pt``
maps a batch of exactly 5 normalised crops [5, 3, 384, 288] to the tuple (simcc_x [5, 133, 576],
simcc_y [5, 133, 768]). The stand-ins are small traced networks with exactly that interface (the batch
sizes baked into their reshapes, as in the exports), saved with ``torch.jit.save``, so the pack's loader,
padding and decoding run on them unchanged.

Two detector flavours: random weights (the container, shapes and speed path), and ``bright`` weights that
find "people" where the image is bright, so a test can put a person where it wants one.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from scenario_detect.nodes.local import dwpose


class DetectorStandIn(nn.Module):
    """[1, 3, 640, 640] -> [1, 8400, 85], one random conv per output level (stride = kernel)."""

    def __init__(self, bright: bool = False) -> None:
        super().__init__()
        self.levels = nn.ModuleList(nn.Conv2d(3, dwpose.DET_CHANNELS, s, stride=s) for s in dwpose.DET_STRIDES)
        if bright:
            # Only the coarsest level answers: a person wherever the 32x32 cell is bright (mean level over
            # 160 of 255), boxes 4 cells (128 px) square centred on the cell.
            with torch.no_grad():
                for level in self.levels:
                    level.weight.zero_()
                    level.bias.fill_(-20.0)
                    level.bias[:4] = 0.0
                coarse = self.levels[-1]
                coarse.bias[2:4] = float(torch.log(torch.tensor(4.0)))
                coarse.bias[:2] = 0.5
                for channel in (4, 5):  # objectness and the person class
                    coarse.weight[channel] = 0.05 / (32 * 32)
                    coarse.bias[channel] = -0.05 * 3 * 160.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for level in self.levels:
            y = level(x).reshape(1, dwpose.DET_CHANNELS, -1)  # batch 1, as the export
            outs.append(torch.cat([y[:, :4], torch.sigmoid(y[:, 4:])], 1))
        return torch.cat(outs, 2).permute(0, 2, 1)


class EstimatorStandIn(nn.Module):
    """[5, 3, 384, 288] -> (simcc_x [5, 133, 576], simcc_y [5, 133, 768]); sigmoid scores lie in 0..1."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 32, stride=32)  # [5, 8, 12, 9]
        self.points = nn.Conv2d(8, dwpose.KEYPOINTS, 1)
        self.hidden = nn.Linear(12 * 9, 32)
        self.to_x = nn.Linear(32, int(dwpose.POSE_SIZE[0] * dwpose.SIMCC_SPLIT))
        self.to_y = nn.Linear(32, int(dwpose.POSE_SIZE[1] * dwpose.SIMCC_SPLIT))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.points(F.relu(self.stem(x))).reshape(dwpose.POSE_BATCH, dwpose.KEYPOINTS, -1)
        y = F.relu(self.hidden(y))
        return torch.sigmoid(self.to_x(y)), torch.sigmoid(self.to_y(y))


def _save(module: nn.Module, example: torch.Tensor, path: Path) -> Path:
    import warnings

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notices
        torch.jit.save(torch.jit.trace(module.eval(), example), str(path))
    return path


def write_detector(path: Path, bright: bool = True, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return _save(DetectorStandIn(bright), torch.zeros(1, 3, *dwpose.DET_SIZE), path)


def write_estimator(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    example = torch.zeros(dwpose.POSE_BATCH, 3, dwpose.POSE_SIZE[1], dwpose.POSE_SIZE[0])
    return _save(EstimatorStandIn(), example, path)


def write_all(root: Path) -> Path:
    """Both files under ``root/<org>/<repo>/<file>`` (the models-folder layout); the detector finds bright
    regions, so the shared test models folder yields people on a test image with a bright figure."""
    write_detector(root.joinpath(*dwpose.DETECTOR.repo.split("/"), dwpose.DETECTOR.filename))
    write_estimator(root.joinpath(*dwpose.ESTIMATOR.repo.split("/"), dwpose.ESTIMATOR.filename))
    return root
