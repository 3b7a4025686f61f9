"""One plug-in mechanism: built-ins found by package scan, outside packages through entry points."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vita_eval import registry

REPO = Path(__file__).resolve().parents[2]


def test_every_kind_has_its_builtins() -> None:
    assert {"tsv", "videomme", "librispeech", "aishell", "wenetspeech", "manifest"} <= set(registry.names("loader"))
    assert {"vlmevalkit-vita15", "vlmevalkit-videomme", "vita-videomme", "asr"} <= set(registry.names("preset"))
    assert {"mme", "mmbench", "mathvista", "videomme", "asr"} <= set(registry.names("scorer"))
    assert {"openai", "local"} <= set(registry.names("judge"))
    assert {"vita", "whisper"} <= set(registry.names("model"))
    assert (REPO / "benchmarks") in registry.names("suites").values()


def test_unknown_names_say_what_is_known() -> None:
    with pytest.raises(registry.RegistryError, match=r"unknown scorer 'mmee' \(did you mean 'mme'\?\); known: .*mmbench"):
        registry.get("scorer", "mmee")
    with pytest.raises(registry.RegistryError, match="unknown plug-in kind"):
        registry.get("scorers", "mme")


def test_a_name_registered_twice_is_an_error() -> None:
    def first():
        """one"""

    def second():
        """two"""

    registry.register("preset", "test-twice")(first)
    try:
        with pytest.raises(registry.RegistryError, match="registered twice"):
            registry.register("preset", "test-twice")(second)
    finally:
        registry._targets["preset"].pop("test-twice")


def test_spec_schemes_pick_backends() -> None:
    assert registry.split_spec("model", "whisper:tiny.en", "vita") == ("whisper", "tiny.en")
    assert registry.split_spec("model", "builtin:tiny", "vita") == ("vita", "builtin:tiny")
    assert registry.split_spec("model", "/ckpt/run:3", "vita") == ("vita", "/ckpt/run:3")
    assert registry.split_spec("judge", "local:/q", "openai") == ("local", "/q")
    assert registry.split_spec("judge", "gpt-4o-mini", "openai") == ("openai", "gpt-4o-mini")


PLUGIN = '''
"""A throwaway third-party plug-in: one loader, one scorer, one suite folder."""
from pathlib import Path

import pandas as pd

from vita_eval import registry
from vita_eval.scorers.base import ScoreResult
from vita_eval.types import Sample, SuiteData


@registry.register("loader", "throwaway_jsonl")
def load(path, *, suite):
    """Throwaway layout: one JSON object per line with index, question and answer."""
    rows = pd.read_json(path, lines=True)
    samples = [Sample(suite=suite, uid=str(r["index"]), fields=dict(r)) for r in rows.to_dict("records")]
    return SuiteData(rows, samples)


@registry.register("scorer", "throwaway_exact")
class Exact:
    """Throwaway scorer: exact string match."""

    name = "throwaway_exact"

    def score(self, data, predictions, *, profile, judge):
        merged = data.merge(predictions[["index", "prediction"]], on="index")
        per_sample = pd.DataFrame({"uid": merged["index"].astype(str), "cluster": merged["index"].astype(str),
                                   "correct": (merged["answer"] == merged["prediction"]).astype(float)})
        return ScoreResult.of(per_sample, self.aggregate(per_sample), [], [])

    def aggregate(self, per_sample):
        return {"accuracy": float(per_sample["correct"].mean())}


registry.register("suites", "throwaway")(Path(__file__).with_name("suites"))
'''

SUITE_YAML = '''
name: Throwaway_QA
description: A suite that a third-party package adds.
loader: throwaway_jsonl
path: throwaway.jsonl
dataset_type: VQA
preset: asr
scorer: throwaway_exact
headline: [accuracy]
'''


def _install_throwaway(site: Path) -> None:
    """What `pip install` leaves behind: the package and a dist-info naming its entry point."""
    package = site / "throwaway_plugin"
    (package / "suites").mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    (package / "suites" / "Throwaway_QA.yaml").write_text(textwrap.dedent(SUITE_YAML))
    info = site / "throwaway_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: throwaway-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[vita_eval.plugins]\nthrowaway = throwaway_plugin\n")
    (info / "RECORD").write_text("")


def _env(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return env


def test_an_installed_package_adds_a_loader_a_scorer_and_a_suite(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _install_throwaway(site)
    ls = subprocess.run([sys.executable, "-m", "vita_eval.cli", "ls"], env=_env(site), capture_output=True,
                        text=True, check=True).stdout
    assert "Throwaway_QA" in ls
    assert "throwaway_jsonl" in ls and "Throwaway layout" in ls
    assert "throwaway_exact" in ls and "exact string match" in ls

    data = tmp_path / "throwaway.jsonl"
    data.write_text("\n".join(json.dumps({"index": i, "question": "q", "answer": a}) for i, a in enumerate("xyz")))
    predictions = tmp_path / "pred.tsv"
    predictions.write_text("index\tprediction\n" + "".join(f"{i}\t{p}\n" for i, p in enumerate("xyq")))
    out = subprocess.run([sys.executable, "-m", "vita_eval.cli", "score", "--suite", "Throwaway_QA", "--data",
                          str(data), "--predictions", str(predictions), "--out", str(tmp_path / "scored")],
                         env=_env(site), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    scores = json.loads((tmp_path / "scored" / "scores.json").read_text())
    assert scores["metrics"]["accuracy"] == pytest.approx(2 / 3)


def test_a_broken_plugin_is_a_warning(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _install_throwaway(site)
    (site / "throwaway_plugin" / "__init__.py").write_text("raise RuntimeError('broken on purpose')\n")
    ls = subprocess.run([sys.executable, "-m", "vita_eval.cli", "ls", "scorers"], env=_env(site),
                        capture_output=True, text=True, check=True)
    assert "mme" in ls.stdout
    assert "plug-in throwaway" in ls.stderr and "broken on purpose" in ls.stderr
