"""The record's keeper (Lifecycle) over a journal, for tests that drive one step by hand."""

from __future__ import annotations

from heygemd.daemon.journal import Journal
from heygemd.daemon.lifecycle import Lifecycle, RetryPolicy

ANY_POLICY = RetryPolicy(attempts=3, budget_seconds=60, first_delay_seconds=1, max_delay_seconds=1)


def keeper(journal: Journal) -> Lifecycle:
    """Its retry policy plays no part in the steps these tests drive."""
    return Lifecycle(journal, ANY_POLICY, max_crashes=5)
