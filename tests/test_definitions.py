"""Every definition of the code location loads, as `dagster definitions validate` would."""

from infra.settings import InfraSettings, connection_env


def test_definitions_load_with_every_resource(monkeypatch):
    for name, value in connection_env(InfraSettings.from_env()).items():
        monkeypatch.setenv(name, value)
    from rag_assets.definitions import defs

    repository = defs.get_repository_def()
    assert {"kafka", "s3", "postgres", "lancedb"} <= set(repository.get_top_level_resources())
