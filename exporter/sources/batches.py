"""Cutting a scope into request-sized batches, and judging a cycle whose batches ran concurrently."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def batches(ids: Iterable[str], size: int) -> list[list[str]]:
    """Sorted, so a batch holds the same ids from one cycle to the next while the scope is unchanged."""
    ordered = sorted(ids)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


class BatchesFailed(Exception):
    """Some batches failed; the others already updated the snapshot."""

    def __init__(self, errors: Sequence[Exception], total: int) -> None:
        self.errors = list(errors)
        super().__init__(f"{len(errors)} of {total} batches failed; first: {errors[0]}")

    @classmethod
    def raise_for(cls, outcomes: Sequence[object]) -> None:
        """Re-raise cancellation as is; raise one `BatchesFailed` for the failures, if any."""
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome
        errors = [o for o in outcomes if isinstance(o, Exception)]
        if errors:
            raise cls(errors, len(outcomes))
