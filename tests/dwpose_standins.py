"""Stand-ins for DWPose's two TorchScript files, in the released container with the released interface.

The default stand-ins (``write_detector``, ``write_estimator``, ``write_all``) have the released *layout* too:
small YOLOX and RTMPose (``dwpose_nets`` at a fraction of the width and depth) traced with torch.jit.trace, so
their parameter names are the released ones and the pack loads them into its eager modules. BatchNorm
statistics are random (and the detector's epsilon is YOLOX's 1e-3), so a loader that drops them or an
epsilon fails the parity tests. ``write_detector(..., layout="other")`` and ``write_estimator(..., layout=
"other")`` write the older tiny networks of another layout: those run through the TorchScript fallback.

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

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from scenario_detect.nodes.local import dwpose, dwpose_nets

DEPTH, WIDTH = 0.33, 0.125  # YOLOX-nano's depth, an eighth of the width: a few MB, a fast trace
POSE_HIDDEN, POSE_S = 32, 16
BRIGHT_OFFSET = 30.0  # keeps the brightness channel where SiLU is the identity (to 1e-12)


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


def _randomise_batchnorm(module: nn.Module, generator: torch.Generator, var: tuple[float, float]) -> None:
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            n = bn.num_features
            bn.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            bn.running_var.copy_(torch.rand(n, generator=generator) * (var[1] - var[0]) + var[0])
            bn.weight.data.copy_(torch.rand(n, generator=generator) * 0.5 + 0.5)
            bn.bias.data.copy_((torch.rand(n, generator=generator) - 0.5) * 0.2)


@torch.no_grad()
def _pass_brightness(module: nn.Module) -> None:
    """Every ConvBn maps channel 0 to channel 0 through its centre tap (BatchNorm the identity, no SiLU bend);
    everything else is zero. Bottleneck shortcuts add a zero branch, so channel 0 of every level is the
    (sampled) brightness plus ``BRIGHT_OFFSET``."""
    for sub in module.modules():
        if isinstance(sub, dwpose_nets.ConvBn):
            conv, bn = sub.conv, sub.bn
            conv.weight.zero_()
            bn.running_mean.zero_(), bn.running_var.fill_(1.0 - bn.eps), bn.weight.fill_(1.0), bn.bias.zero_()
            k = conv.kernel_size[0] // 2
            conv.weight[0, 0, k, k] = 1.0
    for sub in module.modules():  # after the loop above, which visits a block before its convolutions
        if isinstance(sub, dwpose_nets.DarkBottleneck) and sub.use_add:
            sub.conv2.conv.weight.zero_()  # y = SiLU(0) = 0: the shortcut carries x alone
    focus = module.backbone.backbone.stem.conv
    focus.conv.weight[0, :, 1, 1] = 1.0 / 12.0  # mean of the 2x2 cell's 3 colours
    focus.bn.bias[0] = BRIGHT_OFFSET


@torch.no_grad()
def _bright_head(head: dwpose_nets.YoloxHead) -> None:
    """A person wherever the stride-32 level is bright (over 160 of 255): boxes 4 cells (128 px) square,
    centred on the cell; the finer levels find nothing."""
    for preds in (head.cls_preds, head.reg_preds, head.obj_preds):
        for conv in preds:
            conv.weight.zero_()
            conv.bias.fill_(-20.0)
    for conv in head.reg_preds:
        conv.bias.zero_()
    head.reg_preds[2].bias.copy_(torch.tensor([0.5, 0.5, math.log(4.0), math.log(4.0)]))
    for conv, channel in ((head.obj_preds[2], 0), (head.cls_preds[2], 0)):
        conv.weight[channel, 0] = 0.15
        conv.bias[channel] = -0.15 * (160.0 + BRIGHT_OFFSET)


class FixedBatchRTMPose(dwpose_nets.RTMPose):
    """The released layout with the export's fixed batch baked into a reshape (the traced graph fails on
    any other batch, as the released file does)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.head.final_layer(self.backbone(x)).reshape(dwpose.POSE_BATCH, dwpose.KEYPOINTS, -1)
        tokens = self.head.gau(self.head.mlp(feats))
        return self.head.cls_x(tokens), self.head.cls_y(tokens)


def released_detector(bright: bool = True, seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = dwpose_nets.Yolox(DEPTH, WIDTH).eval()
    # Variances over 1: the 0..255 input stays in range through 60 layers (the bright net sets its own).
    _randomise_batchnorm(net, generator, (1.0, 4.0))
    if bright:
        _pass_brightness(net)
        _bright_head(net.head)
    return net


def released_estimator(seed: int = 0, eps: float = dwpose_nets.RTMPOSE_BN_EPS) -> nn.Module:
    torch.manual_seed(seed)
    net = FixedBatchRTMPose(DEPTH, WIDTH, hidden=POSE_HIDDEN, s=POSE_S, eps=eps).eval()
    # Small variances: a wrong epsilon moves the output.
    _randomise_batchnorm(net, torch.Generator().manual_seed(seed), (0.001, 0.05))
    with torch.no_grad():
        net.head.gau.gamma.uniform_(0.5, 1.5)  # rand in mmpose's init; ones would hide a swapped q/k
        net.head.gau.beta.uniform_(-0.1, 0.1)
    return net


def _save(module: nn.Module, example: torch.Tensor, path: Path) -> Path:
    import warnings

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notices
        torch.jit.save(torch.jit.trace(module.eval(), example), str(path))
    return path


def write_detector(path: Path, bright: bool = True, seed: int = 0, layout: str = "released") -> Path:
    if layout == "released":
        return _save(released_detector(bright, seed), torch.zeros(1, 3, *dwpose.DET_SIZE), path)
    torch.manual_seed(seed)
    return _save(DetectorStandIn(bright), torch.zeros(1, 3, *dwpose.DET_SIZE), path)


def write_estimator(path: Path, seed: int = 0, layout: str = "released") -> Path:
    example = torch.zeros(dwpose.POSE_BATCH, 3, dwpose.POSE_SIZE[1], dwpose.POSE_SIZE[0])
    if layout == "released":
        return _save(released_estimator(seed), example, path)
    torch.manual_seed(seed)
    return _save(EstimatorStandIn(), example, path)


def write_all(root: Path, layout: str = "released") -> Path:
    """Both files under ``root/<org>/<repo>/<file>`` (the models-folder layout); the detector finds bright
    regions, so the shared test models folder yields people on a test image with a bright figure."""
    write_detector(root.joinpath(*dwpose.DETECTOR.repo.split("/"), dwpose.DETECTOR.filename), layout=layout)
    write_estimator(root.joinpath(*dwpose.ESTIMATOR.repo.split("/"), dwpose.ESTIMATOR.filename), layout=layout)
    return root
