"""Reading and validating a source catalogue file (YAML) into a `Catalogue`.

Every mistake is collected (not just the first) as `file:line: what is wrong; what to write`,
and raised together as a `CatalogueError`. The YAML is composed into nodes, not loaded into
plain data, so each message can name the line it is about.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import phonenumbers
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rag_assets.catalogue.model import (
    ACTIVITY,
    ENVELOPES,
    FIELD_GROUPS,
    MEMBERSHIP,
    PERSON,
    ROLES,
    SUMMARY_PLACEHOLDER,
    Catalogue,
    IdentityColumns,
    Knowledge,
    ProfileRole,
    SourceTable,
    SurvivorshipPolicy,
)

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
IDENTIFIER_KINDS = ("email", "phone", "loyalty_number", "national_id", "passport")
IDENTITY_SINGLE = ("given_name", "surname", "full_name", "date_of_birth", "city", "postcode",
                   "country")

TOP_KEYS = ("version", "default_phone_region", "cdc_topics", "sources", "survivorship",
            "knowledge", "feedback")
TABLE_KEYS = ("system", "table", "topics", "topic_pattern", "envelope", "source_table",
              "primary_key", "version_column", "short_reference", "role", "identity",
              "membership", "activity")
IDENTITY_KEYS = IDENTIFIER_KINDS + IDENTITY_SINGLE + ("address_line", "phone_region")
MEMBERSHIP_KEYS = ("section", "kind", "fields", "summary")
ACTIVITY_KEYS = ("section", "kind", "fields", "summary", "status", "hide_statuses",
                 "upcoming_by")
SURVIVORSHIP_KEYS = ("source_priority", "by_priority", "by_recency", "last_interactions")


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based
    message: str


class CatalogueError(ValueError):
    """A catalogue file that cannot be used; `problems` say where and what to write instead."""

    def __init__(self, path: str, problems: list[Problem]):
        self.path = path
        self.problems = sorted(problems, key=lambda p: p.line)
        super().__init__("\n".join(f"{path}:{p.line}: {p.message}" for p in self.problems))


def load_catalogue(path: str | Path) -> Catalogue:
    """The catalogue of a file; `CatalogueError` names every problem with its line."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise CatalogueError(path, [Problem(0, f"cannot read the catalogue: {error.strerror}")])
    return parse_catalogue(text, path)


def parse_catalogue(text: str, path: str = "<catalogue>") -> Catalogue:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        raise CatalogueError(path, [Problem(line, f"not valid YAML: {error.problem or error}")])
    reader = _Reader()
    catalogue = reader.catalogue(root, path)
    if reader.problems:
        raise CatalogueError(path, reader.problems)
    return catalogue


def _line(node: Node) -> int:
    return node.start_mark.line + 1


class _Reader:
    """Turns YAML nodes into the model, noting every problem instead of stopping at one."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, node: Node, message: str) -> None:
        self.problems.append(Problem(_line(node), message))

    # --- generic shapes ---------------------------------------------------------------------

    def mapping(self, node: Node | None, allowed: tuple[str, ...], what: str) -> dict[str, Node]:
        if node is None:
            return {}
        if not isinstance(node, MappingNode):
            self.fail(node, f"{what} must be a mapping (`key: value` lines)")
            return {}
        found: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else None
            if key not in allowed:
                self.fail(key_node, _unknown_key(key, allowed, what))
            elif key in found:
                self.fail(key_node, f"{key!r} is given twice in {what}; keep one")
            else:
                found[key] = value_node
        return found

    def text(self, node: Node | None, what: str, pattern: re.Pattern[str] | None = None,
             hint: str = "") -> str | None:
        if node is None or (isinstance(node, ScalarNode) and node.tag.endswith(":null")):
            return None
        if not isinstance(node, ScalarNode) or not node.value.strip():
            self.fail(node, f"{what} must be a non-empty text{hint}")
            return None
        if pattern is not None and not pattern.match(node.value):
            self.fail(node, f"{what} {node.value!r} must be lower-case letters, digits and _ "
                            f"starting with a letter{hint}")
            return None
        return node.value

    def texts(self, node: Node | None, what: str) -> tuple[str, ...]:
        """A list of texts; a single text is a list of one."""
        if node is None:
            return ()
        items = node.value if isinstance(node, SequenceNode) else [node]
        values = []
        for item in items:
            value = self.text(item, f"each entry of {what}")
            if value is None:
                continue
            if value in values:
                self.fail(item, f"{value!r} is named twice in {what}; keep one")
            values.append(value)
        return tuple(values)

    def integer(self, node: Node | None, what: str, default: int, low: int) -> int:
        if node is None:
            return default
        try:
            value = int(node.value) if isinstance(node, ScalarNode) else None
        except ValueError:
            value = None
        if value is None or value < low:
            self.fail(node, f"{what} must be a whole number of at least {low}")
            return default
        return value

    def regex(self, node: Node | None, what: str) -> str | None:
        pattern = self.text(node, what)
        if pattern is None:
            return None
        try:
            re.compile(pattern)
        except re.error as error:
            self.fail(node, f"{what} {pattern!r} is not a valid regular expression ({error}); "
                            r"escape literal dots as \. and quote the pattern in single quotes")
            return None
        return pattern

    # --- the file ---------------------------------------------------------------------------

    def catalogue(self, root: Node | None, path: str) -> Catalogue:
        if root is None:
            self.problems.append(Problem(1, "the catalogue is empty; it needs at least `sources:`"))
            return Catalogue(path, ())
        top = self.mapping(root, TOP_KEYS, "the catalogue")
        if "version" in top and self.integer(top["version"], "version", 1, 1) != 1:
            self.fail(top["version"], "version must be 1 (the only catalogue format)")
        region = self.text(top.get("default_phone_region"), "default_phone_region") or "GB"
        if "default_phone_region" in top:
            region = self.region(top["default_phone_region"], region)
        if "sources" not in top:
            self.fail(root, "the catalogue has no `sources:`; list the source tables under it")
        tables = self.tables(top.get("sources"))
        survivorship = self.survivorship(top.get("survivorship"), tables)
        catalogue = Catalogue(
            path=path,
            tables=tables,
            survivorship=survivorship,
            default_phone_region=region,
            cdc_topics=self.regex(top.get("cdc_topics"), "cdc_topics"),
            knowledge=self.knowledge(top.get("knowledge")),
            feedback_topic=self.feedback(top.get("feedback")),
        )
        self.check_topics(catalogue)
        return catalogue

    def region(self, node: Node, region: str) -> str:
        if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            self.fail(node, f"phone region {region!r} is not a region code; write a two-letter "
                            "ISO 3166 code such as GB, US or DE")
        return region.upper()

    def tables(self, node: Node | None) -> tuple[SourceTable, ...]:
        if node is None:
            return ()
        if not isinstance(node, SequenceNode):
            self.fail(node, "sources must be a list of tables, each starting with `- system:`")
            return ()
        tables: list[SourceTable] = []
        for item in node.value:
            table = self.table(item)
            if table is None:
                continue
            twin = next((t for t in tables if t.key == table.key), None)
            if twin is not None:
                self.fail(item, f"table {table.name} is already listed at line {twin.line}; "
                                "merge the two entries")
                continue
            tables.append(table)
        return tuple(tables)

    def table(self, node: Node) -> SourceTable | None:
        fields = self.mapping(node, TABLE_KEYS, "a source table")
        if not isinstance(node, MappingNode):
            return None
        hint = " (it names records in references: <system>.<table>:<primary key>)"
        system = self.text(fields.get("system"), "system", NAME, hint)
        table = self.text(fields.get("table"), "table", NAME, hint)
        for name in ("system", "table"):
            if name not in fields:
                self.fail(node, f"a source table needs `{name}:`")
        if system is None or table is None:
            return None
        label = f"table {system}.{table}"
        topics = self.texts(fields.get("topics"), f"the topics of {label}")
        topic_pattern = self.regex(fields.get("topic_pattern"), f"topic_pattern of {label}")
        if not topics and topic_pattern is None and "topic_pattern" not in fields:
            self.fail(node, f"{label} names no topic; add `topics: [<topic>]` or "
                            "`topic_pattern: '<regular expression>'`")
        envelope = self.text(fields.get("envelope"), "envelope") or "any"
        if envelope not in ENVELOPES:
            self.fail(fields["envelope"], f"envelope {envelope!r} is unknown; write one of "
                                          f"{', '.join(ENVELOPES)}")
        primary_key = self.texts(fields.get("primary_key"), f"the primary key of {label}") or ("id",)
        if "identity" not in fields:
            self.fail(node, f"{label} has no `identity:`; name at least one column that "
                            "identifies the person (email, phone, loyalty_number, national_id, "
                            "passport or a name), or its records can never join a customer")
        identity = self.identity(fields.get("identity"), label)
        return SourceTable(
            system=system,
            table=table,
            identity=identity,
            topics=topics,
            topic_pattern=topic_pattern,
            envelope=envelope,
            source_table=self.text(fields.get("source_table"), "source_table"),
            primary_key=primary_key,
            version_column=self.text(fields.get("version_column"), "version_column"),
            short_reference=self.text(fields.get("short_reference"), "short_reference", NAME),
            profile=self.role(node, fields, label),
            line=_line(node),
        )

    def identity(self, node: Node | None, label: str) -> IdentityColumns:
        fields = self.mapping(node, IDENTITY_KEYS, f"the identity of {label}")
        values: dict[str, Any] = {}
        where: dict[str, str] = {}
        for key, value_node in fields.items():
            if key in IDENTIFIER_KINDS or key == "address_line":
                values[key] = self.texts(value_node, f"{key} of {label}")
                columns = values[key]
            elif key == "phone_region":
                region = self.text(value_node, "phone_region")
                values[key] = self.region(value_node, region) if region else None
                continue
            else:
                values[key] = self.text(value_node, f"{key} of {label}")
                columns = (values[key],) if values[key] else ()
            for column in columns:
                if column in where and where[column] != key:
                    self.fail(value_node, f"column {column!r} of {label} is named twice, as "
                                          f"{where[column]} and as {key}; a column holds one "
                                          "kind of value, remove one")
                where.setdefault(column, key)
        identity = IdentityColumns(**values)
        if node is not None and not any(values.get(k) for k in IDENTIFIER_KINDS + (
                "given_name", "surname", "full_name")):
            self.fail(node, f"the identity of {label} names no identifier or name column; add "
                            "e.g. `email: [email]`")
        return identity

    def role(self, node: Node, fields: dict[str, Node], label: str) -> ProfileRole:
        role = self.text(fields.get("role"), "role") or PERSON
        if role not in ROLES:
            self.fail(fields["role"], f"role {role!r} is unknown; write one of {', '.join(ROLES)}")
            return ProfileRole()
        for other in (MEMBERSHIP, ACTIVITY):
            if other in fields and other != role:
                self.fail(fields[other], f"`{other}:` is only read for role: {other}, and "
                                         f"{label} has role: {role}; remove it or change the role")
        if role == PERSON:
            return ProfileRole()
        if role not in fields:
            self.fail(node, f"{label} has role: {role} but no `{role}:` section; add one with "
                            "at least `section:` and `fields:`")
            return ProfileRole(role=role, kind=role)
        allowed = MEMBERSHIP_KEYS if role == MEMBERSHIP else ACTIVITY_KEYS
        section_fields = self.mapping(fields[role], allowed, f"the {role} of {label}")
        required = ("section", "fields") + (("kind", "summary") if role == ACTIVITY else ())
        for key in required:
            if key not in section_fields:
                self.fail(fields[role], f"the {role} of {label} needs `{key}:`")
        section = self.text(section_fields.get("section"), "section", NAME)
        shown = self.profile_fields(section_fields.get("fields"), label)
        upcoming_by = self.text(section_fields.get("upcoming_by"), "upcoming_by")
        if upcoming_by and upcoming_by not in dict(shown):
            self.fail(section_fields["upcoming_by"], f"upcoming_by {upcoming_by!r} is not one of "
                                                     f"the fields of {label}; add it to `fields:`")
        return ProfileRole(
            role=role,
            kind=self.text(section_fields.get("kind"), "kind", NAME) or section or role,
            section=section,
            fields=shown,
            summary=self.summary(section_fields.get("summary")),
            status=self.text(section_fields.get("status"), "status"),
            hidden_statuses=frozenset(
                s.lower() for s in self.texts(section_fields.get("hide_statuses"), "hide_statuses")),
            upcoming_by=upcoming_by,
        )

    def profile_fields(self, node: Node | None, label: str) -> tuple[tuple[str, str], ...]:
        if node is None:
            return ()
        if not isinstance(node, MappingNode):
            self.fail(node, f"fields of {label} must map each profile field to its column, "
                            "e.g. `total: order_total`")
            return ()
        shown: dict[str, str] = {}
        for key_node, value_node in node.value:
            name = self.text(key_node, "a profile field", NAME)
            column = self.text(value_node, f"the column of {key_node.value}")
            if name is None or column is None:
                continue
            if name in shown:
                self.fail(key_node, f"profile field {name!r} is given twice; keep one")
            shown[name] = column
        return tuple(shown.items())

    def summary(self, node: Node | None) -> str | None:
        template = self.text(node, "summary")
        if template is None:
            return None
        rest = SUMMARY_PLACEHOLDER.sub("", template)
        if "{" in rest or "}" in rest:
            self.fail(node, f"summary {template!r} has an unmatched brace; write placeholders "
                            "as {column} or {column|default}")
        return template

    def survivorship(self, node: Node | None, tables: tuple[SourceTable, ...]) -> SurvivorshipPolicy:
        fields = self.mapping(node, SURVIVORSHIP_KEYS, "survivorship")
        systems = {t.system for t in tables}
        priority = self.texts(fields.get("source_priority"), "source_priority")
        for name in priority:
            if name not in systems and tables:
                self.fail(fields["source_priority"], f"source_priority names {name!r}, which is "
                                                     f"no system of sources: ({', '.join(sorted(systems))})")
        default = SurvivorshipPolicy()
        groups = {}
        for rule in ("by_priority", "by_recency"):
            groups[rule] = self.texts(fields.get(rule), rule) if rule in fields else None
            for name in groups[rule] or ():
                if name not in FIELD_GROUPS:
                    self.fail(fields[rule], f"{rule} names {name!r}; the golden fields are "
                                            f"{', '.join(FIELD_GROUPS)}")
        both = set(groups["by_priority"] or ()) & set(groups["by_recency"] or ())
        if both:
            self.fail(fields["by_recency"], f"{', '.join(sorted(both))} cannot be both by_priority "
                                            "and by_recency; keep each field in one list")
        by_priority = default.by_priority if groups["by_priority"] is None else groups["by_priority"]
        by_recency = default.by_recency if groups["by_recency"] is None else groups["by_recency"]
        if groups["by_priority"] is None and groups["by_recency"] is not None:
            by_priority = frozenset(by_priority) - set(by_recency)
        if groups["by_recency"] is None and groups["by_priority"] is not None:
            by_recency = frozenset(by_recency) - set(by_priority)
        return SurvivorshipPolicy(
            source_priority=priority or tuple(dict.fromkeys(t.system for t in tables)),
            by_priority=frozenset(by_priority),
            by_recency=frozenset(by_recency),
            last_interactions=self.integer(fields.get("last_interactions"), "last_interactions",
                                           default.last_interactions, 0),
        )

    def knowledge(self, node: Node | None) -> Knowledge:
        fields = self.mapping(node, ("prefix", "document_types"), "knowledge")
        default = Knowledge()
        prefix = self.text(fields.get("prefix"), "knowledge prefix")
        types = self.texts(fields.get("document_types"), "document_types")
        known = set(default.document_types)
        for name in types:
            if _extension(name) not in known:
                self.fail(fields["document_types"], f"document type {name!r} cannot be parsed; "
                                                    f"write some of {', '.join(sorted(known))}")
        return Knowledge(prefix=default.prefix if prefix is None else prefix,
                         document_types=tuple(_extension(t) for t in types) or default.document_types)

    def feedback(self, node: Node | None) -> str:
        fields = self.mapping(node, ("topic",), "feedback")
        return self.text(fields.get("topic"), "feedback topic") or "app.feedback"

    # --- across tables ----------------------------------------------------------------------

    def check_topics(self, catalogue: Catalogue) -> None:
        """An explicit topic or short reference claimed by two tables is ambiguous."""
        claims: dict[str, SourceTable] = {}
        for table in catalogue.tables:
            for topic in table.topics:
                for other in catalogue.tables:
                    if other is not table and other.carries(topic):
                        self.problems.append(Problem(
                            table.line, f"topic {topic!r} of table {table.name} is also matched "
                                        f"by table {other.name} (line {other.line}); each topic "
                                        "carries one table: narrow the topic_pattern"))
                        break
            if table.short_reference:
                first = claims.setdefault(table.short_reference, table)
                if first is not table:
                    self.problems.append(Problem(
                        table.line, f"short_reference {table.short_reference!r} of {table.name} is "
                                    f"already the short form of {first.name} (line {first.line}); "
                                    "choose another"))


def _unknown_key(key: Any, allowed: tuple[str, ...], what: str) -> str:
    close = difflib.get_close_matches(str(key), allowed, n=1)
    instead = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key {key!r} in {what}; {instead}allowed: {', '.join(allowed)}"


def _extension(name: str) -> str:
    return name.lower() if name.startswith(".") else "." + name.lower()
