"""How a sensor sees the runs of its own job: waiting in the queue, or in flight."""

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

# NOT_STARTED is left out: a run the daemon created but never submitted would block forever.
WAITING = [DagsterRunStatus.QUEUED]
IN_FLIGHT = [*WAITING, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def runs_of(instance: DagsterInstance, job_name: str, statuses: list) -> int:
    return instance.get_runs_count(RunsFilter(job_name=job_name, statuses=statuses))
