"""Shared by the benchmarks: tick a run-requesting sensor and run what it requests, in process,
until it requests nothing more; remove what a benchmark created."""

from collections.abc import Iterator


def requested_runs(sensor, assets: list, resources: dict) -> Iterator:
    """Yield the result of every run the sensor requests (materialising `assets`), until caught up."""
    from dagster import DagsterInstance, build_sensor_context, materialize

    cursor = None
    with DagsterInstance.ephemeral() as instance:
        while True:
            tick = sensor(build_sensor_context(cursor=cursor, resources=resources,
                                               instance=instance))
            cursor = tick.cursor
            if not tick.run_requests:
                return
            for request in tick.run_requests:
                result = materialize(assets, resources=resources, run_config=request.run_config,
                                     instance=instance, tags=request.tags)
                assert result.success
                yield result


def customer_runs(sensor, resources: dict) -> Iterator:
    """Every `customers_cdc` run `cdc_sensor` (or a sensor of its spec) requests, until caught up."""
    from rag_assets.customers.assets import customer_profiles, identity_graph, source_records

    return requested_runs(sensor, [source_records, identity_graph, customer_profiles], resources)


def feedback_runs(sensor, resources: dict) -> Iterator:
    """Every `feedback_stream` run `feedback_sensor` (or a sensor of its spec) requests."""
    from rag_assets.feedback.assets import conversation_log, feedback_scored, kpi_daily, kpi_hourly

    return requested_runs(sensor, [conversation_log, feedback_scored, kpi_hourly, kpi_daily],
                          resources)


def drop_bench_data(postgres, kafka, topics: list[str]) -> None:
    """Drop a benchmark's own PostgreSQL schema and Kafka topics."""
    from kafka import KafkaAdminClient

    with postgres.transaction() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{postgres.db_schema}" CASCADE')
    admin = KafkaAdminClient(**kafka.client_config())
    try:
        admin.delete_topics(topics)
    except Exception:  # noqa: BLE001 - best effort clean-up
        pass
    admin.close()
