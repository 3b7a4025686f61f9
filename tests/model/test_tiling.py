"""Dynamic tiling, frame preprocessing and demo frame sampling (spec §2.3, §2.4)."""
import numpy as np
import pytest
import torch
from PIL import Image

from vita15.image_processing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageError,
    candidate_grids,
    choose_grid,
    demo_frame_indices,
    dynamic_tiles,
    image_pixels,
    load_image,
    normalize_pixels,
    preprocess_frames,
    preprocess_image,
    resize_shortest_and_crop,
)

ORDER_12 = [(1, 1), (1, 2), (2, 1), (3, 1), (1, 3), (2, 2), (4, 1), (1, 4), (5, 1), (1, 5), (1, 6), (6, 1), (3, 2),
            (2, 3), (7, 1), (1, 7), (4, 2), (2, 4), (1, 8), (8, 1), (1, 9), (3, 3), (9, 1), (2, 5), (5, 2), (10, 1),
            (1, 10), (11, 1), (1, 11), (12, 1), (3, 4), (4, 3), (1, 12), (6, 2), (2, 6)]
ORDER_6 = [(1, 1), (1, 2), (2, 1), (3, 1), (1, 3), (4, 1), (1, 4), (2, 2), (1, 5), (5, 1), (6, 1), (2, 3), (1, 6), (3, 2)]


def test_candidate_order_matches_reference_set_order():
    assert candidate_grids(1, 12) == ORDER_12
    assert candidate_grids(1, 6) == ORDER_6


@pytest.mark.parametrize(
    "size, max_num, expected",
    [
        ((448, 448), 12, (1, 1)),  # square, small: area not above half of 2×2 → stays 1×1
        ((1000, 1000), 12, (3, 3)),  # square, large: tie rule moves to the later, larger grids
        ((600, 600), 12, (1, 1)),  # 360000 < 0.5·448²·4: 2×2 does not win the tie
        ((896, 448), 6, (2, 1)),
        ((448, 1344), 12, (1, 3)),
        ((1600, 900), 6, (2, 1)),
    ],
)
def test_grid_choice(size, max_num, expected):
    w, h = size
    grids = candidate_grids(1, max_num)
    got = choose_grid(w, h, grids)
    # independent re-statement of the rule
    best, best_diff = (1, 1), float("inf")
    for c, r in grids:
        d = abs(w / h - c / r)
        if d < best_diff or (d == best_diff and w * h > 0.5 * 448 * 448 * c * r):
            best, best_diff = (c, r), min(d, best_diff)
    assert got == best == expected


def test_tie_rule_thresholds():
    grids = candidate_grids(1, 12)
    # 1×1 vs 2×2 tie: 2×2 wins iff area > 0.5·448²·4
    side = int((0.5 * 448 * 448 * 4) ** 0.5)
    assert choose_grid(side - 1, side - 1, grids) == (1, 1)
    assert choose_grid(side + 1, side + 1, grids) == (2, 2)


def test_tiles_and_thumbnail():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 900, 3), dtype=np.uint8))
    tiles = dynamic_tiles(img, max_num=6)
    assert len(tiles) == 3 + 1 and all(t.size == (448, 448) for t in tiles)
    resized = img.resize((3 * 448, 448), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(tiles[1]), np.asarray(resized)[:, 448:896])
    assert np.array_equal(np.asarray(tiles[-1]), np.asarray(img.resize((448, 448), Image.Resampling.BICUBIC)))
    assert len(dynamic_tiles(Image.new("RGB", (100, 100)), max_num=12)) == 1  # single tile: no thumbnail


def test_normalisation_values():
    img = Image.new("RGB", (448, 448), (255, 0, 128))
    px = preprocess_image(img, max_tiles=1)
    assert px.shape == (1, 3, 448, 448) and px.dtype == torch.float32
    expected = [(1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], (0 - IMAGENET_MEAN[1]) / IMAGENET_STD[1],
                (128 / 255 - IMAGENET_MEAN[2]) / IMAGENET_STD[2]]
    assert torch.allclose(px[0, :, 10, 10], torch.tensor(expected), atol=1e-6)


def test_uint8_tiles_normalise_to_the_clip_formula_bit_for_bit():
    """Inference sends uint8 tiles and normalises them where the model runs; every value must be the
    one CLIPImageProcessor's numpy arithmetic gives (float64 rescale, float32 mean/std)."""
    img = Image.fromarray(np.random.default_rng(3).integers(0, 256, (700, 900, 3), dtype=np.uint8))
    pixels = image_pixels(img, max_tiles=6)
    assert pixels.dtype == torch.uint8 and pixels.shape == (7, 3, 448, 448)
    mean, std = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)
    hwc = pixels.permute(0, 2, 3, 1).numpy()
    formula = ((hwc.astype(np.float64) * (1 / 255)).astype(np.float32) - mean) / std
    assert np.array_equal(normalize_pixels(pixels).permute(0, 2, 3, 1).numpy(), formula)
    assert torch.equal(normalize_pixels(pixels), preprocess_image(img, max_tiles=6))


def test_normalisation_table_reaches_a_device_once():
    """The lookup table is copied to a device once, not at every call: a copy from pageable memory
    blocks until the device's queue is empty, which on a GPU stalled the engine at every ViT batch."""
    from vita15 import image_processing

    image_processing._table_on.cache_clear()
    pixels = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    first = normalize_pixels(pixels)
    assert torch.equal(normalize_pixels(pixels), first)
    info = image_processing._table_on.cache_info()
    assert (info.misses, info.hits) == (1, 1)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "CMYK", "RGBA", "I;16"])
def test_colour_modes(mode):
    img = Image.new(mode, (500, 300))
    assert preprocess_image(img, max_tiles=6).shape[1:] == (3, 448, 448)


def test_frame_resize_and_centre_crop():
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (360, 640, 3), dtype=np.uint8))
    out = resize_shortest_and_crop(img)
    ref = img.resize((int(448 * 640 / 360), 448), Image.Resampling.BICUBIC)
    left = (ref.width - 448) // 2
    assert np.array_equal(np.asarray(out), np.asarray(ref)[:, left:left + 448])
    assert preprocess_frames([img, img]).shape == (2, 3, 448, 448)


def test_demo_frame_indices():
    assert demo_frame_indices(250, 25.0) == list(range(0, 250, 25))  # 10 s → 1 fps
    assert demo_frame_indices(60, 30.0) == [0, 0, 0, 30]  # 2 s → 4 picks: linspace(0, 1, 4, int)
    long = demo_frame_indices(30 * 60, 30.0)
    assert len(long) == 16 and long[0] == 0 and long[-1] == 30 * 59
    positions = list(range(0, 1800, 30))
    assert long == [positions[i] for i in np.linspace(0, 59, 16, dtype=int)]


def test_unreadable_image_names_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageError, match="broken.png"):
        load_image(bad)
    good = tmp_path / "ok.png"
    Image.new("RGBA", (20, 10)).save(good)
    assert load_image(good).mode == "RGB"
