"""Media paths stay inside their suite's data root.

A data file names its media (`image_path` cells, manifest `audio`, Video-MME `videoID`,
WenetSpeech `path`); a crafted or careless one (`../../etc/passwd`, `/home/x/secret.mp4`,
a symlink pointing elsewhere) would make the harness read, and feed to the model and the
prediction file, a file that is not part of the benchmark. Every such path is resolved
(symlinks followed) and must land inside one of the suite's roots; otherwise that sample
fails with a reason naming the path. `allow_outside_root: true` in the run config (for
data trees assembled from symlinks on purpose) lifts the check.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vita_eval.types import SampleError

ALLOW_SETTING = "allow_outside_root"


def inside_root(path: Path, roots: Sequence[Path], *, allow_outside: bool, what: str) -> Path:
    """`path` resolved; SampleError naming it (and `what` refers to it) when it leaves every root."""
    resolved = Path(path).resolve()
    if allow_outside:
        return resolved
    bases = [Path(r).resolve() for r in roots]
    if any(resolved == base or resolved.is_relative_to(base) for base in bases):
        return resolved
    via = "" if resolved == Path(path).absolute() else f" (resolves to {resolved})"
    shown = ", ".join(str(b) for b in dict.fromkeys(bases))
    raise SampleError(f"{what}: path {str(path)!r}{via} is outside the suite's data root {shown}; refused "
                      f"(set {ALLOW_SETTING}: true to allow paths outside the data root)")
