"""Fixtures of the infra suite (helpers live in pulumi_harness.py, importable by name)."""

from __future__ import annotations

import pytest
from pulumi_harness import ProgramRun, run_program


@pytest.fixture
def program_run() -> ProgramRun:
    """The Pulumi program run under mocks with only the required config."""
    return run_program({})
