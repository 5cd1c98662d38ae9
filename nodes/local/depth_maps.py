"""Pure post-processing of depth predictions: depth images and normal maps. No model, no I/O.

Conventions (what ControlNet models were trained on):

- Depth image: near is bright. Depth Anything and MiDaS predict relative inverse depth (disparity),
  larger = nearer, so the prediction is only min-max normalised per image to 0..1.
- Normal map: RGB = (X, Y, Z) with X pointing LEFT, Y pointing UP, Z pointing towards the viewer,
  each mapped from -1..1 to 0..1. A surface facing the camera is (0.5, 0.5, 1.0), the familiar
  lavender-blue; a surface facing up is green-ish, one facing left is red-ish. This is the
  convention of ControlNet 1.1 ``control_v11p_sd15_normalbae`` (Bae et al.'s estimator, "ScanNet
  protocol") and of the map ControlNet 1.0's normal-from-MiDaS annotator displays. Renderers use
  other conventions: Blender/OpenGL view-space normals have X pointing right (invert R), and the
  old ControlNet 1.0 ``control_sd15_normal`` model takes the channels reversed (swap R and B).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The relief a normalised (0..1) depth map is given before taking normals: the nearest point stands
# this fraction of the image's longer side in front of the farthest. Depth Anything's output is
# relative (no scale), so this is a look, chosen so that round objects read as round.
DEPTH_RELIEF = 0.3
# Normalised depth below this is treated as far background and gets the flat, camera-facing
# normal, as ControlNet's normal-from-MiDaS does (its ``bg_th`` 0.1): removes noisy far gradients.
BACKGROUND_DEPTH = 0.1

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0


def normalize_depth(prediction: torch.Tensor) -> torch.Tensor:
    """[B, H, W] relative inverse depth (larger = nearer) -> [B, H, W] 0..1, near = 1, per image.

    A flat prediction (no depth information) gives 0 everywhere instead of dividing by zero.
    """
    flat = prediction.float().flatten(1)
    low = flat.min(dim=1).values[:, None, None]
    span = (flat.max(dim=1).values[:, None, None] - low).clamp_min(1e-6)
    return ((prediction.float() - low) / span).clamp_(0.0, 1.0)


def height_gradients(height: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """d(height)/dx and d(height)/dy per pixel (x right, y down) of a [B, H, W] height field.

    Sobel kernels scaled by 1/8, so a plane rising one unit per pixel gives exactly 1. The border
    is extended linearly (2 * edge - inner neighbour), so a plane's slope is the same at the
    border as inside (replicated borders would halve it there).
    """
    kx = _SOBEL_X.to(height.device, height.dtype)
    kernels = torch.stack([kx, kx.t()])[:, None]  # [2, 1, 3, 3]: d/dx, d/dy
    field = height[:, None]
    padded = F.pad(field, (1, 1, 1, 1), mode="replicate")
    if min(field.shape[-2:]) >= 2:
        padded = 2.0 * padded - F.pad(field, (1, 1, 1, 1), mode="reflect")
    grads = F.conv2d(padded, kernels)
    return grads[:, 0], grads[:, 1]


def normals_from_height(height: torch.Tensor, flat: torch.Tensor | None = None) -> torch.Tensor:
    """Normal map [B, H, W, 3] 0..1 (RGB = left, up, towards viewer) of a height field.

    ``height`` [B, H, W] is the distance of each pixel's surface point TOWARDS the viewer, in
    pixel units (a unit sphere of radius r px has height sqrt(r^2 - x^2 - y^2)). ``flat`` [B, H, W]
    bool marks pixels forced to face the camera.

    With image axes x right, y down, the surface (x, -y, h) has the unnormalised normal
    (-dh/dx, dh/dy, 1) in (right, up, viewer) axes, so (dh/dx, dh/dy, 1) in (left, up, viewer).
    """
    gx, gy = height_gradients(height.float())
    if flat is not None:
        gx = gx.masked_fill(flat, 0.0)
        gy = gy.masked_fill(flat, 0.0)
    normal = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1)
    return normal_rgb(normal / normal.norm(dim=-1, keepdim=True))


def normal_rgb(normals: torch.Tensor) -> torch.Tensor:
    """Unit normals (X left, Y up, Z towards the viewer; -1..1) -> colours 0..1, channel for channel.

    The one mapping every normal method uses (BAE's network predicts in these axes; the depth-derived
    normals are built in them), so a method change never flips a channel.
    """
    return normals.add(1.0).mul_(0.5).clamp_(0.0, 1.0)


def normals_from_depth(
    depth: torch.Tensor, relief: float = DEPTH_RELIEF, background: float = BACKGROUND_DEPTH
) -> torch.Tensor:
    """Normal map [B, H, W, 3] 0..1 of a normalised depth image [B, H, W] (0..1, near = 1).

    The depth is scaled to a height field ``relief`` times the image's longer side deep, so the
    result does not depend on the resolution; pixels farther than ``background`` are flattened.
    """
    side = float(max(depth.shape[-2], depth.shape[-1]))
    flat = depth < background if background > 0 else None
    return normals_from_height(depth.float() * (relief * side), flat)
