"""One validation of the budgets every engine accepts (``max_regions``, ``time_limit``)."""

from __future__ import annotations

import math
import numbers

from relulab.core.errors import InvalidInputError

__all__ = ["check_budget"]


def check_budget(max_regions=None, time_limit=None, *, max_name: str = "max_regions",
                 time_name: str = "time_limit") -> tuple[int | None, float | None]:
    """Validate and normalize ``max_regions`` (None or a positive integer; ``bool`` is refused) and
    ``time_limit`` (None or a positive finite number of seconds). Returns them as ``(int, float)``;
    raises :class:`InvalidInputError` naming the argument and what is allowed."""
    if max_regions is not None:
        if isinstance(max_regions, bool) or not isinstance(max_regions, numbers.Integral) or max_regions < 1:
            raise InvalidInputError(f"{max_name} must be a positive integer or None, got {max_regions!r}")
        max_regions = int(max_regions)
    if time_limit is not None:
        if (isinstance(time_limit, bool) or not isinstance(time_limit, numbers.Real)
                or not math.isfinite(float(time_limit)) or not time_limit > 0):
            raise InvalidInputError(f"{time_name} must be a positive finite number of seconds or None, "
                                    f"got {time_limit!r}")
        time_limit = float(time_limit)
    return max_regions, time_limit
