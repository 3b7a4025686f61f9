"""The profile's GPU idle analysis: device intervals merged, gaps found, host operators charged."""
from __future__ import annotations

from types import SimpleNamespace

from torch.autograd import DeviceType

from vita_eval.bench.profiling import device_intervals, gaps_between, idle_gaps, merge


def _event(name: str, device: DeviceType, start: float, end: float) -> SimpleNamespace:
    return SimpleNamespace(name=name, device_type=device, time_range=SimpleNamespace(start=start, end=end))


def test_merge_joins_overlapping_streams_and_gaps_skip_short_stretches() -> None:
    busy = merge([(0, 100), (50, 300), (400, 500), (520, 3000), (5000, 6000)])
    assert busy == [(0, 300), (400, 500), (520, 3000), (5000, 6000)]
    assert gaps_between(busy, min_us=50) == [(300, 400), (3000, 5000)]


def test_idle_gaps_charge_the_host_operators_that_overlap_them() -> None:
    cuda, cpu = DeviceType.CUDA, DeviceType.CPU
    events = [_event("gemm", cuda, 0, 1000), _event("vita.prefill", cuda, 0, 9000),  # a range marker: not work
              _event("Command Buffer Full", cuda, 1000, 4000),  # host blocked on the queue: not work
              _event("flash", cuda, 4000, 5000), _event("copy", cuda, 20000, 21000),
              _event("vita.collect", cpu, 500, 4500), _event("aten::tolist", cpu, 900, 1500),
              _event("plan", cpu, 6000, 19000), _event("after", cpu, 21000, 30000)]
    kernels = device_intervals(events)
    assert kernels == [(0, 1000), (4000, 5000), (20000, 21000)]
    gaps = idle_gaps(events, kernels)
    assert gaps["idle_ms"] == 18.0 and gaps["stretches"] == 2
    assert gaps["idle_ms_by_stretch"] == {"<1ms": 0.0, "1-10ms": 3.0, ">=10ms": 15.0}
    assert gaps["host_ops_ms"] == {"plan": 13.0, "vita.collect": 3.0, "aten::tolist": 0.5}
