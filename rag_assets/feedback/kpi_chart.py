"""A KPI trend chart (PNG) from the rows of a KPI table, for the lake and the asset's metadata.

Three panels over the most recent windows, one line per model: turns, thumbs-up rate and
latency p95. Rendered with matplotlib's non-interactive Agg backend.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

CHART_PREFIX = "charts"


def chart_key(table: str) -> str:
    return f"{CHART_PREFIX}/{table}_trend.png"


def recent_rows(rows: Sequence[dict], span: timedelta) -> list[dict]:
    if not rows:
        return []
    last = max(row["window_start"] for row in rows)
    return [row for row in rows if row["window_start"] > last - span]


def legend_label(model_id: str) -> str:
    """A model id as matplotlib shows it literally: "$...$" would be parsed as math (and fail on
    most text), a leading "_" would hide the line from the legend."""
    return ("\u200b" if model_id.startswith("_") else "") + model_id.replace("$", r"\$")


def render_trend_png(rows: Sequence[dict], title: str) -> bytes:
    """The chart of `rows` (dicts with window_start, model_id and the KPI columns)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    series: dict[str, list[dict]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["window_start"]):
        series[row["model_id"]].append(row)

    figure = Figure(figsize=(10, 7.5), dpi=100)
    axes = figure.subplots(3, 1, sharex=True)
    panels = (("turns", "turns"), ("thumbs_up_rate", "thumbs-up rate"),
              ("latency_p95_ms", "latency p95 (ms)"))
    for ax, (column, label) in zip(axes, panels, strict=True):
        for model_id, model_rows in sorted(series.items()):
            points = [(r["window_start"], r[column]) for r in model_rows if r[column] is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker=".", linewidth=1.2, label=legend_label(model_id))
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[1].set_ylim(-0.02, 1.02)
    if series:
        axes[0].legend(fontsize=7, loc="upper left")
    else:
        axes[0].text(0.5, 0.5, "no KPI rows yet", ha="center", va="center",
                     transform=axes[0].transAxes)
    axes[-1].set_xlabel("window start (UTC)")
    figure.suptitle(title)
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
