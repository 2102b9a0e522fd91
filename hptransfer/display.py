"""How numbers print in what the commands show: HP values and durations (one owner each)."""

from __future__ import annotations

import math


def format_hp(value: float) -> str:
    """``2^-7.5`` for values on a quarter-octave grid, else three significant digits."""
    if value > 0:
        exponent = math.log2(value)
        if abs(exponent * 4 - round(exponent * 4)) < 1e-9:
            return f"2^{round(exponent * 4) / 4:g}"
    return f"{value:.3g}"


def format_duration(seconds: float) -> str:
    """``1h05m`` from an hour on, else ``4m07s``."""
    seconds = max(0, round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
