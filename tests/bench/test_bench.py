"""`vita-eval bench --size tiny --device cpu`: every workload in miniature, both engines, same answers."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from vita_eval.bench.workloads import BUILDERS, Scale
from vita_eval.suites import data_path, get_suite, load_suite_data

REPO = Path(__file__).resolve().parents[2]


def test_tiny_bench_runs_every_workload_with_both_engines(tmp_path: Path) -> None:
    out = tmp_path / "perf"
    proc = subprocess.run([sys.executable, "-m", "vita_eval.cli", "bench", "--size", "tiny", "--device", "cpu",
                           "--out", str(out), "--work-dir", str(tmp_path / "work"), "--profile", "1"],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "bench.json").read_text())
    assert result["command"].startswith("vita-eval bench --size tiny")
    assert list(result["workloads"]) == ["MME", "LibriSpeech_test_other", "Video-MME_8frame", "MMBench_DEV_EN",
                                         "MathVista_MINI"]
    for name, entry in result["workloads"].items():
        fast, ref = entry["fast"], entry["reference"]
        assert fast["samples"] == entry["samples"] and fast["failed"] == 0 and ref["failed"] == 0, name
        assert entry["agreement"]["compared"] == ref["samples"] > 0, name
        assert entry["agreement"]["same_share"] == 1.0, (name, entry["agreement"])  # fp32: identical answers
        assert fast["per_s"] > 0 and entry["speedup"] > 0
    mme = result["workloads"]["MME"]
    assert mme["fast"]["new_tokens"] == 2 * mme["samples"]  # forced answer length
    assert mme["fast"]["engine"]["shared_positions"] > 0  # the two questions of an image share their prefix
    assert result["decode_ms_per_token"]["fast"] > 0
    profile = mme["profile"]  # the first group again under torch.profiler
    assert profile["samples"] == 2 and {"vita.encode_images", "vita.prefill", "vita.splice"} <= set(profile["phases"])
    text = (out / "profile" / "MME.txt").read_text()
    assert "## engine phases" in text and "aten::" in text
    assert "vita.encode_audio" in result["workloads"]["LibriSpeech_test_other"]["profile"]["phases"]
    table = (out / "bench.md").read_text()
    assert "| MME |" in table and "Command: `vita-eval bench --size tiny" in table


def test_workloads_are_written_in_the_official_layouts(tmp_path: Path) -> None:
    """Each built workload loads through its suite's own loader; MME cites images, MMBench is circular."""
    from concurrent.futures import ThreadPoolExecutor

    scale = Scale.tiny()
    with ThreadPoolExecutor(2) as pool:
        for build in BUILDERS.values():
            build(tmp_path, scale, pool)
    sizes = {}
    for name in BUILDERS:
        spec = get_suite(name)
        data = load_suite_data(spec, data_path(spec, tmp_path))
        assert not data.problems, (name, data.problems)
        sizes[name] = len(data.samples)
    mme = pd.read_csv(tmp_path / "MME.tsv", sep="\t")
    mmb = pd.read_csv(tmp_path / "MMBench_DEV_EN.tsv", sep="\t")
    assert sizes == {"MME": 4, "MMBench_DEV_EN": len(mmb), "LibriSpeech_test_other": 3, "Video-MME_8frame": 3,
                     "MathVista_MINI": 1}
    assert mme.loc[1, "image"] == "0"  # the second question cites the first row's image
    assert len(mmb) >= 2 and all(str(i) == str(mmb.loc[0, "index"]) for i in mmb["image"][1:])  # circular copies
