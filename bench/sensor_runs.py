"""Shared by the customer benchmarks: tick `cdc_sensor` and run what it requests, in process,
until it requests nothing more."""

from collections.abc import Iterator


def customer_runs(sensor, resources: dict) -> Iterator:
    """Yield the result of every `customers_cdc` run the sensor requests, until caught up."""
    from dagster import DagsterInstance, build_sensor_context, materialize

    from rag_assets.customers.assets import customer_profiles, identity_graph, source_records

    cursor = None
    with DagsterInstance.ephemeral() as instance:
        while True:
            tick = sensor(build_sensor_context(cursor=cursor, resources=resources,
                                               instance=instance))
            cursor = tick.cursor
            if not tick.run_requests:
                return
            for request in tick.run_requests:
                result = materialize([source_records, identity_graph, customer_profiles],
                                     resources=resources, run_config=request.run_config,
                                     instance=instance)
                assert result.success
                yield result
