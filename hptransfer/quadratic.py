"""How many points a joint fit of several HPs needs: the size of a full quadratic.

The joint fit (:mod:`hptransfer.analysis.joint`) fits a full quadratic in the log2 HPs; a
sweep's search (:mod:`hptransfer.sweep.parse_search`) is refused when it cannot give that
many points.
"""

from __future__ import annotations


def n_coefficients(d: int) -> int:
    """Coefficients of a full quadratic in ``d`` variables: 1 + d + d(d+1)/2."""
    return 1 + d + d * (d + 1) // 2


def needed_points(d: int) -> int:
    """Distinct HP points a joint fit of ``d`` HPs needs: the quadratic's coefficients + 1."""
    return n_coefficients(d) + 1
