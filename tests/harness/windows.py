"""Rate limits as Genesys counts them: requests started in any sliding window."""

from __future__ import annotations

import bisect


def max_in_any_window(starts: list[float], window: float = 60.0) -> int:
    """The most requests that started within any `window` seconds: what a sliding-window limit sees at its worst."""
    ordered = sorted(starts)
    return max((bisect.bisect_left(ordered, s + window) - i for i, s in enumerate(ordered)), default=0)
