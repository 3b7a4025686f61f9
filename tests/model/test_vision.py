"""InternViT, ×0.5 scaling, pixel shuffle order and the projector (spec §2.1, §2.2)."""
import torch
import torch.nn.functional as F

from vita15.configuration_vita import InternViTConfig
from vita15.vision_projector import FEATURE_SCALE, InternViTVisionTower, build_projector, pixel_shuffle

TINY = InternViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def test_pixel_shuffle_matches_stated_formula():
    n, side, c = 2, 8, 3
    g = torch.randn(n, side, side, c)
    out = pixel_shuffle(g)
    assert out.shape == (n, (side // 2) ** 2, 4 * c)
    for i in range(side // 2):
        for j in range(side // 2):
            expected = torch.cat([g[:, 2 * i, 2 * j], g[:, 2 * i, 2 * j + 1], g[:, 2 * i + 1, 2 * j], g[:, 2 * i + 1, 2 * j + 1]], -1)
            assert torch.equal(out[:, (side // 2) * i + j], expected)


def _randomise(module):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.1)
    return module.eval()


def _naive_vit(tower, pixels):
    """Independent re-statement of the ViT forward (naive softmax attention)."""
    vit = tower.vision_tower
    x = vit.embeddings.patch_embedding(pixels).flatten(2).transpose(1, 2)
    x = torch.cat([vit.embeddings.class_embedding.expand(len(x), -1, -1), x], 1) + vit.embeddings.position_embedding
    for layer in vit.encoder.layers:
        h = layer.norm1(x)
        b, l, d = h.shape
        q, k, v = layer.attn.qkv(h).reshape(b, l, 3, 2, d // 2).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) * (d // 2) ** -0.5, -1) @ v
        x = x + layer.ls1 * layer.attn.proj(att.transpose(1, 2).reshape(b, l, d))
        x = x + layer.ls2 * layer.mlp.fc2(F.gelu(layer.mlp.fc1(layer.norm2(x))))
    return x


def test_tower_scaling_shuffle_and_naive_attention():
    tower = _randomise(InternViTVisionTower(TINY))
    pixels = torch.randn(2, 3, 448, 448)
    with torch.no_grad():
        out = tower(pixels)
        ref = _naive_vit(tower, pixels)[:, 1:].reshape(2, 32, 32, 32)
    assert out.shape == (2, 256, 128) and tower.hidden_size == 128
    assert torch.allclose(out, pixel_shuffle(ref * FEATURE_SCALE), atol=1e-5)


def test_position_table_is_interpolated_for_other_sizes():
    tower = _randomise(InternViTVisionTower(TINY))
    emb = tower.vision_tower.embeddings
    assert torch.equal(emb._patch_positions(32, 32), emb.position_embedding[:, 1:])
    with torch.no_grad():
        assert tower.vision_tower(torch.randn(1, 3, 224, 336)).shape == (1, 1 + 16 * 24, 32)


def test_key_names_and_projector():
    names = set(InternViTVisionTower(TINY).state_dict())
    assert {"vision_tower.embeddings.class_embedding", "vision_tower.embeddings.position_embedding",
            "vision_tower.embeddings.patch_embedding.weight", "vision_tower.encoder.layers.1.ls2",
            "vision_tower.encoder.layers.0.attn.qkv.bias", "vision_tower.encoder.layers.0.mlp.fc2.weight",
            "vision_tower.encoder.layers.1.norm1.weight"} <= names
    proj = build_projector("mlp2x_gelu", 128, 64)
    assert set(proj.state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    x = torch.randn(3, 128)
    assert torch.allclose(proj(x), proj[2](F.gelu(proj[0](x))))
