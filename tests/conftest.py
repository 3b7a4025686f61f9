"""Suite-wide test helpers: tests that need an outside program skip, with the reason, where it is missing.

Mark a test (or a module with `pytestmark`) with `@pytest.mark.needs_tools("sox", "espeak-ng")`: on a
machine without those programs on PATH it is reported as skipped with what to install, instead of
failing with `FileNotFoundError` (`.ci/run` installs them with apt where it can).
"""
from __future__ import annotations

import shutil

import pytest

APT_PACKAGES = {"espeak-ng": "espeak-ng", "sox": "sox", "chromium": "chromium"}


def missing_tools(*tools: str) -> list[str]:
    return [tool for tool in tools if shutil.which(tool) is None]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_tools(*names): skip unless these programs are on PATH")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker in item.iter_markers("needs_tools"):
            missing = missing_tools(*marker.args)
            if missing:
                packages = " ".join(APT_PACKAGES.get(t, t) for t in missing)
                item.add_marker(pytest.mark.skip(
                    reason=f"needs {', '.join(missing)} on PATH (Debian/Ubuntu: apt-get install {packages})"))
