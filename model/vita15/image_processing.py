"""Image and video-frame preprocessing of VITA-1.5 (spec §2.3, §2.4).

Images: InternVL dynamic tiling (grid choice reproduces the reference's CPython set order and tie
rule) + a thumbnail, then CLIP rescale/normalise. Video frames: no tiling, shortest side → 448
bicubic and centre crop, exactly as `CLIPImageProcessor` does with InternViT's preprocessor config.

Colour modes follow the reference `Image.open(...).convert("RGB")`: alpha is DROPPED, not composited
(transparent pixels keep their stored colour), palettes are expanded, CMYK uses Pillow's naive
conversion and 16-bit grey (I;16) is clipped to 0..255 by Pillow.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SIZE = 448
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESCALE = 1 / 255
MIN_FRAMES, MAX_FRAMES = 4, 16  # MIN_IMAGE_LENGTH / MAX_IMAGE_LENGTH of the demo


class ImageError(ValueError):
    """An image that cannot be read or decoded; the message names the file."""


def load_image(path: str | Path) -> Image.Image:
    """Open an image file as RGB, with an error that names the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{path}: cannot read image: {exc}") from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """`convert("RGB")` like the reference (no alpha compositing); decodes lazily loaded files."""
    return image if image.mode == "RGB" else image.convert("RGB")


def candidate_grids(min_num: int = 1, max_num: int = 12) -> list[tuple[int, int]]:
    """(columns, rows) grids with min_num ≤ cols·rows ≤ max_num in the reference order.

    The reference builds a Python set and stable-sorts it by area; tuples of small ints hash
    deterministically, so building the same set in the same way reproduces its iteration order.
    """
    grids = set(
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_num <= i * j <= max_num
    )
    return sorted(grids, key=lambda g: g[0] * g[1])


def choose_grid(width: int, height: int, grids: list[tuple[int, int]], image_size: int = IMAGE_SIZE) -> tuple[int, int]:
    """Closest aspect ratio; on an exact tie a later grid wins iff the image area exceeds half its area."""
    aspect = width / height
    best, best_diff = (1, 1), math.inf
    for cols, rows in grids:
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and width * height > 0.5 * image_size * image_size * cols * rows:
            best = (cols, rows)
    return best


def dynamic_tiles(
    image: Image.Image, max_num: int = 12, min_num: int = 1, image_size: int = IMAGE_SIZE, use_thumbnail: bool = True
) -> list[Image.Image]:
    """Resize to the chosen grid, cut row-major tiles, append a whole-image thumbnail if > 1 tile."""
    image = to_rgb(image)
    cols, rows = choose_grid(image.width, image.height, candidate_grids(min_num, max_num), image_size)
    resized = image.resize((cols * image_size, rows * image_size), Image.Resampling.BICUBIC)
    tiles = [
        resized.crop((c * image_size, r * image_size, (c + 1) * image_size, (r + 1) * image_size))
        for r in range(rows)
        for c in range(cols)
    ]
    if use_thumbnail and len(tiles) > 1:
        tiles.append(image.resize((image_size, image_size), Image.Resampling.BICUBIC))
    return tiles


def resize_shortest_and_crop(image: Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """CLIPImageProcessor geometry: shortest side → size (long side truncated), centre crop size×size."""
    image = to_rgb(image)
    width, height = image.size
    if width <= height:
        new_size = (size, int(size * height / width))
    else:
        new_size = (int(size * width / height), size)
    if new_size != image.size:
        image = image.resize(new_size, Image.Resampling.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return image.crop((left, top, left + size, top + size))


def to_pixels(images: list[Image.Image]) -> torch.Tensor:
    """RGB images of one size → (N, 3, H, W) uint8: a quarter of the bytes of the normalised floats."""
    return torch.from_numpy(np.stack([np.asarray(to_rgb(im)) for im in images])).permute(0, 3, 1, 2).contiguous()


@lru_cache(maxsize=1)
def _normalize_table() -> torch.Tensor:
    """(3, 256) float32: CLIP rescale (float64 × 1/255 → float32) then ImageNet normalisation of each
    channel value, in the numpy float32 arithmetic of `CLIPImageProcessor`. The formula is element-wise,
    so looking a pixel up in this table gives bit-for-bit the value the formula gives for it."""
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    values = np.repeat(np.arange(256, dtype=np.float64)[:, None], 3, axis=1)
    return torch.from_numpy((((values * RESCALE).astype(np.float32) - mean) / std).T.copy())


@lru_cache(maxsize=8)
def _table_on(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The flattened table and each channel's offset into it, made once per device: copying the table
    from pageable memory at every call is a blocking copy, which waits for the device's whole queue
    (at each ViT batch the fast engine's queued next round drained, and the GPU idled behind the host)."""
    table = _normalize_table().flatten().to(device)
    return table, torch.arange(0, 3 * 256, 256, device=device, dtype=torch.int32).view(1, 3, 1, 1)


def normalize_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) uint8 → float32 on the pixels' device; the GPU gets uint8 tiles and normalises them."""
    table, offsets = _table_on(pixels.device)
    return table[pixels.int() + offsets]


def normalize(images: list[Image.Image]) -> torch.Tensor:
    """CLIP rescale and ImageNet normalisation → (N, 3, H, W) float32."""
    return normalize_pixels(to_pixels(images))


def image_pixels(image: Image.Image, max_tiles: int = 12) -> torch.Tensor:
    """One image → (n_tiles [+ thumbnail], 3, 448, 448) uint8 tiles, before normalisation."""
    return to_pixels([resize_shortest_and_crop(tile) for tile in dynamic_tiles(image, max_num=max_tiles)])


def frame_pixels(frames: list[Image.Image]) -> torch.Tensor:
    """Video frames → (n_frames, 3, 448, 448) uint8: no tiling, shortest side + centre crop."""
    return to_pixels([resize_shortest_and_crop(frame) for frame in frames])


def preprocess_image(image: Image.Image, max_tiles: int = 12) -> torch.Tensor:
    """One image → (n_tiles [+ thumbnail], 3, 448, 448) float32."""
    return normalize_pixels(image_pixels(image, max_tiles))


def preprocess_frames(frames: list[Image.Image]) -> torch.Tensor:
    """Video frames → (n_frames, 3, 448, 448) float32."""
    return normalize_pixels(frame_pixels(frames))


def demo_frame_indices(n_frames: int, fps: float, min_frames: int = MIN_FRAMES, max_frames: int = MAX_FRAMES) -> list[int]:
    """Frame positions of `video_audio_demo.py`: 1 fps stride, clamped to [min, max] frames by linspace."""
    if n_frames <= 0:
        raise ValueError("video has no frames")
    stride = max(1, int(round(float(fps))))
    positions = list(range(0, n_frames, stride))
    if len(positions) > max_frames:
        picks = np.linspace(0, len(positions) - 1, num=max_frames, dtype=int)
    elif len(positions) < min_frames:
        picks = np.linspace(0, len(positions) - 1, num=min_frames, dtype=int)
    else:
        return positions
    return [positions[int(p)] for p in picks]
