"""Step 2 of an erasure: the conversation lake rewritten without the erased references' rows.

Every Parquet object holding a turn whose `customer_ref` matches the suppression list
(`feedback/suppression.py`) is rewritten without those rows (an object left empty is deleted),
the fine-tuning exports that may hold them are withdrawn first, then the pending requests are
marked `completed`. It works from the suppression list alone, so it is idempotent: a failed
rewrite is finished by the next erasure or by `rewrite_lake` run again.
"""

from __future__ import annotations

from dataclasses import dataclass

from rag_assets.feedback import lake_store
from rag_assets.feedback.finetune_export import remove_withdrawn_objects, withdraw_exports_holding
from rag_assets.feedback.suppression import RefMatcher, suppress, suppression_list
from rag_assets.privacy import request_log
from rag_assets.privacy.request_log import ensure_erasure_schema


@dataclass
class LakeRewrite:
    objects_scanned: int = 0
    objects_rewritten: int = 0
    objects_deleted: int = 0
    rows_removed: int = 0
    finetune_exports_withdrawn: int = 0
    finetune_exports_removed: int = 0
    requests_completed: int = 0

    def as_dict(self) -> dict:
        return {"lake_objects_scanned": self.objects_scanned,
                "lake_objects_rewritten": self.objects_rewritten,
                "lake_objects_deleted": self.objects_deleted,
                "lake_rows_removed": self.rows_removed,
                "finetune_exports_withdrawn": self.finetune_exports_withdrawn,
                "finetune_exports_removed": self.finetune_exports_removed,
                "requests_completed": self.requests_completed}


def rewrite_lake(postgres, s3, client=None) -> LakeRewrite:
    """Remove every lake row of an erased reference, withdrawing the fine-tuning exports that
    may hold them; complete the pending requests."""
    client = client or lake_store.s3_client(s3)
    stats = LakeRewrite()
    with postgres.transaction() as cur:
        ensure_erasure_schema(cur, postgres.db_schema)
        pending = request_log.pending_requests(cur)
        matcher = suppression_list(cur)
    if pending:
        _rewrite_pending(postgres, s3, client, pending, matcher, stats)
    with postgres.transaction() as cur:  # also finishes a removal an earlier rewrite left
        stats.finetune_exports_removed = remove_withdrawn_objects(cur, s3, client)
    return stats


def _rewrite_pending(postgres, s3, client, pending: list[str], matcher: RefMatcher,
                     stats: LakeRewrite) -> None:
    found_refs: set[str] = set()
    changed: dict[str, int | None] = {}  # full object key -> rows left (None: deleted)
    if matcher:
        for key in lake_store.list_lake_keys(s3, client):
            stats.objects_scanned += 1
            rewritten = _rewrite_object(postgres, s3, client, key, matcher, pending, stats)
            if rewritten is not None:
                found_refs |= rewritten[0]
                changed[key] = rewritten[1]
    with postgres.transaction() as cur:
        ensure_erasure_schema(cur, postgres.db_schema)
        # Spellings met only in the lake join the suppression list (a rebuild re-lands them).
        suppress(cur, found_refs)
        lake_store.register_rewrites(cur, s3, changed)
        stats.requests_completed = request_log.complete_requests(cur, pending, stats.as_dict())


def _rewrite_object(postgres, s3, client, key: str, matcher: RefMatcher, pending: list[str],
                    stats: LakeRewrite) -> tuple[set[str], int | None] | None:
    """Rewrite one object without its erased rows: (the erased references it held, the rows
    left or None when it was deleted); None when it holds no erased row."""
    frame = lake_store.read_object(s3, client, key)
    refs = frame["customer_ref"].astype(object).where(frame["customer_ref"].notna(), None)
    drop = [matcher.matches(r) for r in refs]
    if not any(drop):
        return None
    keep = frame[[not d for d in drop]].reset_index(drop=True)
    stats.rows_removed += len(frame) - len(keep)
    # Before the rows go: an export holding them must not outlive a crash here.
    removed = frame[drop]
    with postgres.transaction() as cur:
        stats.finetune_exports_withdrawn += withdraw_exports_holding(cur, zip(
            removed["kafka_topic"], removed["kafka_partition"].astype(int),
            removed["kafka_offset"].astype(int)), pending)
    rows_left = lake_store.replace_object(s3, client, key, keep)
    if rows_left is None:
        stats.objects_deleted += 1
    else:
        stats.objects_rewritten += 1
    return {r for r, d in zip(refs, drop, strict=True) if d and r is not None}, rows_left
