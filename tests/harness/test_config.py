"""Run configuration precedence: defaults < YAML < command line."""
from pathlib import Path

import pytest

from vita_eval.config import RunConfig, parse_set, resolve


def test_precedence_defaults_yaml_cli(tmp_path: Path) -> None:
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("batch_size: 3\nprofile: vlmevalkit-2024.12\nsuites: [MME]\ndata_root: data\n")
    cfg = resolve(cfg_file, {"batch_size": 5, "profile": None})
    assert cfg.batch_size == 5  # CLI beats YAML
    assert cfg.profile == "vlmevalkit-2024.12"  # YAML beats default; None on the CLI means "not given"
    assert cfg.limit is RunConfig().limit  # untouched default
    assert cfg.data_root == str((tmp_path / "data").resolve())  # anchored at the YAML file


def test_unknown_keys_are_rejected(tmp_path: Path) -> None:
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("batchsize: 3\n")
    with pytest.raises(ValueError, match="batchsize"):
        resolve(cfg_file, {})


def test_set_values_are_yaml_parsed() -> None:
    assert parse_set(["limit=4", "check_md5=false", "suites=[MME, AISHELL1_test]"]) == {
        "limit": 4, "check_md5": False, "suites": ["MME", "AISHELL1_test"]}
    with pytest.raises(ValueError):
        parse_set(["limit"])


def test_dotted_suite_overrides_merge_with_the_yaml(tmp_path: Path) -> None:
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("suite_args: {MME: {preset_args: {max_tiles: 2}}}\n")
    cli = parse_set(['suites.LibriSpeech_test_other.prompt="Transcribe:"', "suites.MME.preset_args.max_new_tokens=4"])
    assert cli == {"suite_args": {"LibriSpeech_test_other": {"preset_args": {"prompt": "Transcribe:"}},
                                  "MME": {"preset_args": {"max_new_tokens": 4}}}}
    cfg = resolve(cfg_file, cli)
    assert cfg.suite_args["MME"]["preset_args"] == {"max_tiles": 2, "max_new_tokens": 4}  # merged, not replaced
    assert cfg.suite_args["LibriSpeech_test_other"]["preset_args"]["prompt"] == "Transcribe:"


def test_old_suite_args_form_and_unknown_dotted_keys() -> None:
    old = parse_set(['suite_args={LibriSpeech_test_other: {preset_args: {prompt: "x"}}}'])
    assert old == parse_set(["suites.LibriSpeech_test_other.prompt=x"])
    with pytest.raises(ValueError, match="batchsize"):
        resolve(None, parse_set(["batchsize.x=3"]))
