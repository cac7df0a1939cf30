"""A row of figures as one line of block characters, for the terminal."""

from __future__ import annotations

from collections.abc import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[int]) -> str:
    """``[0, 3, 1]`` -> ``▁█▃``: scaled to the largest value; all zero is a flat line."""
    peak = max(values, default=0)
    if peak <= 0:
        return BLOCKS[0] * len(values)
    top = len(BLOCKS) - 1
    # A non-zero value never looks like zero: it gets at least the second block.
    return "".join(BLOCKS[0] if v <= 0 else BLOCKS[max(1, round(v / peak * top))]
                   for v in values)
