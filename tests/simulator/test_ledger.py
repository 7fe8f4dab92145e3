"""The ledger's block summaries add up to exactly what its entries do, over any interval."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from exporter.simulator.ledger import BLOCK_ENTRIES, LedgerEntry, Run, Summary

moments = st.integers(min_value=0, max_value=10_000).map(lambda ms: ms / 10)


@given(
    times=st.lists(moments, max_size=5 * BLOCK_ENTRIES),
    values=st.lists(st.floats(min_value=0, max_value=1e7), min_size=5 * BLOCK_ENTRIES, max_size=5 * BLOCK_ENTRIES),
    start=moments,
    length=moments,
)
def test_a_runs_summary_is_its_entries_added_one_by_one(
    times: list[float], values: list[float], start: float, length: float
) -> None:
    run = Run()
    for at, value in zip(sorted(times), values, strict=False):
        run.append(LedgerEntry(at, "q", "voice", "u", "tHandle", value))
    expected = Summary()
    for entry in run.entries:
        if start <= entry.at < start + length:
            expected.add(entry)
    assert run.summary(start, start + length) == (expected if expected.count else None)


def test_service_level_hits_are_counted_among_all_answers() -> None:
    run, answers = Run(), 3 * BLOCK_ENTRIES
    for i in range(answers):
        metric = "oServiceLevelHit" if i % 3 else "oServiceLevelMiss"
        run.append(LedgerEntry(float(i), "q", "voice", None, metric, None))
    summary = run.summary(0, answers)
    assert summary is not None
    assert (summary.count, summary.hits, summary.low, summary.high) == (answers, answers * 2 // 3, None, None)
