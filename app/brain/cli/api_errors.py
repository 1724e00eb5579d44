"""What the CLI's brain-api commands share: the client built from the settings, and one way to turn
its errors into a command's error line (``Error: brain-api at URL answered HTTP 400 invalid_parameter:
month must be YYYY-MM (field month)``), so ``search``, ``stats``, ``forget``, ``recent``, ``gpu`` and
``ask`` report a refusal in the same words and always name the URL, the status and the code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from brain.client.http import ApiClient, ApiError, ApiUnavailable
from brain.shared.settings import LaptopConfig


def describe(exc: ApiError | ApiUnavailable) -> str:
    """One line naming what failed: the URL, the status and code, brain-api's message, the field."""
    if isinstance(exc, ApiUnavailable):
        return str(exc)
    field = f" (field {exc.field})" if exc.field else ""
    after = f" after {exc.attempts} attempts" if exc.attempts > 1 else ""
    return f"brain-api at {exc.url} answered HTTP {exc.status} {exc.code}{after}: {exc.message}{field}"


@contextmanager
def reported() -> Iterator[None]:
    """Inside: an ApiError or ApiUnavailable ends the command with :func:`describe`'s line (exit 1)."""
    try:
        yield
    except (ApiError, ApiUnavailable) as exc:
        raise click.ClickException(describe(exc)) from None


def client(cfg: LaptopConfig) -> ApiClient:
    """The brain-api client of ``client.*``; an empty URL is the command's error, not a traceback."""
    try:
        return ApiClient.from_config(cfg)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
