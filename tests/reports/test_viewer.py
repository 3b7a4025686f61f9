"""samples.html, the per-sample viewer of `report --html`, rendered and filtered by a real headless chromium."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from headless_chromium import dump_dom

from vita_eval.reports.compare import write_report
from vita_eval.reports.viewer import outcome
from vita_eval.runner.run import run
from vita_eval.config import resolve


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two real runs of the tiny VITA on the bundled samples (MME, MathVista, LibriSpeech) that differ in budget."""
    root = tmp_path_factory.mktemp("viewer")
    out = []
    for tokens in (24, 1):
        cfg = resolve(None, {"suites": ["MME", "MathVista_MINI", "LibriSpeech_test_clean"], "data_root": "samples",
                             "out": str(root / f"tokens{tokens}"), "max_new_tokens": tokens, "limit": 6,
                             "report": False})
        out.append(run(cfg))
    return out[0], out[1]


@pytest.fixture(scope="module")
def page(two_runs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    report = write_report(list(two_runs), out=tmp_path_factory.mktemp("report"), n_boot=50, html=True)
    assert "samples.html" in report.with_suffix(".html").read_text()  # report.html links the viewer
    return report.parent / "samples.html"


def cards(dom: str) -> list[tuple[str, str]]:
    """(suite, uid) of every sample card the page rendered into its list."""
    shown = dom.split('<main id="list">', 1)[1].split("</main>", 1)[0]
    return re.findall(r'<article class="sample[^"]*" data-suite="([^"]+)" data-uid="([^"]+)"', shown)


def embedded(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S).group(1))


def test_outcome_reads_every_scorer_kind() -> None:
    assert outcome({"score": 1}) is True and outcome({"hit": False}) is False
    assert outcome({"S": 0, "D": 0, "I": 0, "N": 4}) is True and outcome({"S": 1, "D": 0, "I": 0}) is False
    assert outcome({"extracted": "A"}) is None and outcome(None) is None


def test_page_holds_media_prompts_and_both_runs(page: Path) -> None:
    data = embedded(page)
    samples = data["samples"]
    assert len(data["runs"]) == 2 and {s["suite"] for s in samples} == {"MME", "MathVista_MINI",
                                                                       "LibriSpeech_test_clean"}
    mme = next(s for s in samples if s["suite"] == "MME")
    assert mme["images"][0].startswith("data:image/jpeg;base64,") and "Please answer yes or no" in mme["prompt"]
    speech = next(s for s in samples if s["suite"] == "LibriSpeech_test_clean")
    assert speech["audio"].startswith("data:audio/wav;base64,") and speech["reference"]
    for s in samples:
        for record in s["runs"].values():
            assert record is not None and "raw" in record and "scoring" in record


@pytest.mark.needs_tools("chromium")
def test_chromium_renders_and_filters(page: Path, tmp_path: Path) -> None:
    samples = embedded(page)["samples"]
    url = page.resolve().as_uri()
    everything = cards(dump_dom(url, tmp_path / "p1"))
    assert len(everything) == len(samples) > 0
    dom = dump_dom(url + "#suite=MME&outcome=wrong", tmp_path / "p2")
    wrong = [s for s in samples if s["suite"] == "MME" and any(r["correct"] is False for r in s["runs"].values())]
    assert cards(dom) == [("MME", s["uid"]) for s in wrong]
    assert f"{len(wrong)} of {len(samples)} samples" in dom
    assert "<img" in dom and "raw output" in dom and "scorer decision" in dom
    changed = [s for s in samples if s["changed"]]
    assert changed, "1 vs 24 new tokens changes some answer"
    dom = dump_dom(url + "#changed=1", tmp_path / "p3")
    assert [uid for _, uid in cards(dom)] == [s["uid"] for s in changed]
    dom = dump_dom(url + "#suite=LibriSpeech_test_clean", tmp_path / "p4")
    shown = dom.split('<main id="list">', 1)[1].split("</main>", 1)[0]
    assert shown.count("<audio controls") == sum(s["suite"] == "LibriSpeech_test_clean" for s in samples)
