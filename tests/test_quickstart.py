"""CI runs exactly the README's quick start: the commands in `.ci/run` are the README's, verbatim."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The command lines of the first bash block under '## Quick start'."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the quick start has a bash block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def ci_commands() -> list[str]:
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    block = re.search(r"# --- README quick start \(verbatim\) ---\n(.*?)# --- end of README quick start ---", script,
                      re.S)
    assert block, ".ci/run marks the README block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_ci_runs_the_readme_commands_exactly() -> None:
    commands = readme_commands()
    assert len(commands) == 2 and commands[0].endswith("vita-eval run") and "pytest" in commands[1]
    assert ci_commands() == commands


def test_ci_runs_nothing_else_that_installs_or_tests() -> None:
    """Outside the README block, .ci/run only installs system programs (so CI cannot drift from the README)."""
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    outside = script.split("# --- README quick start (verbatim) ---")[0]
    code = "\n".join(line for line in outside.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"\b(pip|pytest|vita-eval|venv)\b", code)
