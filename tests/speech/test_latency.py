"""`vita-eval latency` on the CPU with the tiny model: every stage timed, chunks streamed in order."""
from __future__ import annotations

import json

from vita_eval.cli import main


def test_latency_records_are_monotonic_and_every_stage_is_timed(tts_ckpt, tmp_path, capsys) -> None:
    out = tmp_path / "lat"
    main(["latency", "--model", str(tts_ckpt), "--device", "cpu", "--requests", "2", "--warmup", "0",
          "--question-seconds", "2", "--max-new-tokens", "4", "--policies", "fast", "--scenarios", "speech",
          "speech+image1", "--out", str(out)])
    table = capsys.readouterr().out
    assert "| speech | fast |" in table and "| speech+image1 | fast |" in table and "Command: `vita-eval latency" in table
    records = [json.loads(line) for line in (out / "latency.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(r["ordered"] for r in records)
    for r in records:
        assert 0 < r["first_text_token_s"] <= r["first_text_chunk_s"] <= r["first_audio_s"] <= r["last_audio_s"]
        assert r["last_audio_s"] <= r["done_s"] and r["chunk_times"] == sorted(r["chunk_times"])
        assert r["chunk_times"][0] == r["first_audio_s"] and r["chunk_times"][-1] == r["last_audio_s"]
        assert sum(r["chunk_samples"]) == 600 * r["n_codes"] and r["rtf"] > 0 and r["question_s"] == 2
        expected = {"prepare", "audio_encoder", "prefill", "first_text_chunk", "speech_decoder", "codec"}
        if r["scenario"] == "speech+image1":
            expected.add("image_encoder")
        assert expected <= {k for k, v in r["stages"].items() if v > 0}
        assert expected <= set(r["stages_to_first_audio"])
        assert abs(sum(r["stages_to_first_audio"].values()) - r["first_audio_s"]) < 1e-6
    summary = json.loads((out / "summary.json").read_text())
    row = summary["rows"][0]
    assert set(row["first_audio_s"]) == {"p50", "p90", "p99"} and row["n"] == 2 and row["all_ordered"]
    assert summary["meta"]["policies"]["fast"]["first_window_threshold"] == "inf"
