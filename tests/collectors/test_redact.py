"""Redaction: every kind of secret is replaced, ordinary text is left alone."""

from __future__ import annotations

import pytest

from brain.redact import Redactor, default_redactor, redact

# (kind, text, secret that must disappear). Fake values, shaped like the real ones.
CASES = [
    ("openai", "export OPENAI_KEY=sk-proj-AbCdEf0123456789AbCdEf0123456789_xyz-QRS", "sk-proj-AbCdEf0123456789"),
    ("openai", "key: sk-AbCdEfGhIjKlMnOpQrStT3BlbkFJAbCdEfGhIjKlMnOpQrSt", "T3BlbkFJ"),
    ("anthropic", "ANTHROPIC: sk-ant-api03-AbCdEf0123456789_abcdefghijklmnopqrstuvwxyz-ABCDEFGH", "sk-ant-api03"),
    ("aws", "creds AKIAIOSFODNN7EXAMPLE in the log", "AKIAIOSFODNN7EXAMPLE"),
    ("aws", "aws_key = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'", "wJalrXUtnFEMI"),
    ("github", "push with ghp_abcdefghijklmnopqrstuvwxyz0123456789 now", "ghp_abcdefghij"),
    ("github", "pat github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEF", "github_pat_11ABC"),
    ("gitlab", "token glpat-abcdefghij1234567890 used", "glpat-abcdefghij"),
    ("slack", "xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx", "xoxb-1234"),
    ("slack", "hook https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX", "XXXXXXXXXXXX"),
    ("stripe", "sk_live_abcdefghijklmnop12345678 and", "sk_live_abcdef"),
    ("stripe", "test key rk_test_abcdefghijklmnop1234", "rk_test_abcdef"),
    ("google_api_key", "maps AIzaSyA1234567890abcdefghijklmnopqrstuv end", "AIzaSyA123"),
    ("private_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQUJD\n"
                    "-----END OPENSSH PRIVATE KEY-----\nafter", "b3BlbnNzaC1rZXkt"),
    ("private_key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n(truncated paste)", "MIIEowIBAAKCAQEA"),
    ("jwt", "cookie eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U x",
     "dozjgNryP4J3jVmNHl0w5N"),
    ("auth_header", "Authorization: Bearer abcdef0123456789abcdef0123456789", "abcdef0123456789abcdef"),
    ("auth_header", "curl -H 'Authorization: Basic dXNlcjpwYXNzd29yZA==' https://x", "dXNlcjpwYXNzd29yZA"),
    ("auth_header", "headers={'Authorization': 'token 0123456789abcdef0123'}", "0123456789abcdef0123"),
    ("basic_auth", "curl -u admin:s3cr3tPass https://api.example.com", "s3cr3tPass"),
    ("url_userinfo", "postgres://admin:hunter2EXAMPLE@db.example.com:5432/app", "hunter2EXAMPLE"),
    ("url_param", "https://example.com/cb?code=abc123EXAMPLE&state=xyz", "abc123EXAMPLE"),
    ("url_param", "https://s3.example.com/f?X-Amz-Signature=deadbeef0123&X-Amz-Credential=AK%2F1", "deadbeef0123"),
    ("url_param", "https://example.org/callback#access_token=EXAMPLEtok987&token_type=bearer", "EXAMPLEtok987"),
    ("url_param", "https://app.example.com/join?session_id=9f8e7d6c5b4a&ref=x", "9f8e7d6c5b4a"),
    ("secret_assignment", "DB_PASSWORD=letmeinEXAMPLE\n", "letmeinEXAMPLE"),
    ("secret_assignment", 'password = "s3cret!EXAMPLE"', "s3cret!EXAMPLE"),
    ("secret_assignment", "  client_secret: abcdEFGH1234\n", "abcdEFGH1234"),
    ("secret_assignment", '{"api_key": "live-EXAMPLE-9876"}', "live-EXAMPLE-9876"),
    ("secret_assignment", "mysql --password=hunter2x -h db", "hunter2x"),
    ("secret_assignment", "export GITHUB_TOKEN=abc123EXAMPLEdef", "abc123EXAMPLEdef"),
    # from detect-secrets' maintained patterns
    ("twilio", "sid SKabcdefabcdefabcdefabcdefabcdefab ok", "SKabcdefabcdef"),
    ("sendgrid", "SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "SG.abcdefghij"),
    ("npm", "//registry.npmjs.org/:_authToken=npm_abcdefghijklmnopqrstuvwxyz0123456789", "npm_abcdefghij"),
    ("pypi", "pypi-AgEIcHlwaS5vcmc" + "A" * 70, "pypi-AgEIcHlwaS5vcmcAAAA"),
]


@pytest.mark.parametrize(("kind", "text", "secret"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_kind_is_redacted(kind: str, text: str, secret: str) -> None:
    result = default_redactor().redact(text)
    assert secret not in result.text
    assert f"[REDACTED:{kind}]" in result.text
    assert result.counts[kind] >= 1


ORDINARY = [
    "This is ordinary prose. Basic authentication is fine. The password field must be filled in.",
    "def tokenize(text):\n    tokens = text.split()\n    token_type = tokens[0].type\n    return tokens\n",
    "if password == other:\n    pass\nmax_tokens=1024\ntoken = get_token()\npassword = self.password\n",
    "self.token = nextchar\ncache_token = current_token\nHEADER_TOKEN_RE = re.compile(r'x')\n",
    "class Creds:\n    token: str\n    password: Optional[str] = None\n",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b and uuid 55604662-cf2a-4331-851a-ec234028f8ca",
    "see https://docs.python.org/3/library/sqlite3.html?highlight=wal#sqlite3.connect and https://example.com/",
    "https://www.google.com/search?q=sqlite+wal+mode&hl=en",
    "git clone git@github.com:owner/repo.git && ssh user@host",
    "Emoji 🎉, Arabic عربي, İstanbul, ümlaut: nothing secret here; key points: speed, safety.",
    "password_hash = bcrypt(pw)\nuser_pass = '%s:%s' % (user, pw)\nsecret = os.environ['SECRET']\n",
    "PASSWORD=${DB_PASSWORD}\nTOKEN=<your token here>\napi_key: \"{{ vault_api_key }}\"\n",
    "sk-learn is not a key, nor is ask-me-anything-about-it-please",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_untouched(text: str) -> None:
    result = default_redactor().redact(text)
    assert result.text == text, result.counts
    assert not result.counts


def test_redaction_is_idempotent() -> None:
    text = "\n".join(t for _, t, _ in CASES)
    once = redact(text)
    assert redact(once) == once


def test_positions_stay_aligned_after_non_ascii_text() -> None:
    text = "İİİİ ünïcödé " * 3 + "\nDB_PASSWORD=letmeinEXAMPLE\nrest"
    assert redact(text) == "İİİİ ünïcödé " * 3 + "\nDB_PASSWORD=[REDACTED:secret_assignment]\nrest"


def test_redact_item_covers_title_uri_content_and_meta() -> None:
    item = {"id": "browser:p:1", "source": "browser", "title": "token sk-proj-AbCdEf0123456789AbCdEf0123456789",
            "uri": "https://x.example/?token=EXAMPLE123", "content": "Bearer abcdef0123456789abcdef0123",
            "meta": {"cmd": ["curl -u me:pw12345678 x"], "n": 3}}
    clean, counts = default_redactor().redact_item(item)
    assert clean["id"] == item["id"]
    assert clean["title"] == "token [REDACTED:openai]"
    assert clean["uri"] == "https://x.example/?token=[REDACTED:url_param]"
    assert clean["content"] == "Bearer [REDACTED:auth_header]"
    assert clean["meta"] == {"cmd": ["curl -u me:[REDACTED:basic_auth] x"], "n": 3}
    assert sum(counts.values()) == 4


def test_library_patterns_can_be_switched_off() -> None:
    text = "sid SKabcdefabcdefabcdefabcdefabcdefab ok"
    assert Redactor(use_library=False).redact(text).text == text
    assert "[REDACTED:twilio]" in Redactor().redact(text).text


def test_overlapping_detectors_give_one_placeholder() -> None:
    # an OpenAI key inside a secret assignment inside a URL parameter: one replacement, no leftovers
    text = "https://x.example/?api_key=sk-proj-AbCdEf0123456789AbCdEf0123456789&x=1"
    out = redact(text)
    assert out.count("[REDACTED:") == 1
    assert "AbCdEf" not in out and out.endswith("&x=1")
