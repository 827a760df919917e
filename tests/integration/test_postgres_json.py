"""json/jsonb values go in and out through orjson (`rag_assets.platform.json_codec`): PostgreSQL
must store, and give back, the same values as with the standard library, including what orjson
refuses or would read differently."""

import json

import pytest
from psycopg.types.json import Jsonb


pytestmark = pytest.mark.integration

VALUES = [
    {"name": "Zoë Ng", "city": "Zürich", "emoji": "\U0001F600", "quote": 'say "hi"\n\\'},
    {"points": 2**63 - 1, "negative": -(2**63), "ratio": 0.1, "tiny": 5e-324, "none": None},
    {"big": 2**70, "nested": [{"deep": [1, [2, [3]]]}], "flag": True},  # beyond 64 bits
    {1: "an int key", "list": []},  # keys that are not strings
    ["top", "level", "list"],
    "a bare string",
]


@pytest.mark.parametrize("value", VALUES)
def test_stored_jsonb_equals_the_standard_librarys(postgres, value):
    with postgres.transaction() as cur:
        cur.execute("SELECT %s::jsonb = %s::jsonb, %s::jsonb::text",
                    (Jsonb(value), json.dumps(value), Jsonb(value)))
        same, stored = cur.fetchone()
    assert same, stored
    assert json.loads(stored) == json.loads(json.dumps(value))


@pytest.mark.parametrize("value", VALUES)
def test_read_back_jsonb_equals_what_was_written(postgres, value):
    with postgres.transaction() as cur:
        cur.execute("SELECT %s::jsonb", (json.dumps(value),))
        assert cur.fetchone()[0] == json.loads(json.dumps(value))
