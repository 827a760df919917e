"""Settings that may be absent from the environment (Dagster fails on an unset EnvVar)."""

from __future__ import annotations

import os

from dagster import EnvVar


def optional_env(name: str) -> EnvVar | None:
    """An EnvVar for a setting that may be absent: None when it is, so the default applies."""
    return EnvVar(name) if os.environ.get(name) else None


def optional_int_env(name: str) -> EnvVar | None:
    return EnvVar.int(name) if os.environ.get(name) else None


def given(**settings: EnvVar | None) -> dict[str, EnvVar]:
    """The settings that are set, to pass to a resource whose defaults cover the others."""
    return {name: value for name, value in settings.items() if value is not None}
