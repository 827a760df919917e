"""The catalogue in the Dagster lineage: every source table and the document prefix as an
external asset (observed, never materialised here), upstream of `source_records` and
`documents`, with its mapping in the metadata, so the UI shows where each profile field comes
from."""

from __future__ import annotations

from dagster import AssetKey, AssetSpec, MetadataValue

from rag_assets.catalogue.model import Catalogue, SourceTable
from rag_assets.platform.asset_conventions import OWNER

GROUP = "sources"


def source_table_key(table: SourceTable) -> AssetKey:
    return AssetKey([GROUP, table.system, table.table])


DOCUMENTS_KEY = AssetKey([GROUP, "documents"])


def source_specs(catalogue: Catalogue) -> list[AssetSpec]:
    return [_table_spec(catalogue, t) for t in catalogue.tables] + [_documents_spec(catalogue)]


def _table_spec(catalogue: Catalogue, table: SourceTable) -> AssetSpec:
    identity = {kind: ", ".join(value) if isinstance(value, tuple) else value
                for kind, value in vars(table.identity).items() if value}
    role = table.profile
    metadata = {
        "topics": MetadataValue.text(", ".join(table.topics) or "-"),
        "topic_pattern": MetadataValue.text(table.topic_pattern or "-"),
        "envelope": MetadataValue.text(table.envelope),
        "primary_key": MetadataValue.text(", ".join(table.primary_key)),
        "version_column": MetadataValue.text(table.version_column or "ts_ms, then LSN"),
        "identity_columns": MetadataValue.json(identity),
        "profile_role": MetadataValue.text(role.role),
        "catalogue": MetadataValue.path(f"{catalogue.path}:{table.line}"),
    }
    if role.section:
        metadata["profile_section"] = MetadataValue.text(role.section)
        metadata["profile_fields"] = MetadataValue.json(dict(role.fields))
    if table.short_reference:
        metadata["reference"] = MetadataValue.text(f"{table.short_reference}:<primary key>")
    return AssetSpec(
        key=source_table_key(table),
        group_name=GROUP,
        kinds={"kafka"},
        owners=[OWNER],
        description=f"Source table {table.name}: its change events, as the source catalogue "
                    f"maps them ({role.role} records).",
        metadata=metadata,
    )


def _documents_spec(catalogue: Catalogue) -> AssetSpec:
    knowledge = catalogue.knowledge
    return AssetSpec(
        key=DOCUMENTS_KEY,
        group_name=GROUP,
        kinds={"s3"},
        owners=[OWNER],
        description="The knowledge documents under the bucket prefix the catalogue names.",
        metadata={"prefix": MetadataValue.text(knowledge.prefix),
                  "document_types": MetadataValue.text(" ".join(knowledge.document_types)),
                  "catalogue": MetadataValue.path(catalogue.path)},
    )
