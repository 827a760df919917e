"""JSON decoding and encoding: the standard library against `rag_assets.platform.json_codec`
(orjson where it agrees with `json`), on the documents CDC catch-up handles most: Debezium
messages of the CDC bench, stored identities, and a profile-sized object.

    .venv/bin/python bench/json_codec.py [--rounds 5]

Prints seconds per round for each side and the ratio, measured alternately in one process.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cdc_throughput import Backlog  # noqa: E402  (bench/ is the script's own directory)

from rag_assets.platform import json_codec  # noqa: E402


def cases() -> list[tuple[str, list, object, object]]:
    messages = [m.value for m in Backlog(4000, 7, "bench.").messages() if m.value][:2000]
    identity = json.dumps({
        "identifiers": [["email", "alice.moreauson.1@example.org"], ["phone", "+447700000001"]],
        "given_name": "alice", "surname": "moreauson", "date_of_birth": "1978-03-01",
        "address_line": "2 moreauson road", "city": "leeds", "postcode": "LS1 4AB",
        "country": "GB"})
    profile = json.loads(messages[0])
    return [
        ("decode 2,000 Debezium messages", messages,
         lambda m: json.loads(m.decode()), json_codec.loads),
        ("decode 2,000 stored identities", [identity] * 2000, json.loads, json_codec.loads),
        ("encode 2,000 message-sized objects", [profile] * 2000,
         lambda v: json.dumps(v).encode(), json_codec.dumps),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"conditions: Python {platform.python_version()}, {args.rounds} rounds, each side "
          "timed alternately; best round reported")
    for name, items, standard, codec in cases():
        best = {"json": float("inf"), "json_codec": float("inf")}
        for _ in range(args.rounds):
            for side, fn in (("json", standard), ("json_codec", codec)):
                best[side] = min(best[side], timeit.timeit(lambda: [fn(x) for x in items], number=1))
        print(f"{name}: json {best['json'] * 1000:.1f} ms, json_codec "
              f"{best['json_codec'] * 1000:.1f} ms, x{best['json'] / best['json_codec']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
