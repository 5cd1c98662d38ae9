"""The two DWPose networks' architectures at full size, random weights, for timing (speed does not depend on
the weights' values; the tests use small stand-ins with the same interface, ``tests/dwpose_standins.py``).

- ``yolox_l()``: YOLOX-l (Megvii's layout: Focus stem, CSPDarknet depth 1.0 width 1.0 with SPP, PAFPN, decoupled
  head of width 256), [1, 3, 640, 640] -> [1, 8400, 85] (boxes raw, objectness and classes through a sigmoid).
- ``rtmpose_l()``: RTMPose-l whole-body at 384x288 (CSPNeXt-l backbone P5, SPPF, channel attention; RTMCC head:
  7x7 conv to 133 maps, ScaleNorm + linear to 256, one gated attention unit (s 128, expansion 2), linear
  classifiers to 576 and 768 SimCC bins), [5, 3, 384, 288] -> ([5, 133, 576], [5, 133, 768]).

Written from the published architecture descriptions for this benchmark; BatchNorm is kept (not folded into
the convolutions), which is how a plain trace exports it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ConvBnAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 1, s: int = 1, groups: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.SiLU())


# --- YOLOX-l ---------------------------------------------------------------------------------------------------


class DarkBottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool) -> None:
        super().__init__()
        self.conv1, self.conv2, self.shortcut = ConvBnAct(c, c, 1), ConvBnAct(c, c, 3), shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.shortcut else y


class DarkCSP(nn.Module):
    def __init__(self, cin: int, cout: int, n: int, shortcut: bool = True) -> None:
        super().__init__()
        hidden = cout // 2
        self.conv1, self.conv2 = ConvBnAct(cin, hidden), ConvBnAct(cin, hidden)
        self.blocks = nn.Sequential(*(DarkBottleneck(hidden, shortcut) for _ in range(n)))
        self.conv3 = ConvBnAct(2 * hidden, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.cat([self.blocks(self.conv1(x)), self.conv2(x)], 1))


class SPP(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = ConvBnAct(cin, cin // 2), ConvBnAct(cin // 2 * 4, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [F.max_pool2d(x, k, 1, k // 2) for k in (5, 9, 13)], 1))


class YoloxL(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = ConvBnAct(12, 64, 3)
        self.dark2 = nn.Sequential(ConvBnAct(64, 128, 3, 2), DarkCSP(128, 128, 3))
        self.dark3 = nn.Sequential(ConvBnAct(128, 256, 3, 2), DarkCSP(256, 256, 9))
        self.dark4 = nn.Sequential(ConvBnAct(256, 512, 3, 2), DarkCSP(512, 512, 9))
        self.dark5 = nn.Sequential(ConvBnAct(512, 1024, 3, 2), SPP(1024, 1024), DarkCSP(1024, 1024, 3, False))
        self.lateral0, self.c3_p4 = ConvBnAct(1024, 512), DarkCSP(1024, 512, 3, False)
        self.reduce1, self.c3_p3 = ConvBnAct(512, 256), DarkCSP(512, 256, 3, False)
        self.bu2, self.c3_n3 = ConvBnAct(256, 256, 3, 2), DarkCSP(512, 512, 3, False)
        self.bu1, self.c3_n4 = ConvBnAct(512, 512, 3, 2), DarkCSP(1024, 1024, 3, False)
        self.stems = nn.ModuleList(ConvBnAct(c, 256) for c in (256, 512, 1024))
        self.cls_convs = nn.ModuleList(nn.Sequential(ConvBnAct(256, 256, 3), ConvBnAct(256, 256, 3)) for _ in "abc")
        self.reg_convs = nn.ModuleList(nn.Sequential(ConvBnAct(256, 256, 3), ConvBnAct(256, 256, 3)) for _ in "abc")
        self.cls_preds = nn.ModuleList(nn.Conv2d(256, 80, 1) for _ in "abc")
        self.reg_preds = nn.ModuleList(nn.Conv2d(256, 4, 1) for _ in "abc")
        self.obj_preds = nn.ModuleList(nn.Conv2d(256, 1, 1) for _ in "abc")
        prior = -math.log((1 - 0.01) / 0.01)  # YOLOX's initial objectness/class bias: nothing found at random
        for conv in [*self.cls_preds, *self.obj_preds]:
            nn.init.constant_(conv.bias, prior)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1)
        c3 = self.dark3(self.dark2(self.stem(x)))
        c4 = self.dark4(c3)
        c5 = self.dark5(c4)
        p5 = self.lateral0(c5)
        p4 = self.c3_p4(torch.cat([F.interpolate(p5, scale_factor=2.0, mode="nearest"), c4], 1))
        p4r = self.reduce1(p4)
        out2 = self.c3_p3(torch.cat([F.interpolate(p4r, scale_factor=2.0, mode="nearest"), c3], 1))
        out1 = self.c3_n3(torch.cat([self.bu2(out2), p4r], 1))
        out0 = self.c3_n4(torch.cat([self.bu1(out1), p5], 1))
        outs = []
        for i, feat in enumerate((out2, out1, out0)):
            feat = self.stems[i](feat)
            cls, reg = self.cls_convs[i](feat), self.reg_convs[i](feat)
            level = torch.cat(
                [self.reg_preds[i](reg), self.obj_preds[i](reg).sigmoid(), self.cls_preds[i](cls).sigmoid()], 1
            )
            outs.append(level.flatten(2))
        return torch.cat(outs, 2).permute(0, 2, 1)


# --- RTMPose-l (CSPNeXt-l + RTMCC head) ----------------------------------------------------------------------


class CSPNeXtBlock(nn.Module):
    def __init__(self, c: int, shortcut: bool) -> None:
        super().__init__()
        self.conv1 = ConvBnAct(c, c, 3)
        self.depthwise, self.pointwise = ConvBnAct(c, c, 5, groups=c), ConvBnAct(c, c, 1)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pointwise(self.depthwise(self.conv1(x)))
        return x + y if self.shortcut else y


class NeXtCSP(nn.Module):
    def __init__(self, c: int, n: int, shortcut: bool) -> None:
        super().__init__()
        mid = c // 2
        self.main, self.short = ConvBnAct(c, mid), ConvBnAct(c, mid)
        self.blocks = nn.Sequential(*(CSPNeXtBlock(mid, shortcut) for _ in range(n)))
        self.attention = nn.Conv2d(2 * mid, 2 * mid, 1)
        self.final = ConvBnAct(2 * mid, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.blocks(self.main(x)), self.short(x)], 1)
        y = y * F.hardsigmoid(self.attention(F.adaptive_avg_pool2d(y, 1)))
        return self.final(y)


class SPPF(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = ConvBnAct(c, c // 2), ConvBnAct(c // 2 * 4, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        pools = [x]
        for _ in range(3):
            pools.append(F.max_pool2d(pools[-1], 5, 1, 2))
        return self.conv2(torch.cat(pools, 1))


class ScaleNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale, self.g = dim**-0.5, nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / (torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.scale).clamp(min=1e-5) * self.g


class GAU(nn.Module):
    """RTMCC's gated attention unit over the 133 keypoint tokens."""

    def __init__(self, dim: int = 256, expansion: int = 2, s: int = 128) -> None:
        super().__init__()
        self.e, self.s = dim * expansion, s
        self.norm = ScaleNorm(dim)
        self.uv = nn.Linear(dim, 2 * self.e + s, bias=False)
        self.gamma, self.beta = nn.Parameter(torch.rand(2, s)), nn.Parameter(torch.zeros(2, s))
        self.o = nn.Linear(self.e, dim, bias=False)
        self.res_scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v, base = torch.split(F.silu(self.uv(self.norm(x))), [self.e, self.e, self.s], dim=-1)
        qk = base.unsqueeze(2) * self.gamma + self.beta
        q, k = qk[:, :, 0], qk[:, :, 1]
        kernel = F.relu(q @ k.transpose(1, 2) / math.sqrt(self.s)) ** 2
        return x * self.res_scale + self.o(u * (kernel @ v))


class RTMPoseL(nn.Module):
    def __init__(self, keypoints: int = 133, size: tuple[int, int] = (288, 384)) -> None:
        super().__init__()
        self.stem = nn.Sequential(ConvBnAct(3, 32, 3, 2), ConvBnAct(32, 32, 3), ConvBnAct(32, 64, 3))
        stages = []
        for cin, cout, n, shortcut, spp in (
            (64, 128, 3, True, False),
            (128, 256, 6, True, False),
            (256, 512, 6, True, False),
            (512, 1024, 3, False, True),
        ):
            layers = [ConvBnAct(cin, cout, 3, 2)] + ([SPPF(cout)] if spp else []) + [NeXtCSP(cout, n, shortcut)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.final = nn.Conv2d(1024, keypoints, 7, padding=3)
        tokens = (size[0] // 32) * (size[1] // 32)
        self.mlp = nn.Sequential(ScaleNorm(tokens), nn.Linear(tokens, 256, bias=False))
        self.gau = GAU()
        self.cls_x = nn.Linear(256, size[0] * 2, bias=False)
        self.cls_y = nn.Linear(256, size[1] * 2, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.final(self.stages(self.stem(x))).flatten(2)
        tokens = self.gau(self.mlp(feats))
        return self.cls_x(tokens), self.cls_y(tokens)


def yolox_l() -> nn.Module:
    return YoloxL().eval()


def rtmpose_l() -> nn.Module:
    return RTMPoseL().eval()
