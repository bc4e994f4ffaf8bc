"""Summarise py-spy collapsed stacks (``-f raw``): top self and inclusive frames.

    python -m bench.profile_summary bench/results/profile-S1.collapsed.txt
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path


def summarise(path: Path, top: int = 25) -> str:
    """Text table of the ``top`` frames by self samples and by inclusive samples."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        self_c[_short(frames[-1])] += n
        for f in {_short(f) for f in frames}:
            incl[f] += n
    out = [f"{path.name}: {total} samples", "", "self %  frame"]
    out += [f"{100 * n / total:5.1f}  {f}" for f, n in self_c.most_common(top)]
    out += ["", "incl % frame"]
    out += [f"{100 * n / total:5.1f}  {f}" for f, n in incl.most_common(top * 2)]
    return "\n".join(out)


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py)"; line numbers split one function.
    name, _, loc = frame.partition(" (")
    loc = loc.rstrip(")").rsplit(":", 1)[0]
    parts = loc.split("/")
    return f"{name} ({'/'.join(parts[-2:])})"


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(summarise(Path(arg)))
