"""`vita-eval data list|fetch|verify`: where each suite's data is and whether it is the pinned file."""
from __future__ import annotations

from pathlib import Path

from vita_eval.data.checksums import fetch, verify
from vita_eval.data.images import lmu_data_root
from vita_eval.suites import SuiteSpec, data_path, load_registry


def _status(spec: SuiteSpec, path: Path, profile: str) -> str:
    if not path.exists():
        return "missing"
    expected = spec.md5_for(profile)
    if not expected or not path.is_file():
        return "present (no pinned md5)"
    ok, message = verify(path, expected)
    return "ok (md5 matches)" if ok else f"MD5 MISMATCH: {message}"


def data_command(action: str, suites: list[str], root: Path | None, profile: str) -> None:
    registry = load_registry()
    root = root or lmu_data_root()
    names = suites or sorted(registry)
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise SystemExit(f"unknown suites: {unknown}")
    failed = False
    for name in names:
        spec = registry[name]
        path = data_path(spec, root)
        if action == "fetch":
            if not spec.url:
                print(f"{name:28s} no download URL: obtain the official release and place it at {path}")
                continue
            try:
                fetch(spec.url, path, md5=spec.md5_for(profile))
            except Exception as exc:  # network or md5 failure: report it, try the next suite
                print(f"{name:28s} fetch failed: {exc}")
                failed = True
                continue
        status = _status(spec, path, profile)
        failed |= status.startswith("MD5") or (action == "verify" and status == "missing")
        print(f"{name:28s} {status}" + ("" if status.startswith("MD5") else f"  {path}"))
    if failed and action != "list":
        raise SystemExit(1)
