"""Writing the conversation lake (Parquet on S3) and remembering what was written.

Object names come from `lake_layout` (date + topic-partition + offset range), so a retried run
overwrites the same objects instead of adding rows. Each object is registered in
`conversation_lake_objects` in the run's transaction; a rebuild that re-reads offsets which
already landed writes only the parts no registered object covers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from rag_assets.feedback.events import FeedbackEvent
from rag_assets.feedback.lake_layout import (
    LAKE_PREFIX,
    dedupe_turns,
    frame_to_events,
    frame_to_parquet,
    parquet_to_frame,
    range_tables,
    table_to_parquet,
)
from rag_assets.platform.offset_ranges import Range, uncovered
from resources.s3 import S3Storage


_CLIENTS: dict[str, object] = {}
_CLIENTS_LOCK = threading.Lock()


def s3_client(s3: S3Storage):
    """One boto3 client per S3 configuration and process (building one takes ~0.3 s)."""
    key = json.dumps(s3.model_dump(), sort_keys=True, default=str)
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = s3.get_client()
        return _CLIENTS[key]


def full_key(s3: S3Storage, key: str) -> str:
    return f"{s3.lake_prefix}{key}"


def covered_ranges(cur, topic: str, partition: int) -> list[Range]:
    cur.execute(
        "SELECT start_offset, end_offset FROM conversation_lake_objects"
        " WHERE topic = %s AND partition = %s",
        (topic, partition),
    )
    return [(int(s), int(e)) for s, e in cur.fetchall()]


def unlanded_parts(cur, topic: str, partition: int, part: Range) -> list[Range]:
    """The sub-ranges of `part` that no registered lake object holds yet."""
    return uncovered(part, covered_ranges(cur, topic, partition))


def write_range(cur, s3: S3Storage, client, events: Sequence[FeedbackEvent], topic: str,
                partition: int, part: Range, run_id: str | None) -> tuple[int, int]:
    """Land the events of one offset range; returns (objects written, rows written)."""
    objects = range_tables(events, topic, partition, part[0], part[1])
    if not objects:
        return 0, 0
    payloads = {key: table_to_parquet(table) for key, table in objects.items()}

    def put(item):
        key, body = item
        client.put_object(Bucket=s3.lake_bucket, Key=full_key(s3, key), Body=body,
                          ContentType="application/vnd.apache.parquet")

    if len(payloads) > 1:
        with ThreadPoolExecutor(max_workers=min(4, len(payloads))) as pool:
            list(pool.map(put, payloads.items()))
    else:
        put(next(iter(payloads.items())))
    for key, table in objects.items():
        day = date.fromisoformat(key.split("/")[1].removeprefix("date="))
        cur.execute(
            "INSERT INTO conversation_lake_objects (object_key, event_date, topic, partition,"
            " start_offset, end_offset, row_count, run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (object_key) DO UPDATE SET row_count = EXCLUDED.row_count,"
            " run_id = EXCLUDED.run_id, written_at = now()",
            (key, day, topic, partition, part[0], part[1], table.num_rows, run_id),
        )
    return len(objects), sum(table.num_rows for table in objects.values())


def registered_objects(cur) -> list[str]:
    cur.execute("SELECT object_key FROM conversation_lake_objects ORDER BY object_key")
    return [key for (key,) in cur.fetchall()]


def lake_summary(cur) -> dict:
    cur.execute("SELECT count(*), coalesce(sum(row_count), 0), count(DISTINCT event_date),"
                " min(event_date), max(event_date) FROM conversation_lake_objects")
    objects, rows, dates, first, last = cur.fetchone()
    return {"lake_objects_total": int(objects), "lake_rows_total": int(rows),
            "lake_dates": int(dates), "first_date": first, "last_date": last}


def list_lake_keys(s3: S3Storage, client) -> list[str]:
    """Every conversation object in the bucket (listing, paginated)."""
    keys = []
    paginator = client.get_paginator("list_objects_v2")
    prefix = full_key(s3, f"{LAKE_PREFIX}/")
    for page in paginator.paginate(Bucket=s3.lake_bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return sorted(keys)


def read_lake_events(s3: S3Storage, client, keys: Sequence[str] | None = None
                     ) -> list[FeedbackEvent]:
    """Every turn in the lake, one per turn key (first delivery), read back from Parquet."""
    keys = list_lake_keys(s3, client) if keys is None else [full_key(s3, k) for k in keys]

    with ThreadPoolExecutor(max_workers=8) as pool:
        frames = list(pool.map(lambda key: read_object(s3, client, key), keys))
    return frame_to_events(dedupe_turns(frames))


def read_object(s3: S3Storage, client, key: str):
    """One lake object (its full key, as `list_lake_keys` gives it) as a data frame."""
    return parquet_to_frame(client.get_object(Bucket=s3.lake_bucket, Key=key)["Body"].read())


def replace_object(s3: S3Storage, client, key: str, frame) -> int | None:
    """Overwrite one lake object (full key) with `frame`, or delete it when `frame` is empty.
    Returns the rows left (None: deleted); register it with `register_rewrites`."""
    if not len(frame):
        client.delete_object(Bucket=s3.lake_bucket, Key=key)
        return None
    client.put_object(Bucket=s3.lake_bucket, Key=key, Body=frame_to_parquet(frame),
                      ContentType="application/vnd.apache.parquet")
    return len(frame)


def register_rewrites(cur, s3: S3Storage, changed: dict[str, int | None]) -> None:
    """Update the registry after `replace_object`s: full key -> rows left (None: deleted)."""
    for key, rows in changed.items():
        key = key.removeprefix(s3.lake_prefix)
        if rows is None:
            cur.execute("DELETE FROM conversation_lake_objects WHERE object_key = %s", (key,))
        else:
            cur.execute("UPDATE conversation_lake_objects SET row_count = %s"
                        " WHERE object_key = %s", (rows, key))
