"""DWPose's two networks as plain torch modules, their weights read from the released TorchScript archives.

- ``Yolox``: Megvii's YOLOX (Focus stem, CSPDarknet, PAFPN, decoupled head), [n, 3, H, W] BGR 0..255 -> raw head
  output [n, H/8*W/8 + H/16*W/16 + H/32*W/32, 85] (box offsets, sigmoid objectness, 80 sigmoid classes).
- ``RTMPose``: mmpose's RTMPose (CSPNeXt backbone with channel attention, RTMCC head: 7x7 conv to the keypoint
  maps, ScaleNorm + linear, one gated attention unit, SimCC classifiers), [n, 3, 384, 288] -> (simcc_x, simcc_y).

The modules carry the parameter names of the networks the archives were traced from (``backbone.backbone.stem.
conv.conv.weight``, ``head.gau.uv.weight``, ...), so ``load_archive`` reads an archive's state dict, matches it by
name (a common prefix allowed) and copies it in; BatchNorm epsilons are not parameters, so they are read from the
archive's graph. Why eager instead of running the archive: the pose export was traced at a fixed batch of 5 (one
person cost five crops), and TorchScript is not available on every torch device (DirectML). The archive is read,
never executed. ``fuse_batchnorm`` then folds each BatchNorm into its convolution for inference (what onnxruntime
does at load) and turns the 1x1 convolutions into matrix products: same results within float rounding, fewer
passes over the feature maps.

Width and depth are parameters only so the tests can write small stand-ins with the released layout.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

YOLOX_BN_EPS = 1e-3  # Megvii's init_yolo sets it; used only when the archive's graph does not say
RTMPOSE_BN_EPS = 1e-5


class ConvBn(nn.Module):
    """Conv (no bias) + BatchNorm + SiLU; Megvii's BaseConv and mmcv's ConvModule name their parts alike."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, eps: float = 1e-5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(cout, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.bn(self.conv(x)), inplace=True)


class Pointwise(nn.Module):
    """A 1x1 convolution (stride 1, with bias) as one matrix product: on the CPU torch runs these through
    im2col, a copy of the input first; BLAS reads the NCHW tensor in place (measured: a 1x1 conv 2x faster)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach().flatten(1).clone(), requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach()[:, None].clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        return torch.baddbmm(self.bias, self.weight.expand(n, -1, -1), x.flatten(2)).view(n, -1, h, w)


# --- YOLOX (Megvii layout) -----------------------------------------------------------------------------------


class DarkBottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool, eps: float) -> None:
        super().__init__()
        self.conv1 = ConvBn(c, c, 1, eps=eps)
        self.conv2 = ConvBn(c, c, 3, eps=eps)
        self.use_add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class DarkCSP(nn.Module):
    """Megvii's CSPLayer: two 1x1 halves, bottlenecks on the first, concatenated, 1x1 out."""

    def __init__(self, cin: int, cout: int, n: int, shortcut: bool, eps: float) -> None:
        super().__init__()
        hidden = cout // 2
        self.conv1 = ConvBn(cin, hidden, eps=eps)
        self.conv2 = ConvBn(cin, hidden, eps=eps)
        self.conv3 = ConvBn(2 * hidden, cout, eps=eps)
        self.m = nn.Sequential(*(DarkBottleneck(hidden, shortcut, eps) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.cat([self.m(self.conv1(x)), self.conv2(x)], 1))


class SpatialPyramidPool(nn.Module):
    """Max pools of 5, 9 and 13 beside the input. Computed as 5, 5∘5, 5∘5∘5 (SPPF): the same maxima, cheaper."""

    def __init__(self, cin: int, cout: int, eps: float) -> None:
        super().__init__()
        self.conv1 = ConvBn(cin, cin // 2, eps=eps)
        self.conv2 = ConvBn(cin // 2 * 4, cout, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pools = [self.conv1(x)]
        for _ in range(3):
            pools.append(F.max_pool2d(pools[-1], 5, 1, 2))
        return self.conv2(torch.cat(pools, 1))


class Focus(nn.Module):
    def __init__(self, cout: int, eps: float) -> None:
        super().__init__()
        self.conv = ConvBn(12, cout, 3, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Pixels of each 2x2 cell as channels: top-left, bottom-left, top-right, bottom-right.
        return self.conv(torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1))


class CSPDarknet(nn.Module):
    def __init__(self, depth: float, width: float, eps: float) -> None:
        super().__init__()
        base, n = int(width * 64), max(round(depth * 3), 1)
        self.stem = Focus(base, eps)
        self.dark2 = nn.Sequential(ConvBn(base, base * 2, 3, 2, eps=eps), DarkCSP(base * 2, base * 2, n, True, eps))
        self.dark3 = nn.Sequential(
            ConvBn(base * 2, base * 4, 3, 2, eps=eps), DarkCSP(base * 4, base * 4, 3 * n, True, eps)
        )
        self.dark4 = nn.Sequential(
            ConvBn(base * 4, base * 8, 3, 2, eps=eps), DarkCSP(base * 8, base * 8, 3 * n, True, eps)
        )
        self.dark5 = nn.Sequential(
            ConvBn(base * 8, base * 16, 3, 2, eps=eps),
            SpatialPyramidPool(base * 16, base * 16, eps),
            DarkCSP(base * 16, base * 16, n, False, eps),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c3 = self.dark3(self.dark2(self.stem(x)))
        c4 = self.dark4(c3)
        return c3, c4, self.dark5(c4)


class PAFPN(nn.Module):
    def __init__(self, depth: float, width: float, eps: float) -> None:
        super().__init__()
        c3, c4, c5 = (int(c * width) for c in (256, 512, 1024))
        n = round(3 * depth)
        self.backbone = CSPDarknet(depth, width, eps)
        self.lateral_conv0 = ConvBn(c5, c4, eps=eps)
        self.C3_p4 = DarkCSP(2 * c4, c4, n, False, eps)
        self.reduce_conv1 = ConvBn(c4, c3, eps=eps)
        self.C3_p3 = DarkCSP(2 * c3, c3, n, False, eps)
        self.bu_conv2 = ConvBn(c3, c3, 3, 2, eps=eps)
        self.C3_n3 = DarkCSP(2 * c3, c4, n, False, eps)
        self.bu_conv1 = ConvBn(c4, c4, 3, 2, eps=eps)
        self.C3_n4 = DarkCSP(2 * c4, c5, n, False, eps)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c3, c4, c5 = self.backbone(x)
        top = self.lateral_conv0(c5)
        mid = self.reduce_conv1(self.C3_p4(torch.cat([F.interpolate(top, scale_factor=2.0), c4], 1)))
        out8 = self.C3_p3(torch.cat([F.interpolate(mid, scale_factor=2.0), c3], 1))
        out16 = self.C3_n3(torch.cat([self.bu_conv2(out8), mid], 1))
        out32 = self.C3_n4(torch.cat([self.bu_conv1(out16), top], 1))
        return out8, out16, out32


class YoloxHead(nn.Module):
    def __init__(self, width: float, eps: float, classes: int = 80) -> None:
        super().__init__()
        hidden = int(256 * width)
        levels = range(3)
        self.cls_convs = nn.ModuleList(
            nn.Sequential(ConvBn(hidden, hidden, 3, eps=eps), ConvBn(hidden, hidden, 3, eps=eps)) for _ in levels
        )
        self.reg_convs = nn.ModuleList(
            nn.Sequential(ConvBn(hidden, hidden, 3, eps=eps), ConvBn(hidden, hidden, 3, eps=eps)) for _ in levels
        )
        self.cls_preds = nn.ModuleList(nn.Conv2d(hidden, classes, 1) for _ in levels)
        self.reg_preds = nn.ModuleList(nn.Conv2d(hidden, 4, 1) for _ in levels)
        self.obj_preds = nn.ModuleList(nn.Conv2d(hidden, 1, 1) for _ in levels)
        self.stems = nn.ModuleList(ConvBn(int(c * width), hidden, eps=eps) for c in (256, 512, 1024))

    def forward(self, feats: Iterable[torch.Tensor]) -> torch.Tensor:
        outs = []
        for k, feat in enumerate(feats):
            x = self.stems[k](feat)
            reg = self.reg_convs[k](x)
            level = [self.reg_preds[k](reg), self.obj_preds[k](reg).sigmoid(), self.cls_preds[k](self.cls_convs[k](x))]
            level[2] = level[2].sigmoid()
            outs.append(torch.cat(level, 1).flatten(2))
        return torch.cat(outs, 2).permute(0, 2, 1)


class Yolox(nn.Module):
    """YOLOX; depth 1.0, width 1.0 is YOLOX-l (the released ``yolox_l``)."""

    def __init__(self, depth: float = 1.0, width: float = 1.0, eps: float = YOLOX_BN_EPS) -> None:
        super().__init__()
        self.backbone = PAFPN(depth, width, eps)
        self.head = YoloxHead(width, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


# --- RTMPose (mmpose layout) -----------------------------------------------------------------------------------


class NeXtBlock(nn.Module):
    """CSPNeXtBlock: 3x3 conv, then a depthwise-separable 5x5 (``conv2.depthwise_conv``, ``conv2.pointwise_conv``)."""

    def __init__(self, c: int, shortcut: bool, eps: float) -> None:
        super().__init__()
        self.conv1 = ConvBn(c, c, 3, eps=eps)
        self.conv2 = nn.Module()
        self.conv2.depthwise_conv = ConvBn(c, c, 5, groups=c, eps=eps)
        self.conv2.pointwise_conv = ConvBn(c, c, 1, eps=eps)
        self.add_identity = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2.pointwise_conv(self.conv2.depthwise_conv(self.conv1(x)))
        return y + x if self.add_identity else y


class ChannelAttention(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.hardsigmoid(self.fc(F.adaptive_avg_pool2d(x, 1)))


class NeXtCSP(nn.Module):
    """mmdet's CSPLayer with CSPNeXt blocks and channel attention."""

    def __init__(self, c: int, n: int, shortcut: bool, eps: float) -> None:
        super().__init__()
        mid = c // 2
        self.main_conv = ConvBn(c, mid, eps=eps)
        self.short_conv = ConvBn(c, mid, eps=eps)
        self.final_conv = ConvBn(2 * mid, c, eps=eps)
        self.blocks = nn.Sequential(*(NeXtBlock(mid, shortcut, eps) for _ in range(n)))
        self.attention = ChannelAttention(2 * mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_conv(self.attention(torch.cat([self.blocks(self.main_conv(x)), self.short_conv(x)], 1)))


class CSPNeXt(nn.Module):
    STAGES = (
        (64, 128, 3, True, False),
        (128, 256, 6, True, False),
        (256, 512, 6, True, False),
        (512, 1024, 3, False, True),
    )

    def __init__(self, depth: float, width: float, eps: float) -> None:
        super().__init__()
        stem = int(64 * width)
        self.stem = nn.Sequential(
            ConvBn(3, stem // 2, 3, 2, eps=eps),
            ConvBn(stem // 2, stem // 2, 3, eps=eps),
            ConvBn(stem // 2, stem, 3, eps=eps),
        )
        for i, (cin, cout, n, shortcut, spp) in enumerate(self.STAGES, 1):
            cin, cout, n = int(cin * width), int(cout * width), max(round(n * depth), 1)
            layers = [ConvBn(cin, cout, 3, 2, eps=eps)]
            layers += [SpatialPyramidPool(cout, cout, eps)] if spp else []
            self.add_module(f"stage{i}", nn.Sequential(*layers, NeXtCSP(cout, n, shortcut, eps)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i in range(1, 5):
            x = getattr(self, f"stage{i}")(x)
        return x


class ScaleNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.scale, self.eps = dim**-0.5, eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.scale
        return x / norm.clamp(min=self.eps) * self.g


class Scale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))


class GatedAttention(nn.Module):
    """RTMCCBlock (self-attention, no relative bias): a gated attention unit over the keypoint tokens."""

    def __init__(self, dim: int, s: int, expansion: int = 2) -> None:
        super().__init__()
        self.e, self.s = dim * expansion, s
        self.gamma = nn.Parameter(torch.ones(2, s))
        self.beta = nn.Parameter(torch.zeros(2, s))
        self.o = nn.Linear(self.e, dim, bias=False)
        self.uv = nn.Linear(dim, 2 * self.e + s, bias=False)
        self.ln = ScaleNorm(dim)
        self.res_scale = Scale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v, base = torch.split(F.silu(self.uv(self.ln(x))), [self.e, self.e, self.s], dim=-1)
        qk = base.unsqueeze(2) * self.gamma + self.beta
        kernel = F.relu(torch.bmm(qk[:, :, 0], qk[:, :, 1].transpose(1, 2)) / math.sqrt(self.s)).square()
        return x * self.res_scale.scale + self.o(u * torch.bmm(kernel, v))


class RTMCCHead(nn.Module):
    def __init__(self, cin: int, keypoints: int, size: tuple[int, int], hidden: int, s: int, split: float) -> None:
        super().__init__()
        tokens = (size[0] // 32) * (size[1] // 32)
        self.final_layer = nn.Conv2d(cin, keypoints, 7, padding=3)
        self.mlp = nn.Sequential(ScaleNorm(tokens), nn.Linear(tokens, hidden, bias=False))
        self.gau = GatedAttention(hidden, s)
        self.cls_x = nn.Linear(hidden, int(size[0] * split), bias=False)
        self.cls_y = nn.Linear(hidden, int(size[1] * split), bias=False)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.gau(self.mlp(self.final_layer(feats).flatten(2)))
        return self.cls_x(tokens), self.cls_y(tokens)


class RTMPose(nn.Module):
    """RTMPose; the defaults are RTMPose-l whole-body at 288x384 (the released ``dw-ll_ucoco_384``)."""

    def __init__(
        self,
        depth: float = 1.0,
        width: float = 1.0,
        keypoints: int = 133,
        size: tuple[int, int] = (288, 384),
        hidden: int = 256,
        s: int = 128,
        eps: float = RTMPOSE_BN_EPS,
    ) -> None:
        super().__init__()
        self.backbone = CSPNeXt(depth, width, eps)
        self.head = RTMCCHead(int(1024 * width), keypoints, size, hidden, s, 2.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.backbone(x))


# --- weights from the archive ----------------------------------------------------------------------------------


class LayoutMismatch(ValueError):
    """The archive's parameters are not this architecture's (names or shapes differ)."""


def _batchnorm_eps(scripted: torch.jit.ScriptModule) -> dict[str, float]:
    """Each BatchNorm's epsilon by module name, read from the constants of its traced ``forward``."""
    found: dict[str, float] = {}
    for name, sub in scripted.named_modules():
        if getattr(sub, "original_name", "") not in ("BatchNorm2d", "SyncBatchNorm", "_BatchNorm"):
            continue
        try:
            nodes = sub.graph.findAllNodes("aten::batch_norm")
            if nodes:
                found[name] = float(nodes[0].inputsAt(7).toIValue())
        except (RuntimeError, AttributeError, TypeError):
            continue  # no graph of its own (inlined): the architecture's default stays
    return found


def _prefix(ours: list[str], theirs: dict[str, torch.Tensor]) -> str:
    """The prefix the archive's names carry before ours ("" when they are the same)."""
    first = ours[0]
    for key in theirs:
        if key.endswith(first):
            prefix = key[: len(key) - len(first)]
            if (prefix == "" or prefix.endswith(".")) and all(prefix + k in theirs for k in ours):
                return prefix
    missing = [k for k in ours if k not in theirs][:3]
    raise LayoutMismatch(f"it has no parameters named like {missing}")


def _shape(state: dict[str, torch.Tensor], suffix: str) -> tuple[int, ...]:
    for key, tensor in state.items():
        if key.endswith(suffix):
            return tuple(tensor.shape)
    raise LayoutMismatch(f"it has no parameter named like '{suffix}'")


def _blocks(state: dict[str, torch.Tensor], infix: str) -> int:
    """How many blocks a Sequential of the archive holds (indices after ``infix``)."""
    found = {key.split(infix, 1)[1].split(".", 1)[0] for key in state if infix in key}
    if not found:
        raise LayoutMismatch(f"it has no parameters named like '{infix}'")
    return len(found)


def yolox_for(state: dict[str, torch.Tensor]) -> Yolox:
    """The YOLOX whose width and depth the archive's parameters have (YOLOX-l for the released file)."""
    width = _shape(state, "backbone.stem.conv.conv.weight")[0] / 64
    return Yolox(depth=_blocks(state, "dark2.1.m.") / 3, width=width)


def rtmpose_for(state: dict[str, torch.Tensor]) -> RTMPose:
    """The RTMPose whose sizes the archive's parameters have (RTMPose-l whole-body for the released file)."""
    hidden = _shape(state, "head.mlp.1.weight")[0]
    return RTMPose(
        depth=_blocks(state, "stage1.1.blocks.") / 3,
        width=_shape(state, "backbone.stem.2.conv.weight")[0] / 64,
        keypoints=_shape(state, "head.final_layer.weight")[0],
        hidden=hidden,
        s=_shape(state, "head.gau.gamma")[1],
    )


def load_archive(module: nn.Module, scripted: torch.jit.ScriptModule) -> nn.Module:
    """``module`` with the parameters and BatchNorm epsilons of the loaded (never run) TorchScript archive.

    Raises ``LayoutMismatch`` when the names or shapes do not fit.
    """
    theirs = scripted.state_dict()
    ours = module.state_dict()
    prefix = _prefix(list(ours), theirs)
    for key, tensor in ours.items():
        if theirs[prefix + key].shape != tensor.shape:
            raise LayoutMismatch(f"{prefix + key} is {list(theirs[prefix + key].shape)}, not {list(tensor.shape)}")
    module.load_state_dict({key: theirs[prefix + key] for key in ours})
    eps = _batchnorm_eps(scripted)
    for name, sub in module.named_modules():
        if isinstance(sub, nn.BatchNorm2d) and prefix + name in eps:
            sub.eps = eps[prefix + name]
    return module


@torch.no_grad()
def fuse_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every ``ConvBn``'s BatchNorm (inference statistics) into its convolution, in place."""
    for sub in module.modules():
        if isinstance(sub, ConvBn) and isinstance(sub.bn, nn.BatchNorm2d):
            bn, conv = sub.bn, sub.conv
            factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = nn.Conv2d(
                conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, groups=conv.groups
            )
            fused.weight.copy_(conv.weight * factor[:, None, None, None])
            fused.bias.copy_(bn.bias - bn.running_mean * factor)
            pointwise = conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.groups == 1
            sub.conv, sub.bn = (Pointwise(fused) if pointwise else fused), nn.Identity()
    return module
