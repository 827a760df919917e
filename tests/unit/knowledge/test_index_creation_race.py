"""`create_index_once`: processes opening a new chunk table at once race to create its indexes;
the one whose commit Lance refuses finds the winner's index and goes on. The table is a stand-in
here: the retry rule is ours."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rag_assets.knowledge.chunk_store import INDEX_ATTEMPTS, create_index_once

CONFLICT = RuntimeError("lance error: Retryable commit conflict for version 4: This CreateIndex "
                        "transaction was preempted by concurrent transaction CreateIndex")


class RacedTable:
    """Refuses `refusals` create_index calls as Lance does when another writer committed the same
    index first; that index appears once the table is checked out at its latest version."""

    def __init__(self, refusals: int, winner_creates: bool = True) -> None:
        self.refusals = refusals
        self.winner_creates = winner_creates
        self.indices: list = []
        self.pending: list = []
        self.created = 0

    def list_indices(self):
        return self.indices

    def create_index(self, column, config):
        if self.refusals:
            self.refusals -= 1
            if self.winner_creates:
                self.pending = [SimpleNamespace(columns=[column], index_type="FTS")]
            raise CONFLICT
        self.created += 1
        self.indices.append(SimpleNamespace(columns=[column], index_type="FTS"))

    def checkout_latest(self):
        self.indices += self.pending
        self.pending = []


def test_the_loser_of_the_race_finds_the_winners_index():
    table = RacedTable(refusals=1)
    create_index_once(table, "text", config=None)
    assert [i.columns for i in table.indices] == [["text"]] and table.created == 0


def test_a_refused_commit_without_a_winner_is_tried_again():
    table = RacedTable(refusals=2, winner_creates=False)
    create_index_once(table, "text", config=None)
    assert table.created == 1


def test_conflicts_beyond_the_attempts_are_raised():
    table = RacedTable(refusals=INDEX_ATTEMPTS, winner_creates=False)
    with pytest.raises(RuntimeError, match="Retryable commit conflict"):
        create_index_once(table, "text", config=None)


def test_other_errors_are_not_retried():
    table = SimpleNamespace(list_indices=lambda: [],
                            create_index=lambda column, config: (_ for _ in ()).throw(
                                RuntimeError("lance error: invalid column")))
    with pytest.raises(RuntimeError, match="invalid column"):
        create_index_once(table, "text", config=None)
