"""The docs' walkthroughs run: every `# file:` block is installed as a plug-in and its test template is run.

Each walkthrough in docs/ shows the files a contributor writes (a loader, a scorer, a
suite YAML, a model backend) and ends in a test. Here those blocks are written out as a
throwaway installed package (module files + a `vita_eval.plugins` entry point + the YAML
folder) and the test block is run by pytest in a fresh interpreter, so a page that no
longer matches the code fails CI.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WALKTHROUGHS = ("add-a-suite.md", "add-a-model.md", "add-a-profile-rule.md")
BLOCK = re.compile(r"```(?:python|yaml)\n# file: (?P<name>[\w.\-]+)\n(?P<body>.*?)```", re.S)
CONFTEST = '''
import pytest
from tiny_qwen import write_tiny_qwen


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory):
    return write_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen2"))
'''


def doc_files(page: str) -> dict[str, str]:
    """`# file: NAME` -> body, in page order."""
    text = (REPO / "docs" / page).read_text(encoding="utf-8")
    return {m["name"]: m["body"] for m in BLOCK.finditer(text)}


def install_walkthrough(files: dict[str, str], root: Path) -> tuple[Path, Path]:
    """Modules and YAMLs as an installed plug-in package; test files in their own folder."""
    site, tests = root / "site", root / "tests"
    package = site / "walkthrough_plugin"
    (package / "suites").mkdir(parents=True)
    tests.mkdir()
    modules = []
    for name, body in files.items():
        if name.startswith("test_"):
            (tests / name).write_text(body)
        elif name.endswith(".yaml"):
            (package / "suites" / name).write_text(body)
        else:
            (package / name).write_text(body)
            modules.append(Path(name).stem)
    init = ["from pathlib import Path", "from vita_eval import registry"]
    init += [f"from walkthrough_plugin import {m}  # noqa: F401" for m in modules]
    init.append('registry.register("suites", "walkthrough")(Path(__file__).with_name("suites"))')
    (package / "__init__.py").write_text("\n".join(init) + "\n")
    info = site / "walkthrough_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: walkthrough-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[vita_eval.plugins]\nwalkthrough = walkthrough_plugin\n")
    (tests / "conftest.py").write_text(CONFTEST)
    return site, tests


@pytest.mark.parametrize("page", WALKTHROUGHS)
def test_walkthrough_runs(page: str, tmp_path: Path) -> None:
    files = doc_files(page)
    assert any(n.startswith("test_") for n in files), f"docs/{page} ends in no test template"
    site, tests = install_walkthrough(files, tmp_path)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO / "tests"), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tests),
                          "-c", os.devnull, str(tests)], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, f"docs/{page}: its test template failed\n{out.stdout[-3000:]}\n{out.stderr[-2000:]}"


def test_architecture_map_names_real_modules() -> None:
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:vita_eval|vita15)(?:\.\w+)+)`", text))
    assert named, "the architecture map names no module"
    missing = []
    for dotted in sorted(named):
        parts = dotted.split(".")
        base = REPO / "model" if parts[0] == "vita15" else REPO
        path = base.joinpath(*parts)
        if not (path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()):
            missing.append(dotted)
    assert not missing, f"docs/ARCHITECTURE.md names modules that do not exist: {missing}"
