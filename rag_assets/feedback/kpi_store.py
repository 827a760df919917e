"""The KPI tables `kpi_hourly` / `kpi_daily`, the queue of windows to recompute, and late drops.

Windows are recomputed from the stored turns by one aggregate query per batch of windows
(`kpi_rows_sql`): counts, distinct conversations and `percentile_cont` run in PostgreSQL, and
the few values whose rounding matters are finished in Python with the oracle's arithmetic (shares
as int / int, the mean rating as `math.fsum` of the scores). `kpis.percentile_cont` is
PostgreSQL's definition, so the stored figures equal `kpis.compute_kpis` (the oracle) exactly;
the integration tests compare the two. Rows are deleted and inserted again in one transaction. The queue (`feedback_kpi_pending`) is
append-only: a recompute deletes only the queue ids it read.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime

from psycopg import sql

from rag_assets.feedback.events import FeedbackEvent
from rag_assets.feedback.kpis import KpiRow
from rag_assets.feedback.turn_store import merged_spans
from rag_assets.feedback.windows import Granularity, Window, windows_of

TABLES = {Granularity.HOUR: "kpi_hourly", Granularity.DAY: "kpi_daily"}
_ROW_COLUMNS = [f.name for f in fields(KpiRow) if f.name != "granularity"]
KPI_COLUMNS = (*_ROW_COLUMNS, "dropped_late")


# ------------------------------------------------------------------ queue and late drops

def queue_windows(cur, windows: Iterable[Window]) -> int:
    windows = sorted(set(windows))
    if not windows:
        return 0
    cur.execute(
        "INSERT INTO feedback_kpi_pending (granularity, window_start)"
        " SELECT * FROM unnest(%s::text[], %s::timestamptz[])",
        ([str(w.granularity) for w in windows], [w.start for w in windows]),
    )
    return len(windows)


def queue_every_window(cur) -> None:
    """Queue every window that has turns, drops or a KPI row (for a full recompute)."""
    for granularity, table in TABLES.items():
        cur.execute(
            sql.SQL(
                "INSERT INTO feedback_kpi_pending (granularity, window_start)"
                " SELECT %s, w FROM ("
                " SELECT date_trunc({unit}, event_time, 'UTC') AS w FROM feedback_turns"
                " UNION SELECT window_start FROM feedback_late_drops WHERE granularity = %s"
                " UNION SELECT window_start FROM {table}) AS all_windows"
            ).format(unit=sql.Literal(str(granularity)), table=sql.Identifier(table)),
            (str(granularity), str(granularity)),
        )


def pending_count(cur, granularity: Granularity) -> int:
    cur.execute("SELECT count(DISTINCT window_start) FROM feedback_kpi_pending"
                " WHERE granularity = %s", (str(granularity),))
    return int(cur.fetchone()[0])


def add_late_drops(cur, too_late: Iterable[FeedbackEvent],
                   granularities: Iterable[Granularity] = tuple(TABLES)) -> dict[Window, int]:
    """Count too-late deliveries per (window, model_id); returns the count per window."""
    kinds = tuple(granularities)
    tally = Counter((window, event.model_id) for event in too_late
                    for window in windows_of(event.ts, kinds))
    for (window, model_id), count in sorted(tally.items()):
        cur.execute(
            "INSERT INTO feedback_late_drops (granularity, window_start, model_id, dropped_late)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (granularity, window_start, model_id)"
            " DO UPDATE SET dropped_late = feedback_late_drops.dropped_late + EXCLUDED.dropped_late",
            (str(window.granularity), window.start, model_id, count),
        )
    by_window: Counter = Counter()
    for (window, _), count in tally.items():
        by_window[window] += count
    return dict(by_window)


def clear_late_drops(cur) -> None:
    cur.execute("DELETE FROM feedback_late_drops")


def late_drops(cur, granularity: Granularity,
               starts: Iterable[datetime] | None = None) -> dict[tuple[datetime, str], int]:
    if starts is None:
        cur.execute("SELECT window_start, model_id, dropped_late FROM feedback_late_drops"
                    " WHERE granularity = %s", (str(granularity),))
    else:
        cur.execute("SELECT window_start, model_id, dropped_late FROM feedback_late_drops"
                    " WHERE granularity = %s AND window_start = ANY(%s::timestamptz[])",
                    (str(granularity), list(starts)))
    return {(start, model): int(count) for start, model, count in cur.fetchall()}


# ------------------------------------------------------------------ recompute

@dataclass
class RecomputeStats:
    windows_recomputed: int = 0
    rows_written: int = 0
    turns_read: int = 0

    def metadata(self) -> dict:
        return {"windows_recomputed": self.windows_recomputed, "kpi_rows_written": self.rows_written,
                "turns_read": self.turns_read}


def recompute_pending(cur, granularity: Granularity, run_id: str | None,
                      stats: RecomputeStats, limit: int = 2000) -> int:
    """Recompute up to `limit` queued windows of one granularity; returns how many."""
    _lock(cur, granularity)
    cur.execute(
        "SELECT id, window_start FROM feedback_kpi_pending WHERE granularity = %s"
        " ORDER BY id LIMIT %s", (str(granularity), limit * 4),
    )
    queued = cur.fetchall()
    if not queued:
        return 0
    windows = {Window(granularity, start) for _, start in queued}
    _recompute(cur, granularity, windows, kpi_rows_sql(cur, granularity, windows), run_id, stats)
    cur.execute("DELETE FROM feedback_kpi_pending WHERE id = ANY(%s::bigint[])",
                ([i for i, _ in queued],))
    return len(windows)


def recompute_all(cur, granularity: Granularity, run_id: str | None,
                  stats: RecomputeStats) -> None:
    """Rebuild the whole table from every scored turn and every late drop."""
    _lock(cur, granularity)
    rows = kpi_rows_sql(cur, granularity, None)
    windows = {row.window for row in rows}
    cur.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(TABLES[granularity])))
    cur.execute("DELETE FROM feedback_kpi_pending WHERE granularity = %s", (str(granularity),))
    _recompute(cur, granularity, windows, rows, run_id, stats)


def _lock(cur, granularity: Granularity) -> None:
    # One writer per KPI table: two recomputes of one window must not interleave.
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"kpi/{granularity}",))


_KPI_QUERY = """
SELECT date_trunc({unit}, event_time, 'UTC') AS window_start, model_id,
       count(*), count(DISTINCT conversation_id),
       count(*) FILTER (WHERE rating_up IS NOT NULL OR rating_score IS NOT NULL),
       count(rating_up), count(*) FILTER (WHERE rating_up),
       array_agg(rating_score) FILTER (WHERE rating_score IS NOT NULL),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms),
       count(*) FILTER (WHERE satisfaction = 'satisfied'),
       count(*) FILTER (WHERE satisfaction = 'neutral'),
       count(*) FILTER (WHERE satisfaction = 'dissatisfied'),
       count(*) FILTER (WHERE satisfaction = 'unknown'),
       count(*) FILTER (WHERE has_context)
FROM feedback_turns t {spans}
WHERE t.satisfaction IS NOT NULL
GROUP BY 1, 2
"""


def kpi_rows_sql(cur, granularity: Granularity, windows: Iterable[Window] | None) -> list[KpiRow]:
    """The KPI rows of `windows` (None = every window with turns), aggregated in PostgreSQL.

    Same definitions as `kpis.compute_kpis` and the same numbers: percentiles are
    `percentile_cont` itself; shares and the mean rating are finished here as the oracle does.
    """
    if windows is None:
        spans_sql, params = sql.SQL(""), ()
    else:
        spans = merged_spans(windows)
        if not spans:
            return []
        spans_sql = sql.SQL("JOIN unnest(%s::timestamptz[], %s::timestamptz[]) AS w(lo, hi)"
                            " ON t.event_time >= w.lo AND t.event_time < w.hi")
        params = ([lo for lo, _ in spans], [hi for _, hi in spans])
    cur.execute(sql.SQL(_KPI_QUERY).format(unit=sql.Literal(str(granularity)), spans=spans_sql),
                params)
    rows = []
    for (start, model_id, turns, conversations, rated, polar, positive, scores, p50, p95,
         satisfied, neutral, dissatisfied, unknown, with_context) in cur.fetchall():
        window = Window(granularity, start)
        scores = [float(s) for s in scores or ()]
        rows.append(KpiRow(
            granularity=granularity, window_start=window.start, window_end=window.end,
            model_id=model_id, turns=turns, conversations=conversations, rated_turns=rated,
            rated_share=rated / turns, polar_ratings=polar, positive_ratings=positive,
            thumbs_up_rate=positive / polar if polar else None, scored_turns=len(scores),
            mean_rating=math.fsum(scores) / len(scores) if scores else None,
            latency_p50_ms=float(p50), latency_p95_ms=float(p95), satisfied=satisfied,
            neutral=neutral, dissatisfied=dissatisfied, unknown=unknown,
            turns_with_context=with_context, with_context_share=with_context / turns,
        ))
    rows.sort(key=lambda row: (row.window_start, row.model_id))
    return rows


def _recompute(cur, granularity: Granularity, windows: set[Window], rows: list[KpiRow],
               run_id: str | None, stats: RecomputeStats) -> None:
    drops = late_drops(cur, granularity, [w.start for w in windows])
    table = sql.Identifier(TABLES[granularity])
    cur.execute(sql.SQL("DELETE FROM {} WHERE window_start = ANY(%s::timestamptz[])").format(table),
                ([w.start for w in windows],))
    columns = (*KPI_COLUMNS, "run_id")
    with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
            table, sql.SQL(", ").join(map(sql.Identifier, columns)))) as copy:
        for row in rows:
            record = row.as_record()
            copy.write_row([*(record[c] for c in _ROW_COLUMNS),
                            drops.get((row.window_start, row.model_id), 0), run_id])
    stats.windows_recomputed += len(windows)
    stats.rows_written += len(rows)
    stats.turns_read += sum(row.turns for row in rows)


# ------------------------------------------------------------------ reading

def read_rows(cur, granularity: Granularity) -> list[dict]:
    """Every row of a KPI table, as dicts of `KPI_COLUMNS`, ordered by window and model."""
    table = sql.Identifier(TABLES[granularity])
    cur.execute(sql.SQL("SELECT {} FROM {} ORDER BY window_start, model_id").format(
        sql.SQL(", ").join(map(sql.Identifier, KPI_COLUMNS)), table))
    return [dict(zip(KPI_COLUMNS, row)) for row in cur.fetchall()]


def table_summary(cur, granularity: Granularity) -> Mapping[str, object]:
    table = sql.Identifier(TABLES[granularity])
    cur.execute(sql.SQL(
        "SELECT count(*), count(DISTINCT window_start), min(window_start), max(window_start),"
        " coalesce(sum(turns), 0), coalesce(sum(dropped_late), 0), max(computed_at) FROM {}"
    ).format(table))
    rows, windows, first, last, turns, dropped, computed = cur.fetchone()
    return {"rows": int(rows), "windows": int(windows), "first_window": first,
            "last_window": last, "turns": int(turns), "dropped_late_in_rows": int(dropped),
            "last_computed_at": computed}


def total_late_drops(cur, granularity: Granularity) -> int:
    cur.execute("SELECT coalesce(sum(dropped_late), 0) FROM feedback_late_drops"
                " WHERE granularity = %s", (str(granularity),))
    return int(cur.fetchone()[0])
