"""Production as one system (issue 15): the real ``site.yml`` provisions a brain, a GPU and a laptop
host (tests/system/conftest.py), then the laptop collects, searches and asks through HTTPS, the
LLM answers over the WireGuard tunnel, a second run changes nothing, the memory survives the brain
host (backed up to a bucket, the host destroyed and provisioned anew, restored from the bucket),
and the paths that must be closed are closed. Run: tests/system/rehearse.sh.

The tests run in file order and share one provisioned site; the GPU host is stopped last."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from .conftest import CONTEXT_TOKENS, TOKEN, Rehearsal, recap, wait_for

pytestmark = pytest.mark.rehearsal


def brain_cli(rehearsal: Rehearsal, args: str, check: bool = True, timeout: float = 600):
    """``brain ...`` on the laptop as its user, with the config the collectors role wrote."""
    return rehearsal.laptop.sh(f"~/.local/bin/brain {args}", user="dev", check=check, timeout=timeout)


def test_site_yml_provisioned_every_host(rehearsal: Rehearsal) -> None:
    result = recap((rehearsal.work / "site-1.log").read_text())
    assert set(result) == {"brain-vm", "gpu-vm", "laptop"}, result
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in result.values()), result
    print(f"first site.yml run (boot + prepare + provision): {rehearsal.first_run_seconds:.0f} s")


def test_both_hosts_run_with_the_derived_llm_settings(rehearsal: Rehearsal) -> None:
    env = rehearsal.gpu.sh("systemctl show ollama -p Environment --value").stdout
    assert f"OLLAMA_CONTEXT_LENGTH={CONTEXT_TOKENS}" in env and "OLLAMA_HOST=10.77.0.2:11434" in env
    config = rehearsal.brain.sh("cat /etc/brain/config.toml").stdout
    assert f"context_tokens = {CONTEXT_TOKENS}" in config
    assert 'base_url = "http://10.77.0.2:11434/v1"' in config and 'model = "deepseek-coder-v2:16b"' in config


def test_the_laptop_collects_over_https_and_finds_it(rehearsal: Rehearsal) -> None:
    out = brain_cli(rehearsal, "collect all").stdout + ""
    assert "claude" in out and "files" in out, out
    found = brain_cli(rehearsal, "search 'start phoenix in background' --mode bm25 --json").stdout
    hits = json.loads(found)["results"]
    assert any(h["source"] == "claude" for h in hits), found
    found = brain_cli(rehearsal, "search 'reciprocal rank fusion' --json").stdout
    assert any(h["source"] == "file" and "brain-docs" in h["id"] for h in json.loads(found)["results"]), found


def test_ask_answers_with_citations_from_the_llm_over_the_tunnel(rehearsal: Rehearsal) -> None:
    proc = brain_cli(rehearsal, "ask 'How does hybrid search combine BM25 and vectors?' --json", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["answer"].strip() and answer["citations"], answer
    log = rehearsal.gpu.sh("journalctl -u ollama --no-pager").stdout
    assert '"POST /v1/chat/completions HTTP/1.1" 200' in log  # the stand-in's access log: the LLM answered


def test_a_second_site_yml_run_changes_nothing(rehearsal: Rehearsal) -> None:
    result = recap(rehearsal.site_yml("site-2"))
    assert {h: r["changed"] for h, r in result.items()} == {"brain-vm": 0, "gpu-vm": 0, "laptop": 0}, result


QUERIES = ("'start phoenix in background' --mode bm25", "'reciprocal rank fusion'", "'how are backups encrypted'")


def _search(rehearsal: Rehearsal, query: str) -> list[dict]:
    return json.loads(brain_cli(rehearsal, f"search {query} --json").stdout)["results"]


def _all_embedded(rehearsal: Rehearsal) -> dict[str, list[dict]] | None:
    """Every query's results, once no hit waits for its vectors (else None: poll again)."""
    out = {q: _search(rehearsal, q) for q in QUERIES}
    return out if all(out.values()) and not any(h["vectors_pending"] for r in out.values() for h in r) else None


def test_the_memory_survives_the_brain_host(rehearsal: Rehearsal) -> None:
    """Point 5: collect, back up (encrypted, to the bucket), destroy the brain host, provision a
    new one with site.yml, restore from the bucket as docs/OPERATIONS.md says, and the laptop's
    searches give the same results as before."""
    before = wait_for(lambda: _all_embedded(rehearsal), "the collected items' vectors", 300, every=3)

    # the nightly backup, run by its own unit as the timer runs it (oneshot: start waits for it)
    rehearsal.brain.sh("systemctl start brain-backup.service", timeout=300)
    log = rehearsal.brain.sh("journalctl -u brain-backup.service --no-pager -o cat").stdout
    assert "sent to s3://brain-rehearsal/brain/" in log, log
    keys = rehearsal.bucket.objects()
    assert len(keys) == 1 and re.fullmatch(r"brain/brain-\d{8}T\d{6}Z\.db\.age", keys[0]), keys
    sealed = rehearsal.bucket.read(keys[0])
    assert sealed.startswith(b"age-encryption.org/v1\n") and b"SQLite format 3" not in sealed  # never in clear

    old_ip = rehearsal.brain.ip
    rehearsal.replace_brain()
    assert rehearsal.brain.ip != old_ip
    assert rehearsal.brain.sh("test -e /var/lib/brain/brain.db", check=False).returncode != 0  # a blank host
    result = recap(rehearsal.site_yml("site-3"))
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in result.values()), result
    assert all(not _search(rehearsal, q) for q in QUERIES)  # the laptop reaches the new, empty brain

    # docs/OPERATIONS.md, "Restore onto a new VM": the identity is copied in as the login user
    admin = rehearsal.brain.user
    rehearsal.site.copy("brain", rehearsal.bucket.identity, "/tmp/brain-backup.key", owner=admin, mode="0600")
    steps = ["sudo chown brain: /tmp/brain-backup.key",
             "sudo systemctl stop brain brain-embed-worker",
             "sudo brain restore --from-bucket latest --identity /tmp/brain-backup.key --yes",
             "sudo shred -u /tmp/brain-backup.key",
             "sudo systemctl start brain brain-embed-worker"]
    for step in steps:
        proc = rehearsal.brain.sh(step, user=admin, check=False, timeout=300)
        assert proc.returncode == 0, f"{step}: {proc.stdout}{proc.stderr}"
    # The indexes beside the database are not in the backup (docs/OPERATIONS.md): the embedding
    # worker rebuilds them after the restore, and until it has, BM25 comes from FTS5, which finds the
    # same chunks but orders near-ties differently from tantivy (a run compared the first answer and
    # saw two results swap). So wait for the rebuild, with a hang's deadline, and compare then.
    def same() -> dict[str, list[dict]] | None:
        got = _all_embedded(rehearsal)
        return got if got == before else None

    try:
        after = wait_for(same, "the restored brain's search to equal the old one", 300, every=2)
    except AssertionError:
        after = _all_embedded(rehearsal)
    assert after == before


def _reaches(host, url: str) -> bool:
    """Whether the service itself answers ``url`` from ``host``. Judged by the answer, not by a
    connection: this machine's egress may pass through an intercepting proxy that answers any
    address off the local networks (it says 404 for the tunnel address, where no route leads)."""
    proc = host.sh(f"curl -s --max-time 5 {shlex.quote(url)}", check=False)
    return proc.returncode == 0 and ('"version"' in proc.stdout or '"status"' in proc.stdout)


def test_the_llm_port_is_closed_to_the_laptop_and_off_the_tunnel(rehearsal: Rehearsal) -> None:
    gpu_ip = rehearsal.gpu.ip
    assert _reaches(rehearsal.brain, "http://10.77.0.2:11434/api/version")  # the tunnel: open
    assert not _reaches(rehearsal.laptop, f"http://{gpu_ip}:11434/api/version")
    assert not _reaches(rehearsal.laptop, "http://10.77.0.2:11434/api/version")
    assert not _reaches(rehearsal.brain, f"http://{gpu_ip}:11434/api/version")  # the brain, not via the tunnel


def test_brain_api_answers_only_through_caddy_and_only_with_a_token(rehearsal: Rehearsal) -> None:
    brain_ip = rehearsal.brain.ip
    assert not _reaches(rehearsal.laptop, f"http://{brain_ip}:8000/healthz")
    ca = "~/.config/brain/brain-ca.crt"
    out = rehearsal.laptop.sh(f"curl -s --cacert {ca} -w ' %{{http_code}}' https://{brain_ip}/api/v1/search?q=x",
                              user="dev").stdout
    body, _, status = out.rpartition(" ")
    assert status == "401" and json.loads(body)["error"]["code"] == "unauthorized"
    status = rehearsal.laptop.sh(f"curl -s -o /dev/null --cacert {ca} -w '%{{http_code}}' "
                                 f"-H 'Authorization: Bearer {TOKEN}' https://{brain_ip}/api/v1/stats", user="dev").stdout
    assert status == "200"


def test_with_the_gpu_host_down_ask_answers_503_with_its_citations(rehearsal: Rehearsal) -> None:
    rehearsal.site.stop("gpu")
    wait_for(lambda: not _reaches(rehearsal.brain, "http://10.77.0.2:11434/api/version"), "the LLM to go away", 60)
    proc = brain_cli(rehearsal, "ask 'How does hybrid search combine BM25 and vectors?' --json", check=False)
    assert proc.returncode != 0
    answer = json.loads(proc.stdout)
    assert answer["citations"], answer
