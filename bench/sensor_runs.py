"""Shared by the benchmarks: tick a run-requesting sensor and run what it requests, in process,
until it requests nothing more; remove what a benchmark created."""

from collections.abc import Iterator


def requested_runs(spec, assets: list, resources: dict) -> Iterator:
    """Yield the result of every run the range sensor of `spec` requests (materialising
    `assets`), until caught up."""
    from dagster import DagsterInstance, materialize

    from sensors.kafka_ranges import plan_tick

    cursor = None
    with DagsterInstance.ephemeral() as instance:
        while True:
            tick = plan_tick(spec, cursor, resources["kafka"], resources["postgres"], instance)
            cursor = tick.cursor
            if not tick.run_requests:
                return
            for request in tick.run_requests:
                result = materialize(assets, resources=resources, run_config=request.run_config,
                                     instance=instance, tags=request.tags)
                assert result.success
                yield result


def customer_runs(spec, resources: dict) -> Iterator:
    """Every `customers_cdc` run the sensor of `spec` (`CDC_RANGES` or a variant) requests."""
    from rag_assets.customers.assets import customer_profiles, identity_graph, source_records

    return requested_runs(spec, [source_records, identity_graph, customer_profiles], resources)


def feedback_runs(spec, resources: dict) -> Iterator:
    """Every `feedback_stream` run the sensor of `spec` (`FEEDBACK_RANGES` or a variant) requests."""
    from rag_assets.feedback.assets import conversation_log, feedback_scored, kpi_daily, kpi_hourly

    return requested_runs(spec, [conversation_log, feedback_scored, kpi_hourly, kpi_daily],
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
