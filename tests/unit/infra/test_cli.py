"""The CLI's promises that need no server: every connection variable is exported."""

import subprocess
import sys

from infra.settings import REPO_ROOT, InfraSettings, connection_env
from rag_assets.cli import build_parser, main


def test_infra_env_exports_every_connection_variable(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("RAG_PG_PORT", "25999")
    assert main(["infra", "env"]) == 0
    lines = capsys.readouterr().out.splitlines()
    exported = dict(line.removeprefix("export ").split("=", 1) for line in lines)
    assert set(exported) == set(connection_env(InfraSettings.from_env()))
    assert exported["PGPORT"] == "25999"
    # The exports are valid shell: a shell that evaluates them sees the same values.
    script = "\n".join(lines) + "\necho \"$PGPASSWORD\""
    shell = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert shell.stdout.strip() == connection_env(InfraSettings.from_env())["PGPASSWORD"]


def test_generated_secrets_are_private_and_stable(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_STATE_DIR", str(tmp_path))
    first = connection_env(InfraSettings.from_env())
    assert (tmp_path / "secrets.env").stat().st_mode & 0o077 == 0
    assert connection_env(InfraSettings.from_env()) == first


def test_every_documented_command_parses():
    parser = build_parser()
    for argv in (["infra", "up"], ["infra", "down"], ["infra", "status"], ["dagster", "up"],
                 ["demo", "--duration", "5"], ["demo-data", "--continuous", "--rate", "3"]):
        assert parser.parse_args(argv).handler


def test_each_domain_adds_exactly_the_commands_the_cli_loads_it_for():
    import argparse
    import importlib

    from rag_assets.cli import DOMAIN_COMMANDS

    for names, adder in DOMAIN_COMMANDS:
        module, function = adder.split(":")
        commands = argparse.ArgumentParser().add_subparsers()
        getattr(importlib.import_module(module), function)(commands)
        assert set(commands.choices) == set(names), adder


def test_a_look_up_loads_neither_dagster_nor_the_other_commands():
    # What `rag-assets customer --ref ...` imports before it connects (a fresh interpreter).
    script = ("import sys\n"
              "from rag_assets.cli import build_parser\n"
              "args = build_parser(['customer', '--ref', 'crm:1']).parse_args(['customer', '--ref', 'crm:1'])\n"
              "from rag_assets.customers.cli_commands import _postgres\n"
              "heavy = ('dagster', 'lancedb', 'pandas', 'boto3', 'rag_assets.retrieval.cli',\n"
              "         'rag_assets.privacy.cli_commands')\n"
              "print(sorted(name for name in heavy if name in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, cwd=REPO_ROOT)
    assert result.stdout.strip() == "[]"
