"""``brain ask "question"``: the answer streamed to the terminal, then the numbered sources.

Why its own HTTP code instead of the shared ApiClient: the answer arrives as server-sent events
that must be printed as they come, and a 503 from an unreachable LLM still carries the
citations, which the terminal should show rather than only an error.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import click
import requests
import sseclient

from brain.cli import api_errors
from brain.client.http import error_from
from brain.shared import http_retry
from brain.shared.settings import LaptopConfig

CONNECT_RETRIES = 2


class AskFailed(click.ClickException):
    """brain-api answered with an error; the message is the API's own."""


@dataclass
class Event:
    event: str
    data: Any


def iter_sse(chunks: Iterator[bytes]) -> Iterator[Event]:
    """Server-sent events from a byte stream, parsed by sseclient-py; each ``data`` decoded as JSON.

    What it adds: sseclient-py hands out a last event that the stream cut off (no blank line after
    it) as if it were whole; here that is an error, so a half-sent ``done`` is never taken for one.
    """
    tail = _Tail(chunks)
    for ev in sseclient.SSEClient(iter(tail)).events():
        if tail.ended and not tail.at_boundary:
            raise click.ClickException("brain-api closed the answer stream in the middle of an event")
        yield Event(ev.event, _json_or_text(ev.data))


class _Tail:
    """The byte chunks, remembering whether the stream has ended and ended on an event's blank line."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._last = b""
        self.ended = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if chunk:
                self._last = (self._last + chunk)[-4:]
                yield chunk
        self.ended = True

    @property
    def at_boundary(self) -> bool:
        return self._last.endswith((b"\n\n", b"\r\r", b"\r\n\r\n")) or not self._last


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


class AskHttp:
    """POST /api/v1/ask with bearer auth, a connect timeout, and bounded retries before sending.

    Only failures to connect are retried (client.max_retries, at most CONNECT_RETRIES; the shared
    policy with no read or status retries): then
    nothing reached brain-api and a retry is harmless, whereas a lost answer may be a generation
    already running, and a 503 carries the citations to show.
    """

    def __init__(self, cfg: LaptopConfig, sleep: Callable[[float], None] = time.sleep):
        self.url = cfg.client.api_url.rstrip("/") + "/api/v1/ask"
        self.timeout = (cfg.client.timeout, cfg.client.ask_timeout)
        retry = http_retry.policy(min(cfg.client.max_retries, CONNECT_RETRIES), backoff=0.5, max_backoff=4.0, statuses=(), read=False,
                                  sleep=sleep)
        self.session = http_retry.session(retry, self.timeout)
        self.session.headers["Authorization"] = f"Bearer {cfg.client.token}"
        self.session.verify = cfg.client.ca_bundle or True

    def post(self, body: dict[str, Any], stream: bool) -> requests.Response:
        try:
            return self.session.post(self.url, json=body, stream=stream)
        except requests.ConnectionError as exc:
            tries = http_retry.attempts(exc)
            after = f" (after {tries} attempts)" if tries > 1 else ""
            raise click.ClickException(
                f"cannot reach brain-api at {self.url}: {http_retry.short_reason(exc)}{after}") from None
        except requests.Timeout:
            raise click.ClickException(
                f"brain-api at {self.url} did not answer within {self.timeout[1]:g} s (client.ask_timeout)"
            ) from None


def _error_of(resp: requests.Response, url: str) -> tuple[str, dict[str, Any]]:
    """The error line (in the words of every brain-api command) and the JSON body, {} if none."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    return api_errors.describe(error_from(resp, url)), body if isinstance(body, dict) else {}


def print_sources(citations: list[dict[str, Any]]) -> None:
    if not citations:
        click.echo("\nNo sources.")
        return
    click.echo("\n" + click.style("Sources:", bold=True))
    for c in citations:
        where = c.get("uri") or c["id"]
        click.echo(f"  [{c['n']}] {c.get('title') or c['id']}  ({c['source']}) {where}")


def _fail_with_sources(message: str, body: dict[str, Any]) -> None:
    click.echo(click.style("brain ask: ", fg="red") + message, err=True)
    if body.get("citations") is not None:
        click.echo("No complete answer, but this is what the brain remembers:", err=True)
        print_sources(body["citations"])
    sys.exit(1)


def run_stream(http: AskHttp, body: dict[str, Any], show_thinking: bool) -> None:
    resp = http.post(body | {"stream": True}, stream=True)
    with resp:
        if resp.status_code != 200:
            message, payload = _error_of(resp, http.url)
            if resp.status_code == 503 and "citations" in payload:
                _fail_with_sources(message, payload)
            raise AskFailed(message)
        try:
            final = _consume(iter_sse(resp.iter_content(chunk_size=None)), show_thinking)
        except requests.RequestException as exc:
            raise click.ClickException(f"the answer stream from {http.url} broke: {exc}") from None
    if final is None:
        raise click.ClickException(f"the answer stream from {http.url} ended without a final event")
    if final.event == "error":
        click.echo()
        _fail_with_sources(final.data["error"]["message"], final.data)
    print_sources(final.data["citations"])


def _consume(events: Iterator[Event], show_thinking: bool) -> Event | None:
    """Print pieces as they come; return the final ``done`` or ``error`` event."""
    thinking = False
    for ev in events:
        if ev.event == "thinking" and show_thinking:
            thinking = True
            click.echo(click.style(ev.data["text"], dim=True), nl=False)
        elif ev.event == "status":  # the GPU VM is starting: say so instead of sitting silent
            click.echo(click.style(f"[{ev.data.get('message', ev.data.get('stage', ''))}]", dim=True), err=True)
        elif ev.event == "token":
            if thinking:
                click.echo("\n")
                thinking = False
            click.echo(ev.data["text"], nl=False)
        elif ev.event in ("done", "error"):
            if ev.event == "done":
                click.echo()
            return ev
    return None


def run_once(http: AskHttp, body: dict[str, Any], as_json: bool, no_llm: bool, show_thinking: bool) -> None:
    resp = http.post(body, stream=False)
    if resp.status_code != 200:
        message, payload = _error_of(resp, http.url)
        if as_json and payload:
            click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
            sys.exit(1)
        if resp.status_code == 503 and "citations" in payload:
            _fail_with_sources(message, payload)
        raise AskFailed(message)
    data = resp.json()
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if no_llm:
        click.echo(data.get("context") or "(nothing retrieved)")
    else:
        if show_thinking and data.get("thinking"):
            click.echo(click.style(data["thinking"], dim=True) + "\n")
        click.echo(data["answer"])
    print_sources(data["citations"])


@click.command("ask")
@click.argument("question")
@click.option("-k", "--k", "k", type=click.IntRange(1, 50), help="Most sources to use (default ask.k).")
@click.option("--source", type=click.Choice(["claude", "agent", "browser", "file", "note"]), help="Only this source.")
@click.option("--project", help="Only items of this project (its path).")
@click.option("--since", help="Only items active since this date/time (ISO-8601).")
@click.option("--until", help="Only items active until this date/time (ISO-8601).")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer (no streaming).")
@click.option("--no-llm", is_flag=True, help="Print only the retrieved context and sources; no LLM call.")
@click.option("--think", "show_thinking", is_flag=True, help="Also show a reasoning model's <think> text.")
@click.option("--no-stream", is_flag=True, help="Wait for the whole answer instead of streaming it.")
@click.pass_obj
def ask(obj: Any, question: str, k: int | None, source: str | None, project: str | None, since: str | None,
        until: str | None, as_json: bool, no_llm: bool, show_thinking: bool, no_stream: bool) -> None:
    """Ask the brain a question; the answer cites what you remembered as [n].

    Exit status 1 when the LLM is unavailable (the sources are still printed).

    \b
    Example:
      brain ask "how did I fix the sqlite busy errors?" --since 2026-11-01
      brain ask "ansible ollama role" --no-llm
    """
    body: dict[str, Any] = {"question": question}
    for name, value in (("k", k), ("source", source), ("project", project), ("since", since), ("until", until)):
        if value is not None:
            body[name] = value
    if show_thinking:
        body["show_thinking"] = True
    if no_llm:
        body["llm"] = False
    http = AskHttp(obj.laptop)
    if as_json or no_llm or no_stream:
        run_once(http, body, as_json, no_llm, show_thinking)
    else:
        run_stream(http, body, show_thinking)
