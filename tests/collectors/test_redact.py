"""Redaction: every kind of secret is replaced, ordinary text is left alone.

The kinds table (``brain/collect/redact_kinds.toml``) is tested entry by entry: each example must lose
the span its pattern marks, each not_example must pass unchanged. The planted-secret corpus run
through the real collectors into a real brain-api is in ``test_leaks.py``.
"""

from __future__ import annotations

import html
import json
from urllib.parse import quote, quote_plus

import pytest

from brain.collect.redact import Redactor, decoded_view, default_redactor, load_kinds, redact

KINDS = load_kinds()
EXAMPLES = [(k, i, ex) for k in KINDS for i, ex in enumerate(k.examples)]
NOT_EXAMPLES = [(k, ex) for k in KINDS for ex in k.not_examples]


def test_every_kind_has_an_example() -> None:
    assert all(k.examples for k in KINDS)


@pytest.mark.parametrize(("kind", "n", "example"), EXAMPLES, ids=[f"{k.name}-{i}-{n}" for i, (k, n, _) in
                                                                  enumerate(EXAMPLES)])
def test_each_kind_redacts_its_examples(kind, n: int, example: str) -> None:
    det = kind.detector
    m = det.pattern.search(example)
    assert m is not None, "the pattern does not match its own example"
    secret = m.group(det.group or 0).strip(" \t\r\n\"'=:,;")
    assert len(secret) >= 4
    result = default_redactor().redact(example)
    assert secret not in result.text, result.text
    assert f"[REDACTED:{kind.name}]" in result.text, result.text


@pytest.mark.parametrize(("kind", "text"), NOT_EXAMPLES, ids=[f"{k.name}-{i}" for i, (k, _) in enumerate(NOT_EXAMPLES)])
def test_each_kind_leaves_its_not_examples_alone(kind, text: str) -> None:
    assert redact(text) == text

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
    ("slack", "hook https://hooks.slack.com/services/T0FAKE000/B0FAKE000/FAKE0123456789abcdefghij", "FAKE0123456789ab"),
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
    ("password", "mysql --password=hunter2x -h db", "hunter2x"),
    ("secret_assignment", "export GITHUB_TOKEN=abc123EXAMPLEdef", "abc123EXAMPLEdef"),
    # from detect-secrets' maintained patterns
    ("twilio", "sid SKabcdefabcdefabcdefabcdefabcdefab ok", "SKabcdefabcdef"),
    ("sendgrid", "SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "SG.abcdefghij"),
    ("npm", "//npm.internal.example/:_authToken=npm_abcdefghijklmnopqrstuvwxyz0123456789", "npm_abcdefghij"),
    # a macaroon whose location is ``index.invalid``: no real package index's host
    ("pypi", "pypi-AgENaW5kZXguaW52YWxpZAIfZmFrZS1tYWNhcm9vbi1pZGVudGlmaWVyLTAxMjM0NTYAAgYgAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
     "aW5kZXguaW52YWxpZA"),
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


# ---------------------------------------------------------------------- decoded before matching

TOKEN = "FAKEabcdef0123456789ABCDEFghij"


def test_a_url_encoded_bearer_token_in_a_search_query_is_redacted_where_it_stands() -> None:
    # the measured leak of issue 12, verbatim but for the (fake) token
    url = f"https://www.google.com/search?q=curl%20-H%20%22Authorization%3A%20Bearer%20{TOKEN}%22&hl=en"
    assert redact(url) == ("https://www.google.com/search?q=curl%20-H%20%22Authorization%3A%20Bearer%20"
                           "[REDACTED:auth_header]%22&hl=en")


URL = "https://paste.example.net/view?q={}&lang=en"


@pytest.mark.parametrize(("encode", "around"), [
    (lambda s: quote(s, safe=""), URL),  # %3D %3A %20
    (lambda s: quote_plus(s), URL),  # form encoding: spaces as +
    (lambda s: quote(quote(s, safe=""), safe=""), URL),  # double: %253D
    (lambda s: html.escape(s).replace("=", "&#61;").replace(":", "&#x3A;"), "<pre>{}</pre>"),
    (lambda s: json.dumps(s, ensure_ascii=True)[1:-1].replace("=", "\\u003d").replace(" ", "\\u0020"),
     '{{"note": "{}", "n": 1}}'),
], ids=["percent", "plus", "double", "html", "json-unicode"])
@pytest.mark.parametrize("snippet", [
    f"aws_secret_access_key = {TOKEN}",
    f"PGPASSWORD={TOKEN} psql -h db",
    f"Authorization: Bearer {TOKEN}",
    f"mysql -u root -p{TOKEN} app",
    f"machine api.internal.example login deploy password {TOKEN}",
], ids=["aws", "pgpassword", "bearer", "mysql", "netrc"])
def test_encoded_secrets_are_found_decoded_and_replaced_in_the_original(encode, around: str, snippet: str) -> None:
    text = around.format(encode(snippet))
    out = redact(text)
    assert TOKEN not in out and "FAKEabcdef" not in out, out
    head, tail = around.split("{}")
    assert out.startswith(head.replace("{{", "{")) and out.endswith(tail.replace("}}", "}")), out
    # only the span that decodes to the secret changed: the encoding around it is kept
    before, _, after = out.partition("[REDACTED:")
    assert text.startswith(before) and text.endswith(after.split("]", 1)[1])


@pytest.mark.parametrize("snippet", [
    "ghp_FAKEa1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6",
    "hf_FAKEa1B2c3D4e5F6g7H8i9J0k1L2m3N4o5",
    "sk_test_FAKEa1B2c3D4e5F6g7H8i9J0",
    "mysql -u root -pFAKEa1B2c3D4e5 -h db.internal.example app",
    "Cookie: sessionid=FAKEa1B2c3D4e5F6g7H8i9J0k1L2m3N4; theme=dark",
], ids=["github", "huggingface", "stripe", "mysql", "cookie"])
def test_a_secret_after_a_newline_escape_is_found(snippet: str) -> None:
    """Issue 12: in a JSON string inside a JSON string (Codex's ``function_call.arguments``,
    Cursor's ``rawArgs``, as the archives keep them) the ``n`` of a ``\\n`` escape runs into the
    token after it, so no detector saw where the token starts."""
    command = json.dumps({"command": ["bash", "-lc", f"cat > /tmp/notes.txt <<'EOF'\n{snippet}\nEOF"]})
    out = redact(command)
    assert "FAKE" not in out, out
    assert out.startswith('{"command": ["bash", "-lc", "cat > /tmp/notes.txt <<\'EOF\'\\n') and \
        out.endswith('\\nEOF"]}'), out


def test_the_decoded_view_maps_every_character_back() -> None:
    text = "a%41b&amp;c\\u0041d%252F\n"
    view, starts, ends = decoded_view(text)
    pieces = view.split("\n")
    assert pieces[:2] == ["aAb&cAd%2F", "aAb&cAd/"]  # level 1, then level 2
    for i, ch in enumerate(view):
        if ch != "\n":
            assert starts[i] < ends[i] <= len(text)
    assert text[starts[1]:ends[1]] == "%41" and text[starts[3]:ends[3]] == "&amp;"


def test_a_raw_ampersand_separates_decoded_parameters() -> None:
    # the decoded value of q must not run into the next parameter
    text = "https://x.example/s?q=export+OPENAI_API_KEY%3Dsk-...&n=1&token=FAKE0123456789abcdef"
    assert redact(text) == "https://x.example/s?q=export+OPENAI_API_KEY%3Dsk-...&n=1&token=[REDACTED:url_param]"


def test_encoded_text_redaction_is_idempotent() -> None:
    text = f"GET /?q={quote(f'Authorization: Bearer {TOKEN}', safe='')}&next={quote(quote('?token=' + TOKEN, safe=''), safe='')}"
    once = redact(text)
    assert TOKEN not in once and redact(once) == once


# ---------------------------------------------------------------------- structural rules

@pytest.mark.parametrize(("text", "secret"), [
    ("[default]\naws_access_key_id = AKIAFAKE0123456789AB\naws_secret_access_key = H9LtFAKEabc0123456789xyzQRSTuvw01234567\n",
     "H9LtFAKE"),  # unquoted and identifier-shaped (no / or +)
    ("[client]\npassword = Tr0ub4dorFAKE3\n", "Tr0ub4dorFAKE3"),
    ('{"body": "{\\"password\\": \\"Tr0ub4dorFAKE3\\"}"}', "Tr0ub4dorFAKE3"),  # JSON inside JSON
    ('{"note": "[db]\\npassword = Tr0ub4dorFAKE3"}', "Tr0ub4dorFAKE3"),  # a \n inside a JSON string
    ("Database: user: app password: hAObF0uhQ1Hb.dvk0 - Chat", "hAObF0uhQ1Hb"),  # a title: no line end
    ("curl -H 'X-API-Key: fa4e0123456789abcdeffa4e01234567' https://api", "fa4e0123456789"),
    ("DB_PASSWORD_2=FAKEpass0123\n", "FAKEpass0123"),
    ("https://paste.example.net/view/TWILIO_AUTH_TOKEN=fa4e0123456789abcdeffa4e01234567", "fa4e0123456789"),
    ("https://paste.example.net/view/postgres://app:Xd27ML4Yw35v#3c3f@db.internal.example/app", "Xd27ML4Yw35v"),
    ("https://hooks.example.net/x?continue=https%3A%2F%2Fapp%2Fcb%3Fcode%3DFAKEcode0123", "FAKEcode0123"),
    ("machine git.internal.example\n  login bot\n  password FAKEpass0123\n", "FAKEpass0123"),
    # INI values without digits (issue 12): under a [section] a word is a password
    ("[client]\nuser = app\npassword = correcthorsebattery\n", "correcthorsebattery"),
    ("[mysqld]\n# the replica's\nport = 3306\n\npassword = MarbleCanyonViolet\n", "MarbleCanyonViolet"),
    ("[pypi]\nusername = deploy\npassword = sunshine\n", "sunshine"),
    ("[service \"api\"]\ntoken = Qwertyuiopasdf\n", "Qwertyuiopasdf"),
    ('{"text": "[db]\\nhost = db.internal\\npassword = riverstonebridge"}', "riverstonebridge"),
    ("<pre>[database]\nhost = db.internal.example\npassword = marblecanyonviolet</pre>", "marblecanyonviolet"),
    ("[database] host = db.internal.example password = MarbleCanyonViolet - Chat", "MarbleCanyonViolet"),  # a title
    # an INI section quoted (Markdown, e-mail), written as an Aider prompt, commented out
    ("> [database]\n> host = db.internal.example\n> password = MarbleCanyonViolet\n", "MarbleCanyonViolet"),
    ("#### [database]  \n#### host = db.internal.example  \n#### password = MarbleCanyonViolet  \n",
     "MarbleCanyonViolet"),
    ("# [service \"api\"]\n# token = marblecanyonviolet\n", "marblecanyonviolet"),
])
def test_structural_rules(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out, out


def test_kubernetes_secret_data_is_redacted_whatever_the_key_and_a_configmap_is_not() -> None:
    secret = ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\ntype: Opaque\ndata:\n"
              "  DATABASE_URL: cG9zdGdyZXM6Ly9hcHA6RkFLRUBkYi9hcHA=\n  tls.key: |\n    RkFLRWtleWxpbmUx\n"
              "    RkFLRWtleWxpbmUy\nstringData:\n  config: 'FAKEconfig-value'\n")
    out = redact(secret)
    assert "cG9zdGdyZXM6" not in out and "RkFLRWtleWxpbmUx" not in out and "FAKEconfig" not in out, out
    assert out.count("[REDACTED:k8s_secret]") == 4 and "name: app" in out
    config = secret.replace("kind: Secret", "kind: ConfigMap")
    assert redact(config) == config
    as_json = json.dumps({"kind": "Secret", "data": {"blob": "RkFLRWtleWxpbmUx"}, "metadata": {"name": "app"}})
    assert "RkFLRWtleWxpbmUx" not in redact(as_json)


@pytest.mark.parametrize("text", [
    "curl https://api.example.com/v1/items?api_key=YOUR_API_KEY",
    "https://notes.example.net/app#password%20=%20%22changeme%22",
    "https://notes.example.net/app#primary_key%20=%20%27id%27%0Asort_key%20=%20lambda",
    "https://paste.example.net/view/DB_PASSWORD=%24%7BDB_PASSWORD%7D",
    "<pre>export OPENAI_API_KEY&#61;sk-...</pre>",
    "integrity sha512-" + "A1b2" * 22 + "==",
    "token = next_token\napi_key = API_KEY_V2\nsecret = self.secret\n",
    # without a [section] above it, `password = hunter` is Python: the value is a variable
    "def login(hunter):\n    password = hunter\n    return check(password)\n",
    "[tool.ruff]\nline-length = 120\n\n[auth]\ntoken = none\npassword = false\n",
    "[flake8]\nmax-line-length = 120\n\ndef login(hunter):\n    password = hunter\n",  # code ends the section
    "# see the [docs]\ndef login(hunter):\n    password = hunter\n",  # a comment that ends in brackets is no header
    "## [Unreleased]\n\n### Added\n- the password = option\n",
    'print("rows:\\nname\\tvalue\\n")\npath = "C:\\\\new\\\\tools"\n',  # escapes before words, nothing secret
])
def test_look_alikes_in_encoded_and_structural_forms_survive(text: str) -> None:
    assert redact(text) == text


def test_a_clipped_private_key_is_redacted_without_eating_the_rest() -> None:
    text = ("tool Bash: cat > k.pem <<'EOF'\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAfakeFAKE0123\n"
            "FAKEfakeFAKE0123fake [... 1200 more chars]\nresult (Bash): written\nuser: thanks")
    assert redact(text) == "tool Bash: cat > k.pem <<'EOF'\n[REDACTED:private_key] [... 1200 more chars]\n" \
                           "result (Bash): written\nuser: thanks"


def test_redaction_of_a_megabyte_stays_fast() -> None:
    """Not a benchmark (numbers are in the report): a guard against a regex that backtracks."""
    import time

    text = ("user: why does https://www.google.com/search?q=a+b%20c fail?\nassistant: see `x = 1`\n" * 12_000)[:1_000_000]
    start = time.perf_counter()
    default_redactor().redact(text)
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("module", ["claude", "agents"])
def test_session_meta_paths_are_redacted_and_derived_values_kept(module: str) -> None:
    """A session's ``meta.files`` are paths from its tool inputs, the user's own text, so they are
    redacted like the content; ids, counts and versions the collector derives are left alone."""
    import importlib

    from brain.collect import prepare

    plain = importlib.import_module(f"brain.collect.{module}").PLAIN_META
    token = "ghp_" + "Fa1ke" * 7 + "x"
    item = {"id": "agent:s1", "source": "agent", "title": "t", "content": "c",
            "meta": {"files": [f"/tmp/out-{token}.json", "/src/app.py"], "session_id": "s1", "tool_calls": 3}}
    clean, _ = prepare(item, default_redactor(), 1_000_000, plain)
    assert token not in json.dumps(clean)
    assert clean["meta"]["files"][1] == "/src/app.py"
    assert (clean["meta"]["session_id"], clean["meta"]["tool_calls"]) == ("s1", 3)
