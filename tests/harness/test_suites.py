"""The declarative suite registry: names, md5 pins, and that every reference resolves."""
from vita_eval import registry
from vita_eval.scorers.base import get_scorer
from vita_eval.suites import get_suite, load_registry

VLMEVALKIT_NAMES = {
    "MME", "MMBench_DEV_EN", "MMBench_DEV_CN", "MMBench_TEST_EN", "MMBench_TEST_CN", "MMBench_DEV_EN_V11",
    "MMBench_DEV_CN_V11", "MMBench_TEST_EN_V11", "MMBench_TEST_CN_V11", "MathVista_MINI", "Video-MME_8frame",
    "Video-MME_8frame_subs", "Video-MME_64frame", "Video-MME_1fps", "Video-MME_0.5fps", "Video-MME_0.5fps_subs",
}
ASR_NAMES = {"LibriSpeech_dev_clean", "LibriSpeech_dev_other", "LibriSpeech_test_clean", "LibriSpeech_test_other",
             "AISHELL1_test", "WenetSpeech_test_net", "WenetSpeech_test_meeting"}


def test_registry_has_the_official_names() -> None:
    names = set(load_registry())
    assert VLMEVALKIT_NAMES <= names
    assert ASR_NAMES <= names


def test_every_suite_references_a_real_preset_and_scorer() -> None:
    for spec in load_registry().values():
        assert callable(registry.get("preset", spec.preset)), spec.name
        assert get_scorer(spec.scorer).name == spec.scorer, spec.name
        assert spec.judge in {"none", "optional", "required"}


def test_md5_pins_follow_the_profile() -> None:
    spec = get_suite("MMBench_TEST_EN_V11")
    assert spec.md5_for("vlmevalkit-2026.08") == "8d1a704e791df6f5d9fb3ef782b65365"
    assert spec.md5_for("vlmevalkit-2024.12") == "26f0f15381a21720255091d3e0316ce6"
    assert get_suite("MME").md5_for("vlmevalkit-2024.12") == "b36b43c3f09801f5d368627fb92187c3"


def test_default_judge_follows_the_profile() -> None:
    from vita_eval.config import RunConfig
    from vita_eval.runner.run import judge_spec_for

    old = RunConfig(judge="default", profile="vlmevalkit-2024.12")
    new = RunConfig(judge="default", profile="vlmevalkit-2026.08")
    assert judge_spec_for(old, get_suite("MathVista_MINI")) == "gpt-4-turbo"
    assert judge_spec_for(old, get_suite("MMBench_DEV_EN")) == "chatgpt-0125"
    assert judge_spec_for(new, get_suite("MME")) == "gpt-4o-mini"
    assert judge_spec_for(new, get_suite("LibriSpeech_test_other")) is None  # ASR needs no judge
    assert judge_spec_for(RunConfig(judge="local:/q"), get_suite("MME")) == "local:/q"
