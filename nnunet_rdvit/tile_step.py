"""The bounds of nnU-Net's sliding-window tile step, shared by the commands' argument parsing and the library.

The step is a fraction of the patch in (0, 1]. The number of tiles grows as (1 / step) per patch axis: at
0.1, a 3D model already runs about 125 times the tiles of nnU-Net's default 0.5 (25 times for 2D), tiles overlap
by 90 %, and nnU-Net's Gaussian weighting gains nothing measurable from more overlap; below it a run only gets
slower (at 0.001 a 3D volume would take about 10^8 times the default's tiles, i.e. it never finishes).
"""

from __future__ import annotations

import math

MIN_TILE_STEP = 0.1


def tile_step_problem(value: float) -> str | None:
    """Why ``value`` is not a usable tile step, or None."""
    if not math.isfinite(value) or not 0 < value <= 1:
        return f"the tile step is a fraction of the patch in (0, 1], got {value:g}"
    if value < MIN_TILE_STEP:
        return (f"a tile step of {value:g} is below {MIN_TILE_STEP:g}: the tile count grows as (1/step) per patch "
                f"axis, so the run would take far longer with no gain in accuracy; use a step in "
                f"[{MIN_TILE_STEP:g}, 1] (nnU-Net's default is 0.5)")
    return None
