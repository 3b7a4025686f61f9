"""Exploratory: time VITA-1.5 parts at bench shapes (not committed)."""
import time, json, sys
import torch
from torch.profiler import profile, ProfilerActivity
from vita15.checkpoint import build_random
from vita15.configuration_vita import vita15_config

torch.manual_seed(0)
m = build_random(vita15_config(), "cuda", torch.bfloat16, 0).eval()
dev = m.device
def t(fn, n=5):
    fn(); torch.cuda.synchronize()
    s = time.perf_counter()
    for _ in range(n): fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - s) / n * 1000
res = {}
with torch.no_grad():
    px = torch.randn(64, 3, 448, 448, device=dev)
    res["vit64_ms"] = t(lambda: m.encode_images(px))
    for T in (768, 2048):
        f = torch.randn(16, T, 80, device=dev); L = torch.full((16,), T, device=dev)
        res[f"whale16x{T}_ms"] = t(lambda: m.encode_audio(f, L))
        enc = m.model.audio_encoder.encoder
        x = enc.global_cmvn(f.to(torch.bfloat16))
        res[f"whale_conv16x{T}_ms"] = t(lambda: enc.enc[0].core.conv(x.unsqueeze(1)))
        torch.backends.cudnn.benchmark = True
        res[f"whale_conv16x{T}_bench_ms"] = t(lambda: enc.enc[0].core.conv(x.unsqueeze(1)))
        torch.backends.cudnn.benchmark = False
        conv = enc.enc[0].core.conv
        xl = x.unsqueeze(1).contiguous(memory_format=torch.channels_last)
        conv_cl = conv.to(memory_format=torch.channels_last)
        res[f"whale_conv16x{T}_cl_ms"] = t(lambda: conv_cl(xl))
        conv.to(memory_format=torch.contiguous_format)
    f1 = torch.randn(1, 650, 80, device=dev); L1 = torch.tensor([650], device=dev)
    res["whale1x650_ms"] = t(lambda: m.encode_audio(f1, L1))
    for n in (1700, 6200):
        e = torch.randn(1, n, 3584, device=dev, dtype=torch.bfloat16)
        res[f"llm_{n}_ms"] = t(lambda: m.model(inputs_embeds=e, use_cache=False), 3)
        res[f"llm_{n}_tflops"] = 2 * 7.07e9 * n / (res[f"llm_{n}_ms"] / 1000) / 1e12
    e = torch.randn(8, 200, 3584, device=dev, dtype=torch.bfloat16)
    res["llm_8x200_ms"] = t(lambda: m.model(inputs_embeds=e, use_cache=False), 3)
    print(json.dumps(res, indent=1))
    f = torch.randn(16, 768, 80, device=dev); L = torch.full((16,), 768, device=dev)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        m.encode_audio(f, L); torch.cuda.synchronize()
    print(p.key_averages().table(sort_by="self_cuda_time_total", row_limit=15, max_name_column_width=60))
    e = torch.randn(1, 1700, 3584, device=dev, dtype=torch.bfloat16)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        m.model(inputs_embeds=e, use_cache=False); torch.cuda.synchronize()
    print(p.key_averages().table(sort_by="self_cuda_time_total", row_limit=15, max_name_column_width=60))
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        m.encode_images(px); torch.cuda.synchronize()
    print(p.key_averages().table(sort_by="self_cuda_time_total", row_limit=12, max_name_column_width=60))
