"""Listing the knowledge prefix page by page and diffing each page against the registry.

S3 lists keys in byte order, 1,000 per page at most. A page covering the key range (lo, hi] is
compared with the registry entries of exactly that range, so created and modified documents
*and* deletions are found page by page: a listing can stop after any page (a time budget, a
cap on changes) and resume later after the last key it covered (`start_after`), and a bucket of
any size is diffed in bounded steps with bounded memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from rag_assets.knowledge.document_diff import (
    DocumentChange,
    ListedObject,
    RegistryEntry,
    diff_listing,
)

# (after, upto) -> registry entries with after < key <= upto; None means unbounded.
RegistryRange = Callable[[str | None, str | None], Mapping[str, RegistryEntry]]


@dataclass
class ScanResult:
    changes: list[DocumentChange] = field(default_factory=list)  # sorted by key
    objects_listed: int = 0
    pages: int = 0
    # Where the next scan resumes; None once the end of the prefix was reached.
    next_start_after: str | None = None
    stopped_by: str | None = None  # "max_changes" or "time budget" when cut short

    @property
    def complete(self) -> bool:
        return self.next_start_after is None


def list_page(
    client, bucket: str, prefix: str, start_after: str | None, page_size: int = 1000
) -> tuple[list[ListedObject], bool]:
    """One ListObjectsV2 page after `start_after`; returns (objects, more pages follow)."""
    kwargs = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size}
    if start_after:
        kwargs["StartAfter"] = start_after
    response = client.list_objects_v2(**kwargs)
    objects = [
        ListedObject(
            key=item["Key"],
            etag=item.get("ETag", ""),
            size=item.get("Size"),
            last_modified=item.get("LastModified"),
        )
        for item in response.get("Contents", [])
    ]
    return objects, bool(response.get("IsTruncated")) and bool(objects)


def scan_listing(
    client,
    bucket: str,
    prefix: str,
    registry_range: RegistryRange,
    start_after: str | None = None,
    max_changes: int | None = None,
    time_budget_s: float | None = None,
    page_size: int = 1000,
    clock: Callable[[], float] = time.monotonic,
) -> ScanResult:
    """Diff the listing after `start_after` with the registry, page by page.

    Stops at the end of the prefix, once `max_changes` changes are collected (cutting exactly
    after the last change returned), or when `time_budget_s` is spent (after a whole page).
    """
    deadline = None if time_budget_s is None else clock() + time_budget_s
    result = ScanResult(next_start_after=start_after)
    after = start_after
    while True:
        objects, more = list_page(client, bucket, prefix, after, page_size)
        result.pages += 1
        result.objects_listed += len(objects)
        upto = objects[-1].key if more else None
        page_changes = diff_listing(objects, registry_range(after, upto), prefix).changes
        page_changes.sort(key=lambda change: change.key)
        if max_changes is not None and len(result.changes) + len(page_changes) >= max_changes:
            room = max_changes - len(result.changes)
            taken = page_changes[:room]
            result.changes.extend(taken)
            if len(page_changes) > room or more:
                # Resume right after the last change taken: everything up to it is covered.
                result.next_start_after = taken[-1].key if taken else after
                result.stopped_by = "max_changes"
            else:
                result.next_start_after = None
            return result
        result.changes.extend(page_changes)
        if not more:
            result.next_start_after = None
            return result
        after = upto
        result.next_start_after = after
        if deadline is not None and clock() >= deadline:
            result.stopped_by = "time budget"
            return result
