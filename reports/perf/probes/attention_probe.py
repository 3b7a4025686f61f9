"""Probe (GPU): which attention kernel serves the LLM's long prefill best, and what fusing the rotary
and SiLU x up element-wise work would save. No model: random tensors of VITA-1.5's LLM shapes
(28 query heads, 4 kv heads, head dim 128; 18,944-wide MLP), bf16.

Attention, for packs of sequences appended after a past in the slot cache (stored (slots, capacity,
kv_heads, D), as `vita15.kv_slots`):
- `flash_varlen`: the engine's `flash_slots` (FA2 varlen reading the cache in place);
- `cudnn_padded`: one cuDNN SDPA call per sequence over its slot's keys [0, used), the query padded
  with zero rows for the past so that top-left causal equals the end-aligned causal;
- `cudnn_varlen`: `aten._cudnn_attention_forward` with cumulative lengths over the fresh keys
  (no past only), if this torch has it.

Usage: python reports/perf/probes/attention_probe.py OUT.json
"""
from __future__ import annotations

import json
import sys
import time
from functools import partial

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path[:0] = [".", "model", "scripts"]
from gpu_checks import relative as rel  # noqa: E402
from gpu_checks import timed_ms as timed  # noqa: E402
from vita15.kv_slots import SlotPlan, flash_slots  # noqa: E402

H, KVH, D, CAP = 28, 4, 128, 6400
timed_ms = partial(timed, n=20)
DEV, DT = torch.device("cuda"), torch.bfloat16


def cudnn_padded(query, k_store, v_store, plan, scale, gqa: bool):
    out = torch.empty_like(query)
    for slot, first, n, used in plan.spans:
        past = used - n
        q = query[first : first + n]
        if past:
            q = torch.cat([q.new_zeros(past, H, D), q])
        k, v = k_store[slot, :used].transpose(0, 1)[None], v_store[slot, :used].transpose(0, 1)[None]
        if not gqa:
            k, v = k.repeat_interleave(H // KVH, 1), v.repeat_interleave(H // KVH, 1)
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            o = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k, v, is_causal=True, scale=scale,
                                               enable_gqa=gqa)
        out[first : first + n] = o[0, :, past:].transpose(0, 1)
    return out


def attention_case(rows: int, n: int, past: int) -> dict:
    gen = torch.Generator(device=DEV).manual_seed(rows * 7 + n)
    k_store = torch.randn(rows, CAP, KVH, D, device=DEV, dtype=DT, generator=gen)
    v_store = torch.randn(rows, CAP, KVH, D, device=DEV, dtype=DT, generator=gen)
    query = torch.randn(rows * n, H, D, device=DEV, dtype=DT, generator=gen)
    plan = SlotPlan.packed(list(range(rows)), [past] * rows, [n] * rows, CAP, DEV)
    scale = D ** -0.5
    flops = 28 * rows * 4 * n * (past + n / 2) * H * D  # 28 layers' worth, causal
    flash = lambda: flash_slots(query, k_store, v_store, plan.cu_q, plan.cu_k, plan.used, plan.max_q,
                                plan.max_k, scale)
    ref = flash()
    out = {"flash_varlen_ms_28_layers": round(timed_ms(flash) * 28, 2)}
    out["flash_varlen_tflops"] = round(flops / out["flash_varlen_ms_28_layers"] / 1e9, 1)
    for gqa in (True, False):
        name = "cudnn_padded" + ("_gqa" if gqa else "_repeat")
        try:
            fn = lambda: cudnn_padded(query, k_store, v_store, plan, scale, gqa)
            got = fn()
            ms = timed_ms(fn) * 28
            out[name] = {"ms_28_layers": round(ms, 2), "tflops": round(flops / ms / 1e9, 1),
                         "relative_diff_vs_flash": round(rel(got, ref), 5)}
        except Exception as exc:  # the probe records what this build refuses
            out[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
    if past == 0 and hasattr(torch.ops.aten, "_cudnn_attention_forward"):
        keys = k_store[:, :n].reshape(rows * n, KVH, D)
        values = v_store[:, :n].reshape(rows * n, KVH, D)
        cu = plan.cu_q.long()
        try:
            fn = lambda: torch.ops.aten._cudnn_attention_forward(
                query, keys, values, None, cu, cu, n, n, False, 0.0, True, False, scale=scale)[0]
            got = fn()
            ms = timed_ms(fn) * 28
            out["cudnn_varlen"] = {"ms_28_layers": round(ms, 2), "tflops": round(flops / ms / 1e9, 1),
                                   "relative_diff_vs_flash": round(rel(got, ref), 5)}
        except Exception as exc:
            out["cudnn_varlen"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return out


def rotate(qk, cos, sin):
    half = qk.shape[-1] // 2
    return qk * cos + torch.cat((qk[..., half:], qk[..., :half]), dim=-1) * sin


def swiglu(gate, up):
    return F.silu(gate) * up


def fusion_case(total: int) -> dict:
    """Eager vs torch.compile (dynamic shapes) for the per-layer element-wise work of one prefill."""
    gen = torch.Generator(device=DEV).manual_seed(9)
    qkv = torch.randn(total, (H + 2 * KVH) * D, device=DEV, dtype=DT, generator=gen)
    cos = torch.randn(total, 1, D, device=DEV, dtype=DT, generator=gen)
    sin = torch.randn(total, 1, D, device=DEV, dtype=DT, generator=gen)
    gate = torch.randn(total, 18944, device=DEV, dtype=DT, generator=gen)
    up = torch.randn(total, 18944, device=DEV, dtype=DT, generator=gen)
    qk = lambda: qkv[:, : (H + KVH) * D].view(total, H + KVH, D)
    out: dict = {}
    for name, fn, args in (("rotate", rotate, lambda: (qk(), cos, sin)), ("swiglu", swiglu, lambda: (gate, up))):
        eager_ms = timed_ms(lambda: fn(*args())) * 28
        start = time.perf_counter()
        try:
            compiled = torch.compile(fn, dynamic=True)
            got = compiled(*args())
            compile_s = time.perf_counter() - start
            comp_ms = timed_ms(lambda: compiled(*args())) * 28
            out[name] = {"eager_ms_28_layers": round(eager_ms, 2), "compiled_ms_28_layers": round(comp_ms, 2),
                         "compile_s": round(compile_s, 1), "bitwise_equal": bool(torch.equal(got, fn(*args()))),
                         "relative_diff": round(rel(got, fn(*args())), 6)}
        except Exception as exc:
            out[name] = {"eager_ms_28_layers": round(eager_ms, 2), "compile": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return out


def main(path: str) -> None:
    result: dict = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                    "cudnn": torch.backends.cudnn.version()}
    try:
        import triton
        result["triton"] = triton.__version__
    except ImportError as exc:
        result["triton"] = str(exc)
    with torch.no_grad():
        for name, rows, n, past in (("1x6200", 1, 6200, 0), ("2x6140_after_60", 2, 6140, 60),
                                    ("9x1660_after_40", 9, 1660, 40), ("1x1700", 1, 1700, 0)):
            result[f"attention_{name}"] = attention_case(rows, n, past)
            print(name, json.dumps(result[f"attention_{name}"]), flush=True)
        for total in (6200, 12400):
            result[f"fusion_{total}"] = fusion_case(total)
            print(total, json.dumps(result[f"fusion_{total}"]), flush=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
