"""Run the three customer assets for given offset ranges, in a process of its own.

    python tests/integration/customers/materialize_range.py SETTINGS_JSON

SETTINGS_JSON holds `kafka_topic_prefix`, `postgres` (resource fields) and `run_config`; Kafka is
reached as the environment says (`kafka_from_env`), keeping its password off the command line.
Used by the kill-and-retry test, which SIGKILLs this process part-way through.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from dagster import materialize  # noqa: E402

from rag_assets.customers.assets import customer_profiles, identity_graph, source_records  # noqa: E402
from resources.kafka import kafka_from_env  # noqa: E402
from resources.postgres import PostgresResource  # noqa: E402


def main() -> int:
    settings = json.loads(sys.argv[1])
    resources = {"kafka": kafka_from_env(topic_prefix=settings["kafka_topic_prefix"]),
                 "postgres": PostgresResource(**settings["postgres"])}
    result = materialize([source_records, identity_graph, customer_profiles], resources=resources,
                         run_config=settings["run_config"])
    print("success" if result.success else "failure", flush=True)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
