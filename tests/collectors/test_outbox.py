"""The outbox keeps every item until brain-api acknowledged it, whatever goes wrong."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brain.client.http import ApiClient
from brain.collect.outbox import AuthFailed, LockBusy, RunLock, State

from .standin_api import TOKEN, BrainApiStandIn


def items(n: int, prefix: str = "note:") -> list[dict]:
    return [{"id": f"{prefix}{i}", "source": "note", "title": f"t{i}", "content": f"content {i}"} for i in range(n)]


def client(standin: BrainApiStandIn, retries: int = 1, timeout: float = 5) -> ApiClient:
    return ApiClient(standin.url, TOKEN, timeout=timeout, retries=retries, backoff=0.01, sleep=lambda s: None)


def fill(state: State, its: list[dict]) -> None:
    for it in its:
        state.enqueue_upsert(it)
    state.checkpoint()


def test_items_leave_the_outbox_only_after_2xx(state: State, standin: BrainApiStandIn) -> None:
    fill(state, items(25))
    result = state.flush(client(standin), max_items=10)
    assert (result.sent, result.batches, result.error) == (25, 3, "")
    assert result.answers["inserted"] == 25
    assert state.pending() == {"upsert": 0, "delete": 0, "failed": 0}
    assert set(standin.items) == {f"note:{i}" for i in range(25)}


def test_batches_respect_the_byte_limit(state: State, standin: BrainApiStandIn) -> None:
    big = [{"id": f"note:{i}", "source": "note", "content": "x" * 40_000} for i in range(5)]
    fill(state, big)
    assert state.flush(client(standin), max_items=100, max_bytes=100_000).batches == 3


def test_identical_items_are_not_queued_twice_but_changes_are(state: State) -> None:
    it = items(1)[0]
    assert state.enqueue_upsert(it) is True
    assert state.enqueue_upsert(dict(it)) is False
    assert state.enqueue_upsert({**it, "content": "changed"}) is True
    assert state.pending()["upsert"] == 1  # the newer version replaced the pending one


@pytest.mark.parametrize("failure", ["500", "503", "507", "429", "timeout", "drop"])
def test_server_trouble_keeps_items_for_the_next_run(state: State, standin: BrainApiStandIn, failure: str) -> None:
    fill(state, items(12))
    standin.script = [failure] * 2  # more failures than the client retries (retries=1)
    result = state.flush(client(standin, retries=1, timeout=0.2), max_items=5)
    assert result.error and result.sent == 0
    assert state.pending()["upsert"] == 12
    # next run: the API is fine again
    result = state.flush(client(standin), max_items=5)
    assert (result.sent, result.error) == (12, "")
    assert state.pending()["upsert"] == 0 and len(standin.items) == 12


def test_api_down_keeps_items(state: State, tmp_path: Path) -> None:
    fill(state, items(3))
    down = ApiClient("http://127.0.0.1:9", TOKEN, timeout=1, retries=0)
    result = state.flush(down)
    assert "unreachable at http://127.0.0.1:9" in result.error
    assert state.pending()["upsert"] == 3


def test_a_rejected_item_does_not_block_the_rest(state: State, standin: BrainApiStandIn) -> None:
    fill(state, items(10))
    standin.script = ["400:3"]  # brain-api rejects the 4th item of the first batch
    result = state.flush(client(standin), max_items=10)
    assert (result.sent, result.failed) == (9, 1)
    assert "note:3" not in standin.items and len(standin.items) == 9
    [row] = state.failures()
    assert (row["item_id"], row["last_status"]) == ("note:3", 400)
    assert "scripted failure 400" in row["last_error"]
    # a rejected item stays out of later flushes until it changes or is retried
    assert state.flush(client(standin)).sent == 0
    assert state.retry_failed() == 1
    assert state.flush(client(standin)).sent == 1 and "note:3" in standin.items


def test_a_batch_error_without_index_is_bisected_to_the_culprit(state: State, standin: BrainApiStandIn) -> None:
    good = items(7)
    bad = {"id": "note:bad", "source": "unknown-source", "content": "x"}  # the stand-in rejects it
    fill(state, good[:3] + [bad] + good[3:])
    standin.script = ["413"]  # whole body refused once, no index: the outbox splits the batch
    result = state.flush(client(standin), max_items=10)
    assert result.sent == 7 and result.failed == 1
    assert [r["item_id"] for r in state.failures()] == ["note:bad"]


def test_a_wrong_token_aborts_and_keeps_everything(state: State, standin: BrainApiStandIn) -> None:
    fill(state, items(4))
    with pytest.raises(AuthFailed, match="401"):
        state.flush(ApiClient(standin.url, "wrong-token", retries=0))
    assert state.pending() == {"upsert": 4, "delete": 0, "failed": 0}


def test_deletes_go_through_the_outbox_and_404_counts_as_done(state: State, standin: BrainApiStandIn) -> None:
    fill(state, items(2))
    state.flush(client(standin))
    state.enqueue_delete("note:0")
    state.enqueue_delete("note:never-sent")
    state.checkpoint()
    standin.script = ["503", "503"]
    assert state.flush(client(standin)).error  # kept while the API is unavailable
    assert state.pending()["delete"] == 2
    result = state.flush(client(standin))
    assert (result.deleted, result.failed) == (2, 0)
    assert set(standin.items) == {"note:1"}


def test_a_full_disk_keeps_a_delete_for_the_next_run(state: State, standin: BrainApiStandIn) -> None:
    """507: brain-api's disk is full and nothing was done; the delete is kept, not set aside as failed."""
    fill(state, items(1))
    state.flush(client(standin))
    state.enqueue_delete("note:0")
    state.checkpoint()
    standin.script = ["507", "507"]
    assert "507" in state.flush(client(standin)).error
    assert state.pending() == {"upsert": 0, "delete": 1, "failed": 0}
    assert state.flush(client(standin)).deleted == 1 and standin.items == {}


def test_delete_replaces_a_pending_upsert_and_resending_works_after(state: State, standin: BrainApiStandIn) -> None:
    it = items(1)[0]
    state.enqueue_upsert(it)
    state.enqueue_delete(it["id"])
    assert state.pending() == {"upsert": 0, "delete": 1, "failed": 0}
    assert state.enqueue_upsert(it) is True  # after a delete the same item must be sent again


def test_dry_run_state_commits_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    st = State(path, dry_run=True)
    st.enqueue_upsert(items(1)[0])
    st.set_cursor("x", "1")
    st.checkpoint()
    st.close()
    st = State(path)
    assert st.pending()["upsert"] == 0 and st.get_cursor("x") == ""
    st.close()


def test_lock_excludes_a_second_run_and_survives_sigkill(tmp_path: Path) -> None:
    lock = tmp_path / "collect.lock"
    with RunLock(lock), pytest.raises(LockBusy, match=f"pid {os.getpid()}"), RunLock(lock):
        pass
    with RunLock(lock):  # released on exit
        pass
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from brain.collect.outbox import RunLock\n"
        f"l = RunLock(Path({str(lock)!r})).__enter__(); print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockBusy, match=f"pid {holder.pid}"), RunLock(lock):
            pass
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    deadline = time.monotonic() + 60  # a hang's limit, not a speed
    while True:  # the kernel drops a flock when its holder dies, even on SIGKILL
        try:
            with RunLock(lock):
                break
        except LockBusy:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_oversized_content_keeps_head_and_tail(redactor) -> None:
    from brain.collect import prepare

    item = {"id": "note:big", "source": "note", "content": "HEAD" + "é" * 600_000 + "TAIL", "meta": {}}
    clean, _ = prepare(item, redactor, max_bytes=100_000)
    data = clean["content"].encode()
    assert len(data) <= 100_000 and clean["content"].startswith("HEAD") and clean["content"].endswith("TAIL")
    assert "bytes cut by the collector" in clean["content"] and clean["meta"]["truncated"] is True
    small, _ = prepare({"id": "note:s", "source": "note", "content": "ok"}, redactor, max_bytes=100_000)
    assert small["content"] == "ok" and "meta" not in small


FAKE_KEY_LINES = ["MIIEpAIBAAKCAQEAfakeFAKEfake0123456789abcdefFAKEfakeFAKEfake0123456",
                  "FAKEfakeFAKE0123456789abcdefFAKEfakeFAKEfake0123456789abcdefFAKE01"]


def test_a_title_is_redacted_whole_then_made_one_line_and_cut(redactor) -> None:
    """Issue 12: cut to its length or joined onto one line first, a secret in a first prompt
    loses the shape its detector knows (a token cut in half, a private key without its END line
    and its lines joined by spaces), and the piece left over was sent as the title."""
    from brain.collect import prepare

    token = "sk-ant-api03-" + "FAKEa1B2c3D4" * 8 + "AA"
    key = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(FAKE_KEY_LINES * 4) + "\n-----END RSA PRIVATE KEY-----"
    for title in (f"Why does this fail? {token} please check", f"Why does this fail?\n{key}\nplease check"):
        clean, counts = prepare({"id": "note:t", "source": "note", "title": title, "content": "x"}, redactor,
                                max_bytes=100_000, title_chars=60)
        assert counts and "FAKE" not in clean["title"], clean["title"]
        assert clean["title"].startswith("Why does this fail? [REDACTED:") and "\n" not in clean["title"]
        assert len(clean["title"]) <= 60
    long, _ = prepare({"id": "note:l", "source": "note", "title": "word " * 200, "content": "x"}, redactor,
                      max_bytes=100_000)
    assert len(long["title"]) == 500 and long["title"].endswith("…")
