"""Which knowledge-base documents were created, modified or deleted — pure logic, no S3 calls.

Two inputs lead to the same `DocumentDiff`:
* a full listing of the bucket prefix, compared with the document registry (key → ETag/version);
* S3 event notifications (the optional `kb.s3-events` path), ordered per key by `sequencer` and
  then resolved against the registry the same way.

Only keys under the configured prefix with a supported extension count; "folder" keys are ignored.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from rag_assets.catalogue import active_catalogue
from rag_assets.knowledge.parsing import is_supported_key
from rag_assets.platform.dead_letters import DeadLetter
from rag_assets.platform.item_guard import failure_reason

DEAD_LETTER_SOURCE = "documents"


class ChangeKind(str, Enum):
    CREATED = "created"
    MODIFIED = "modified"
    DELETED = "deleted"


@dataclass(frozen=True)
class ListedObject:
    """One object from ListObjectsV2 / ListObjectVersions."""

    key: str
    etag: str
    version_id: str | None = None
    size: int | None = None
    last_modified: datetime | None = None


@dataclass(frozen=True)
class RegistryEntry:
    """The document version the knowledge base last applied."""

    etag: str
    version_id: str | None = None


@dataclass(frozen=True)
class DocumentChange:
    kind: ChangeKind
    key: str
    etag: str | None = None
    version_id: str | None = None
    size: int | None = None
    last_modified: datetime | None = None  # from a listing; None for deletions and events

    @property
    def document_version(self) -> str | None:
        """The identifier stored with chunks: the S3 version id when versioning is on, else the ETag."""
        return self.version_id or self.etag


@dataclass(frozen=True)
class DocumentDiff:
    created: list[DocumentChange] = field(default_factory=list)
    modified: list[DocumentChange] = field(default_factory=list)
    deleted: list[DocumentChange] = field(default_factory=list)

    @property
    def changes(self) -> list[DocumentChange]:
        return [*self.created, *self.modified, *self.deleted]

    def __bool__(self) -> bool:
        return bool(self.created or self.modified or self.deleted)


def normalise_etag(etag: str | None) -> str | None:
    """S3 returns ETags quoted in listings and unquoted in notifications; compare them bare."""
    return etag.strip().strip('"') if etag else etag


def is_tracked_key(key: str, prefix: str) -> bool:
    """Under the prefix and of a document type the source catalogue accepts."""
    return key.startswith(prefix) and is_supported_key(
        key, active_catalogue().knowledge.document_types)


def _is_same_version(
    entry: RegistryEntry, etag: str | None, version_id: str | None
) -> bool:
    if entry.version_id and version_id:
        return entry.version_id == version_id
    return normalise_etag(entry.etag) == normalise_etag(etag)


def diff_listing(
    listed: Iterable[ListedObject], registry: Mapping[str, RegistryEntry], prefix: str
) -> DocumentDiff:
    """Compare a complete listing of `prefix` with the registry. Output is sorted by key."""
    diff = DocumentDiff()
    seen: set[str] = set()
    for item in sorted(listed, key=lambda item: item.key):
        if not is_tracked_key(item.key, prefix) or item.key in seen:
            continue
        seen.add(item.key)
        change = DocumentChange(
            ChangeKind.CREATED,
            item.key,
            normalise_etag(item.etag),
            item.version_id,
            item.size,
            item.last_modified,
        )
        entry = registry.get(item.key)
        if entry is None:
            diff.created.append(change)
        elif not _is_same_version(entry, item.etag, item.version_id):
            diff.modified.append(
                DocumentChange(
                    ChangeKind.MODIFIED,
                    item.key,
                    change.etag,
                    item.version_id,
                    item.size,
                    item.last_modified,
                )
            )
    for key in sorted(registry):
        if key not in seen and is_tracked_key(key, prefix):
            entry = registry[key]
            diff.deleted.append(
                DocumentChange(
                    ChangeKind.DELETED,
                    key,
                    normalise_etag(entry.etag),
                    entry.version_id,
                )
            )
    return diff


# --------------------------------------------------------------------------------------------
# S3 event notifications
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectEvent:
    """One S3 notification record: an object was written (`removed=False`) or removed."""

    key: str
    removed: bool
    sequencer: str
    etag: str | None = None
    version_id: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class ParsedNotification:
    events: list[ObjectEvent]
    dead_letters: list[DeadLetter]


def sequencer_order(sequencer: str) -> tuple[int, str]:
    """Sort key for sequencers: AWS says compare them as hex after left-padding with zeros."""
    return (len(sequencer.lstrip("0")), sequencer.lstrip("0").upper())


def parse_event_notification(
    payload: bytes,
    bucket: str,
    prefix: str,
    *,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> ParsedNotification:
    """Parse one notification message; malformed input becomes a DeadLetter, never an exception.

    Records for other buckets, other prefixes or unsupported file types are not ours and are
    skipped; the `s3:TestEvent` S3 sends when notifications are configured is skipped too.
    """

    def dead(reason: str, raw: bytes = payload) -> DeadLetter:
        return DeadLetter(DEAD_LETTER_SOURCE, reason, raw, topic, partition, offset)

    try:
        return _parse_notification(payload, bucket, prefix, dead)
    except Exception as error:  # noqa: BLE001 — input nobody foresaw: a dead letter, not a stall
        return ParsedNotification([], [dead(failure_reason("notification parser", error))])


def _parse_notification(payload: bytes, bucket: str, prefix: str,
                        dead: Callable[..., DeadLetter]) -> ParsedNotification:
    try:
        message = json.loads(payload)
    except json.JSONDecodeError as error:
        return ParsedNotification(
            [], [dead(f"malformed notification JSON: {error.msg}")]
        )
    except UnicodeDecodeError:
        return ParsedNotification([], [dead("notification is not UTF-8 text")])
    except RecursionError:
        return ParsedNotification([], [dead("notification JSON is nested too deeply")])
    if isinstance(message, dict) and message.get("Event") == "s3:TestEvent":
        return ParsedNotification([], [])
    records = message.get("Records") if isinstance(message, dict) else None
    if not isinstance(records, list):
        return ParsedNotification([], [dead("notification has no Records list")])

    events: list[ObjectEvent] = []
    dead_letters: list[DeadLetter] = []
    for index, record in enumerate(records):
        try:
            event = _parse_record(record, bucket)
        except _InvalidRecord as error:
            raw = (
                json.dumps(record).encode("utf-8")
                if isinstance(record, (dict, list))
                else payload
            )
            dead_letters.append(dead(f"record {index}: {error}", raw))
            continue
        if event is not None and is_tracked_key(event.key, prefix):
            events.append(event)
    return ParsedNotification(events, dead_letters)


class _InvalidRecord(Exception):
    """A notification record we cannot use; its message becomes the dead letter's reason."""


def _parse_record(record: object, bucket: str) -> ObjectEvent | None:
    if not isinstance(record, dict):
        raise _InvalidRecord("record is not an object")
    event_name = record.get("eventName")
    if not isinstance(event_name, str):
        raise _InvalidRecord("missing eventName")
    s3 = record.get("s3")
    if (
        not isinstance(s3, dict)
        or not isinstance(s3.get("bucket"), dict)
        or not isinstance(s3.get("object"), dict)
    ):
        raise _InvalidRecord("missing s3.bucket or s3.object")
    if s3["bucket"].get("name") != bucket:
        return None
    obj = s3["object"]
    key, sequencer = obj.get("key"), obj.get("sequencer")
    if not isinstance(key, str) or not key:
        raise _InvalidRecord("missing s3.object.key")
    key = urllib.parse.unquote_plus(key)  # keys in notifications are URL-encoded, '+' for ' '
    if "\x00" in key:
        raise _InvalidRecord("s3.object.key holds a NUL character")
    if (
        not isinstance(sequencer, str)
        or not sequencer
        or any(c not in "0123456789abcdefABCDEF" for c in sequencer)
    ):
        raise _InvalidRecord("missing or non-hex s3.object.sequencer")
    if event_name.startswith("ObjectCreated:"):
        removed = False
    elif event_name.startswith("ObjectRemoved:"):
        removed = True
    else:
        return None  # e.g. ObjectRestore, Replication, LifecycleTransition: content unchanged
    size, etag, version_id = obj.get("size"), obj.get("eTag"), obj.get("versionId")
    for name, value in (("eTag", etag), ("versionId", version_id)):
        if value is not None and not isinstance(value, str):
            raise _InvalidRecord(f"s3.object.{name} is not a string")
    return ObjectEvent(
        key=key,
        removed=removed,
        sequencer=sequencer,
        etag=normalise_etag(etag),
        version_id=version_id,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
    )


def latest_event_per_key(events: Iterable[ObjectEvent]) -> dict[str, ObjectEvent]:
    latest: dict[str, ObjectEvent] = {}
    for event in events:
        current = latest.get(event.key)
        if current is None or sequencer_order(event.sequencer) > sequencer_order(
            current.sequencer
        ):
            latest[event.key] = event
    return latest


def resolve_events(
    events: Iterable[ObjectEvent], registry: Mapping[str, RegistryEntry]
) -> DocumentDiff:
    """Net effect of notifications: the last event per key, compared with the registry.

    A write of a version the registry already has (a redelivered notification) is no change, and
    neither is the removal of a key the knowledge base never held.
    """
    diff = DocumentDiff()
    for key, event in sorted(latest_event_per_key(events).items()):
        entry = registry.get(key)
        if event.removed:
            if entry is not None:
                diff.deleted.append(
                    DocumentChange(
                        ChangeKind.DELETED,
                        key,
                        normalise_etag(entry.etag),
                        entry.version_id,
                    )
                )
        elif entry is None:
            diff.created.append(
                DocumentChange(
                    ChangeKind.CREATED, key, event.etag, event.version_id, event.size
                )
            )
        elif not _is_same_version(entry, event.etag, event.version_id):
            diff.modified.append(
                DocumentChange(
                    ChangeKind.MODIFIED, key, event.etag, event.version_id, event.size
                )
            )
    return diff
