"""Capturing a CUDA graph while other threads keep working (shared by the decode step and Whale)."""
from __future__ import annotations

import gc
from typing import Any, Callable

import torch


def warm_up(device: torch.device, fn: Callable[[], Any]) -> None:
    """Run `fn` on a side stream first, so cuDNN plans and lazy tables exist before capture."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream(device).wait_stream(side)


def capture(graph: torch.cuda.CUDAGraph, pool: Any, device: torch.device, fn: Callable[[], Any]) -> Any:
    """`torch.cuda.graph` without its `gc.collect()` per capture (~0.1 s with a large heap, dozens of
    buckets): the collector is paused instead, so no tensor can be collected mid-capture. Error
    mode thread_local: worker threads pin host memory meanwhile, which must not void the capture.
    Returns what `fn` returned (the graph's static outputs)."""
    stream = torch.cuda.Stream(device)
    torch.cuda.synchronize(device)
    collecting = gc.isenabled()
    gc.disable()
    try:
        with torch.cuda.stream(stream):
            graph.capture_begin(pool=pool, capture_error_mode="thread_local")
            try:
                out = fn()
            finally:
                graph.capture_end()
    finally:
        if collecting:
            gc.enable()
    torch.cuda.current_stream(device).wait_stream(stream)
    return out
