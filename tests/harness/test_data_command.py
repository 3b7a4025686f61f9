"""`vita-eval data list|verify|fetch` on a data root."""
import shutil
from pathlib import Path

import pytest

from vita_eval.data.checksums import file_md5
from vita_eval.data.manage import data_command
from vita_eval.suites import get_suite

SAMPLES = Path(__file__).resolve().parents[2] / "benchmarks" / "samples"


def test_list_and_verify_report_md5_status(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    shutil.copy(SAMPLES / "MME.tsv", tmp_path / "MME.tsv")
    data_command("list", ["MME", "MathVista_MINI"], tmp_path, "vlmevalkit-2026.08")
    out = capsys.readouterr().out
    assert "MD5 MISMATCH" in out and file_md5(tmp_path / "MME.tsv") in out
    assert "missing" in out.splitlines()[1]
    with pytest.raises(SystemExit):
        data_command("verify", ["MME"], tmp_path, "vlmevalkit-2026.08")


def test_fetch_without_url_says_where_to_put_the_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert get_suite("LibriSpeech_test_other").url is None
    data_command("fetch", ["LibriSpeech_test_other"], tmp_path, "vlmevalkit-2026.08")
    assert "no download URL" in capsys.readouterr().out
