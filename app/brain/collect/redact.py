"""Secret redaction: runs on every item before it leaves the machine.

Why here and not on the server: a secret that reached brain-api has already crossed the network
and may sit in logs, backups and embedding requests. So collectors redact content, titles, URIs
and meta strings locally, replacing each secret with ``[REDACTED:<kind>]``.

Detectors, in three groups:

* The provider token regexes maintained by Yelp's ``detect-secrets`` (AWS, GitHub, GitLab,
  Slack, Stripe live keys, Twilio, SendGrid, npm, PyPI, Telegram, ...). Only their regex
  ``denylist`` is used: the library's scanner works line by line, reports secret *values*
  without positions and adds entropy heuristics, which is too slow and too noisy to rewrite
  text with. Which plugins are used, and how their slow regexes are gated, is configured in
  ``redact_kinds.toml``.
* Our own kinds, as data in ``redact_kinds.toml``: one regex per entry with examples that the
  tests redact (Anthropic, current OpenAI, Hugging Face, DigitalOcean, Vault, Shopify, ...,
  whole private-key blocks, full JWTs, ``Authorization`` headers, ``mysql -p``, ``.netrc``).
* Structural rules in this module: ``user:password@`` in URLs, sensitive query/fragment
  parameters, ``NAME=value`` assignments whose name says secret, Kubernetes ``Secret`` data.

Text is also searched *decoded*: a line holding percent escapes (``%20``, double-encoded
``%2520``, ``+`` for a space), HTML entities or JSON ``\\uXXXX`` escapes is decoded (up to three
levels) into a view that remembers where each character came from, the detectors run on that
view too, and a secret found there is replaced in the *original* text: the span that decodes to
it. So ``?q=curl%20-H%20%22Authorization%3A%20Bearer%20<token>`` loses its token.

Redaction is idempotent: the placeholder itself never matches a detector.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import codecs
import html
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, unquote_plus

PLACEHOLDER = "[REDACTED:{kind}]"
_PLACEHOLDER_PREFIX = "[REDACTED"
_PLACEHOLDER_RE = re.compile(r"\[REDACTED:[a-z0-9_]+\]")
KINDS_FILE = Path(__file__).with_name("redact_kinds.toml")

# Characters trimmed from both ends of a library match: some denylist regexes include the
# delimiter around the token (Artifactory: ``(?:\s|=|:|"|^)AKC...(?:\s|"|$)``).
_TRIM = " \t\r\n\"'=:,;"
_TRIM_QUOTES = " \t\r\n\"'"  # an explicit group is the secret: only its quotes go (base64 keeps its ``=``)
# A token's characters: a span is grown over them (``extend``) so no tail of a token stays behind.
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
# Texts that are placeholders in docs and examples, not secrets.
_SHELL_VARIABLE = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")
_PLACEHOLDER_RUNS = ("xxxxx", "XXXXX", "*****", ".....", "\u2022\u2022\u2022", "#####", "_____")
_PLACEHOLDER_FILL = re.compile("x{5,}|X{5,}|\\*{5,}|\\.{5,}|\u2022{3,}|#{5,}|_{5,}")


# ---------------------------------------------------------------------- checks (vetoes on a secret)


def _has_digit(s: str) -> bool:
    return any(c.isdigit() for c in s)


def _digit_and_letter(s: str) -> bool:
    return _has_digit(s) and any(c.isalpha() for c in s)


def _mixed(s: str) -> bool:
    return _has_digit(s) and any(c.islower() for c in s) and any(c.isupper() for c in s)


def _long_or_digit(s: str) -> bool:
    return len(s) >= 20 or _has_digit(s)


def _userpass_base64(s: str) -> bool:
    """``Basic <b64>`` is a credential only if it decodes to printable ``user:password``."""
    try:
        text = base64.b64decode(s + "=" * (-len(s) % 4), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    return ":" in text and text.isprintable()


CHECKS: dict[str, Callable[[str], bool]] = {
    "has_digit": _has_digit, "digit_and_letter": _digit_and_letter, "mixed": _mixed,
    "long_or_digit": _long_or_digit, "userpass_base64": _userpass_base64,
}


def _is_placeholder(secret: str) -> bool:
    """``ghp_xxxx...``, ``YOUR_API_KEY``, ``<token>``, ``${TOKEN}``: documentation, not a secret.
    (A run of x's inside a long random value is chance: it must fill a good part of the text.)"""
    if any(run in secret for run in _PLACEHOLDER_RUNS) and \
            sum(len(m) for m in _PLACEHOLDER_FILL.findall(secret)) >= max(5, 0.3 * len(secret)):
        return True
    low = secret.lower()
    return low.startswith(("your", "<", "${", "{{", "$(", "%(")) or "_here" in low or "-here" in low or \
        secret.endswith(("...", "\u2026")) or _SHELL_VARIABLE.fullmatch(secret) is not None


# ---------------------------------------------------------------------- detectors


@dataclass(frozen=True)
class Detector:
    """One regex. ``group`` picks the secret part of a match (None: see ``_secret_span``).

    Speed matters (a 50k-file scan redacts every file once): a regex that starts with a literal
    is fast because the engine jumps between occurrences of it. Slow regexes get ``needles``
    (literals of which one must occur: lowercase ones are looked up in the lowercased text) or
    a ``gate`` (a fast regex that must match first), and with a ``window`` they run only near
    the needle or gate hits. ``check`` can veto a secret (``Basic xyz`` must decode to
    ``user:pass``); ``extend`` grows the span over the token characters that follow.
    """

    kind: str
    pattern: re.Pattern[str]
    group: int | None = 0
    needles: tuple[str, ...] = ()
    gate: re.Pattern[str] | None = None
    window: tuple[int, int] | None = None
    check: Callable[[str], bool] | None = None
    extend: bool = True


@dataclass(frozen=True)
class Kind:
    """One entry of ``redact_kinds.toml``: its detector and the examples the tests run."""

    detector: Detector
    examples: tuple[str, ...]
    not_examples: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.detector.kind


_META = set(".^$*+?{}[]\\|()")


def literal_prefix(pattern: str) -> str:
    """The literal a regex starts with (``hf_(?<!...)...`` -> ``hf_``; "" if none or ``(?i)``)."""
    i = 0
    flags = re.match(r"\(\?([a-z]+)\)", pattern)
    if flags:
        if "i" in flags.group(1):
            return ""
        i = flags.end()
    out: list[str] = []
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and not pattern[i + 1].isalnum():
            out.append(pattern[i + 1])
            i += 2
            continue
        if c in _META:
            break
        out.append(c)
        i += 1
    if out and i < len(pattern) and pattern[i] in "?*{":  # the last literal is optional
        out.pop()
    return "".join(out)


def _detector(spec: dict[str, Any], pattern: re.Pattern[str] | None = None, kind: str = "",
              group: int | None = 0) -> Detector:
    """A Detector from a table entry (a [[kind]] or a library plugin's settings)."""
    pattern = pattern or re.compile(spec["pattern"])
    needles = tuple(spec.get("needles", ()))
    if not needles and not spec.get("gate"):
        prefix = literal_prefix(pattern.pattern)
        if len(prefix) >= 2:
            needles = (prefix.lower(),) if pattern.flags & re.IGNORECASE else (prefix,)
    window = spec.get("window")
    return Detector(
        kind or spec["name"], pattern, spec.get("group", group), needles,
        re.compile(spec["gate"]) if spec.get("gate") else None, tuple(window) if window else None,
        CHECKS[spec["check"]] if spec.get("check") else None, spec.get("extend", True))


def load_kinds(path: Path = KINDS_FILE) -> list[Kind]:
    """Our own kinds, in table order (an earlier kind wins a tie with a later one)."""
    with open(path, "rb") as fh:
        table = tomllib.load(fh)
    return [Kind(_detector(k), tuple(k.get("examples", ())), tuple(k.get("not_examples", ())))
            for k in table["kind"]]


def _library_detectors(path: Path = KINDS_FILE) -> list[Detector]:
    """Wrap detect-secrets' maintained regexes as Detectors (imported lazily: ~0.2 s)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    with open(path, "rb") as fh:
        library = tomllib.load(fh)["library"]
    settings = {p["class"]: p for p in library["plugins"]}
    skip = set(library["skip"])
    out = []
    mapping: dict[str, type] = get_mapping_from_secret_type_to_class()
    for secret_type, cls in sorted(mapping.items()):
        if not issubclass(cls, RegexBasedDetector) or cls.__name__ in skip:
            continue
        spec = settings.get(cls.__name__, {})
        kind = spec.get("kind") or re.sub(r"[^a-z0-9]+", "_", secret_type.lower()).strip("_")
        # each detector sets ``denylist`` as a class attribute; the base declares it an abstract property
        for pattern in cast("Iterable[re.Pattern[str]]", cls.denylist):
            # Assignment-form regexes (``(?:(?<=\W)|(?<=^))...key = value``) try a match at every
            # position and took 60 % of a scan; ``_assignment_spans`` covers that form.
            if not pattern.pattern.startswith(_ASSIGNMENT_FORM):
                out.append(_detector(spec, pattern, kind, group=None))
    return out


_ASSIGNMENT_FORM = "(?:(?<=\\W)|(?<=^))"


def _secret_span(det: Detector, m: re.Match[str]) -> tuple[int, int]:
    """The span to replace: the chosen group, else the longest group of >= 8 chars, else the match.

    Why the longest group: detect-secrets' regexes use groups both for the secret
    (``aws...key...'(<40 chars>)'``) and for token prefixes (``(ghp|gho)_...``); a group of at
    least 8 characters is the secret, a short one is a prefix.
    """
    if det.group is not None:
        start, end = m.span(det.group)
    else:
        best = (0, 0)
        for i in range(1, (m.re.groups or 0) + 1):
            if m.group(i) and len(m.group(i)) >= 8 and len(m.group(i)) > best[1] - best[0]:
                best = m.span(i)
        start, end = best if best != (0, 0) else m.span()
    text = m.string
    trim = _TRIM if det.group is None else _TRIM_QUOTES
    while start < end and text[start] in trim:
        start += 1
    while end > start and text[end - 1] in trim:
        end -= 1
    return start, end


# ---------------------------------------------------------------------- URLs

_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,30}\Z")
_URL_REST = re.compile(r"[^\s\"'<>`\\]+")
_PARAM = re.compile(r"([?&#;])([^=&#;?]{1,100})=([^&#;?]*)")
_SENSITIVE_PARAMS = {
    "token", "access_token", "refresh_token", "id_token", "auth_token", "api_key", "apikey", "key", "secret",
    "client_secret", "password", "passwd", "pwd", "pass", "code", "sig", "signature", "session", "sessionid",
    "session_id", "sid", "auth", "authorization", "jwt", "otp", "ticket", "credential", "credentials", "hmac",
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-signature", "x-goog-credential",
    "private_token", "assertion", "client_assertion", "passphrase",
}
_SENSITIVE_PARTS = {"token", "secret", "password", "passwd", "pwd", "sig", "signature", "session",
                    "auth", "credential", "credentials", "apikey", "otp", "jwt", "hmac", "passphrase"}


def _param_is_sensitive(name: str) -> bool:
    """``token``, ``access_token``, ``X-Amz-Signature``, ``api_key``: yes. ``token_type``,
    ``primary_key``, ``q``: no (the sensitive word must end the name)."""
    low = unquote(name).strip().lower()
    if low in _SENSITIVE_PARAMS:
        return True
    parts = [p for p in re.split(r"[_\-.\[\]]+", low) if p]
    return bool(parts) and (parts[-1] in _SENSITIVE_PARTS or _name_is_secret(unquote(name).strip()))


def _param_value_is_secret(value: str) -> bool:
    """Any value of a sensitive parameter is a secret, unless decoded it is empty, a placeholder
    (``YOUR_API_KEY``, ``${TOKEN}``) or code (``os.environ[...]``: a URL-encoded snippet)."""
    if not value or value.startswith(_PLACEHOLDER_PREFIX):
        return False
    decoded = unquote_plus(value).strip(" \t\"'")
    return bool(decoded) and not _is_placeholder(decoded) and decoded.lower() not in _NOT_SECRET_VALUES and \
        not decoded.startswith(("$", "{", "<", "%(", "os.", "process.env")) and "\n" not in decoded


def _find_urls(text: str) -> list[tuple[int, int]]:
    """Spans of ``scheme://...`` URLs, found from each ``://`` (a regex starting with a character
    class would try every position of the text)."""
    spans: list[tuple[int, int]] = []
    pos = text.find("://")
    while pos != -1:
        scheme = _URL_SCHEME.search(text, max(0, pos - 31), pos)
        rest = _URL_REST.match(text, pos + 3)
        if scheme and rest:
            start = scheme.start()
            if not spans or start >= spans[-1][1]:
                spans.append((start, rest.end()))
            pos = text.find("://", rest.end())
        else:
            pos = text.find("://", pos + 3)
    return spans


def _nested(text: str, urls: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Each URL and every URL inside it (``https://paste.example/view/postgres://u:p@db``)."""
    for ustart, uend in urls:
        yield ustart, uend
        pos = text.find("://", text.index("://", ustart) + 3, uend)
        while pos != -1:
            scheme = _URL_SCHEME.search(text, max(ustart, pos - 31), pos)
            if scheme:
                yield scheme.start(), uend
            pos = text.find("://", pos + 3, uend)


def _url_spans(text: str, urls: list[tuple[int, int]]) -> Iterator[tuple[int, int, str]]:
    """Passwords in ``scheme://user:password@host`` (and long token-like user names, as in
    ``https://<token>@host``) and values of sensitive query/fragment parameters."""
    for ustart, uend in _nested(text, urls):
        url, base = text[ustart:uend], ustart
        rest = url.index("://") + 3
        auth_end = len(url)
        for ch in "/?#":
            pos = url.find(ch, rest)
            if pos != -1:
                auth_end = min(auth_end, pos)
        # userinfo ends at the last "@" before the path; a password may hold a raw "#" or "?"
        slash = url.find("/", rest)
        slash = len(url) if slash == -1 else slash
        at = url.rfind("@", rest, slash) - rest
        if at > 0:
            userinfo = url[rest:rest + at]
            user_end = min((p for p in (userinfo.find(c) for c in ":?#") if p != -1), default=-1)
            if user_end != -1 and userinfo[user_end] == ":":
                if user_end + 1 < at and not userinfo[user_end + 1:].startswith(_PLACEHOLDER_PREFIX):
                    yield base + rest + user_end + 1, base + rest + at, "url_userinfo"
                auth_end = max(auth_end, rest + at)
            elif at >= 20 and user_end == -1 and _digit_and_letter(userinfo) and \
                    not userinfo.startswith(_PLACEHOLDER_PREFIX):  # a token as the user: https://<token>@host
                yield base + rest, base + rest + at, "url_userinfo"
        if "=" not in url:
            continue
        for p in _PARAM.finditer(url, auth_end):
            if _param_is_sensitive(p.group(2)) and _param_value_is_secret(p.group(3)):
                yield base + p.start(3), base + p.end(3), "url_param"


# ---------------------------------------------------------------------- NAME=value assignments

# We find these words in the lowercased text with str.find (much faster than a case-insensitive
# regex alternation), then parse the identifier around each hit.
_ASSIGN_WORDS = ("secret", "pass", "pwd", "token", "key", "credential", "hmac")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_.\-]*")
_NAME_CHARSET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
# how a secret name can end (a cheap test before splitting the name into parts)
_NAME_END = re.compile(r"(?:secret|passwd|passphrase|pwd|token|apikey|credentials?|pass|password|pw|hmac|key)"
                       r"(?:[_.\-]?v?\d+)?\Z", re.IGNORECASE)
_ASSIGN_TAIL = re.compile(
    r"""(?P<q>\\?["']?)[ \t]*(?P<sep>:=|=>|=(?!=)|:(?!:))[ \t]*"""
    r"""(?P<val>\\"(?:[^"\\\n]|\\[^"\n]){1,300}?\\"|"[^"\n]{1,300}"|'[^'\n]{1,300}'|[^\s"'`,;(){}\[\]\\<>]+|[^\s"'`])""")
_NAME_PARTS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_VERSION_PART = re.compile(r"v?\d+")
_SECRET_WORDS = {"secret", "password", "passwd", "passphrase", "pwd", "token", "apikey", "credential",
                 "credentials", "pass", "pw", "hmac"}
# A name part ending in one of these is secret even without a separator (PGPASSWORD, apitoken).
_SECRET_SUFFIXES = ("password", "passwd", "passphrase", "secret", "token", "apikey", "hmac")
_SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"), ("client", "secret"),
                 ("signing", "key"), ("session", "key"), ("master", "key"), ("encryption", "key"),
                 ("auth", "key"), ("account", "key"), ("hmac", "key"), ("license", "key")}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_NOT_SECRET_VALUES = {"none", "null", "nil", "true", "false", "undefined", "required", "optional", "string", "str",
                      "bool", "int", "your_token", "xxx", "changeme", "redacted", "secret", "password", "token"}


def _name_is_secret(name: str) -> bool:
    """Does an identifier name a secret? ``DB_PASSWORD``, ``clientSecret``, ``api-key``,
    ``self.token``, ``PGPASSWORD``: yes. ``token_type``, ``max_tokens``, ``TOKEN_RE``: no, because
    the secret word must end the name (or the last two parts be a pair such as api+key)."""
    if _NAME_END.search(name) is None:
        return False
    parts = [p.lower() for p in _NAME_PARTS.findall(name)]
    while parts and _VERSION_PART.fullmatch(parts[-1]):  # DB_PASSWORD_2, API_KEY_V2
        parts.pop()
    if not parts:
        return False
    last = parts[-1]
    return last in _SECRET_WORDS or tuple(parts[-2:]) in _SECRET_PAIRS or \
        (len(last) <= 24 and last.endswith(_SECRET_SUFFIXES))


def _looks_like_code(value: str) -> bool:
    """An identifier or dotted path without digits (``token``, ``self.password``, ``Token``)."""
    return bool(_IDENTIFIER.fullmatch(value)) and not any(c.isdigit() for c in value)


_ALNUM_RUN = re.compile(r"[A-Za-z0-9]{8,}")
_DIGIT_LETTER = re.compile(r"[0-9](?=[A-Za-z])|[A-Za-z](?=[0-9])")


def _random_looking(value: str) -> bool:
    """A run of 8+ letters and digits mixing digits with upper- and lowercase (``hAObF0uhQ1Hb``,
    ``Tr0ub4dor3``), switching between digits and letters 3+ times (``l0xrh7tt67hau``), or 20+
    long with digits and letters (hex keys): generated, not a name a programmer picked
    (``apiKey``, ``next_token``, ``API_KEY_V2``, ``sha256sum``)."""
    if value.startswith(("self.", "this.", "cls.", "ctx.", "config.", "settings.")):
        return False
    return any(_mixed(run) or (len(run) >= 20 and _digit_and_letter(run)) or len(_DIGIT_LETTER.findall(run)) >= 3
               for run in _ALNUM_RUN.findall(value))


_CODE_VALUE = re.compile(r"[A-Za-z_][\w.]*[(\[].*[)\]],?")  # get_token(), os.environ['X'], cfg[key]


def _value_is_secret(value: str, quoted: bool, form: str) -> bool:
    """Decide whether an assigned value looks like a literal secret rather than code, a type
    annotation, a format string or a placeholder.

    ``form``: ``env`` (``NAME=value`` filling its line, no spaces: shell, .env, ini),
    ``colon`` (``name: value`` filling the line: YAML, headers), ``line`` (``name = value``
    filling the line: INI, ``~/.aws/credentials``, or a Python statement), ``ini`` (a ``line``
    under an INI ``[section]`` header, where even a word without digits is a password), ``flag``
    (``--password=x``, ``f(token=x)``: ``=`` without spaces mid-line), ``header`` (``'X-Api-Key:
    value'`` inside a quoted string), ``code`` (the rest). A "line" may also be a line of a
    string (after ``\\n``) or a whole quoted string (``"password = x"``).
    """
    if not value or value.startswith((_PLACEHOLDER_PREFIX, "$", "<", "{", "%(", "os.", "process.env")):
        return False
    low = value.lower()
    if low in _NOT_SECRET_VALUES or set(value) <= {"*", "x", "X", ".", "-"} or _is_placeholder(value):
        return False
    if quoted:  # a format string (``"%s:%s"``, ``"Bearer {}"``) is not a secret; a random value may hold "%d"
        return len(value) >= 6 and value.count(" ") < 2 and \
            (not any(f in value for f in ("%s", "%d", "{}", "{0")) or _random_looking(value))
    if _CODE_VALUE.fullmatch(value) or value.startswith("["):
        return False
    if value.isdigit():
        return False
    if form == "env":
        return len(value) >= 4
    if form == "colon":
        return len(value) >= 4 and not (_looks_like_code(value) and (value[0].isupper() or "." in value))
    if form == "flag":
        return len(value) >= 4 and not _looks_like_code(value)
    if form == "header":
        return len(value) >= 16 or (len(value) >= 8 and _digit_and_letter(value))
    if form == "ini":  # ``password = sunshine`` under ``[database]``: a word is a password there
        return len(value) >= 4
    if _random_looking(value):
        return True
    if form == "line":
        if not _IDENTIFIER.fullmatch(value):
            return len(value) >= 6
        # an identifier-shaped value: a Python name (``token = next_token``, ``key = API_KEY_V2``)
        # or an INI/credentials secret (``aws_secret_access_key = H9Lt...``, ``password = hunter22``)
        return len(value) >= 6 and _digit_and_letter(value) and "." not in value and \
            not ("_" in value and (value.islower() or value.isupper()))
    return len(value) >= 8 and _digit_and_letter(value) and not _IDENTIFIER.fullmatch(value)


# An INI section header ending its line: ``[database]``, ``[profile dev]``, ``[service "x"]``,
# also right after an opening quote, ``=``, a tag or a URL's ``/``, ``#``, ``?`` (a file pasted into a
# string, a query, a path, ``<pre>``).
_INI_HEADER = re.compile(r"""(?:^|[\s"'>=(`/#?&])\[[A-Za-z0-9_][^\[\]\n]{0,63}\]\s*\Z""")
_INI_KEY_LINE = re.compile(r"[\w.\- ]{1,64}[ \t]*(?:=|:)")
INI_LOOKBACK_LINES = 40


# Marks that quote a line: ``> `` (Markdown, e-mail, nested ``> > ``), and what an INI line
# looks like quoted or commented out: ``#### `` (an Aider prompt, a Markdown heading), ``# ``.
_QUOTE_MARKS = re.compile(r"\A[ \t]*(?:>[ \t]*)+")
_LINE_MARKS_ONLY = re.compile(r"[ \t]*(?:(?:>[ \t]*)+|#{1,6}[ \t]+)?\Z")


def _in_ini_section(text: str, start: int) -> bool:
    """Does the line at ``start`` belong to an INI section: a ``[section]`` header above it with
    only ``key = value`` lines, comments and blank lines between? (A ``\\n`` escape ends a line
    too.) Python has no such headers, so there ``password = hunter`` is a variable, not a secret.
    The lines may be quoted (``> [database]``), or commented out, or written as an Aider prompt
    (``#### [database]``): a header in a comment counts when the comment is nothing else."""
    lines = text[max(0, start - 4096):start].replace("\\n", "\n").split("\n")[:-1]
    for line in reversed(lines[-INI_LOOKBACK_LINES:]):
        bare = _QUOTE_MARKS.sub("", line, count=1).strip()
        commented = bare.startswith(("#", ";"))
        inner = bare.lstrip("#;").strip() if commented else bare
        if not inner:
            continue
        if (not commented or inner.startswith("[")) and _INI_HEADER.search(inner):
            return True
        if commented:
            continue
        if not _INI_KEY_LINE.match(inner):
            return False
    return False


# An INI snippet whose line breaks became spaces (a page title): ``[db] host = x password = ...``
_FLAT_INI_PREFIX = re.compile(r"""(?:^|.*[\s"'>=(`/#?&])\[[A-Za-z0-9_][^\[\]\n]{0,63}\][ \t]+"""
                              r"""(?:[\w.\-]{1,64}[ \t]*[=:][ \t]*\S+[ \t]+)*\Z""")


def _starts_ini_line(text: str, start: int, vend: int) -> bool:
    """Does the assignment at ``start`` open its line inside an INI section (or follow a section
    header and its entries flattened onto one line)? There the value is the rest of the line,
    whatever follows it (a page title's `` - Site``, a closing ``"}``)."""
    line_start, _ = _line_of(text, start, vend)
    prefix = text[line_start:start]
    if _LINE_MARKS_ONLY.match(prefix):  # nothing before the name but the marks of a quoted line
        return _in_ini_section(text, line_start)
    return _FLAT_INI_PREFIX.match(prefix) is not None


def _ascii_lower(text: str) -> str:
    """Lowercase ASCII letters, every other character becomes ``?``: same length as ``text``
    (``str.lower`` can change the length, e.g. for ``İ``), so positions line up."""
    return text.encode("ascii", "replace").lower().decode("ascii")


def _keyword_hits(low: str) -> list[int]:
    """Sorted positions of the secret words in the lowercased text."""
    hits: list[int] = []
    for word in _ASSIGN_WORDS:
        pos = low.find(word)
        while pos != -1:
            hits.append(pos)
            pos = low.find(word, pos + len(word))
    hits.sort()
    return hits


def _line_of(text: str, start: int, end: int) -> tuple[int, int]:
    """The line around ``text[start:end]``; a ``\\n`` escape (a newline inside a JSON string)
    ends a line too."""
    line_start = text.rfind("\n", 0, start) + 1
    escaped = text.rfind("\\n", line_start, start)
    if escaped != -1:
        line_start = max(line_start, escaped + 2)
    line_end = text.find("\n", end)
    line_end = len(text) if line_end == -1 else line_end
    escaped = text.find("\\n", end, line_end)
    return line_start, line_end if escaped == -1 else escaped


_CLOSING_TAGS = re.compile(r"(?:</[A-Za-z][A-Za-z0-9]*>)+")  # ``password = x</pre>``: the line ends there


def _assignment_form(text: str, start: int, vend: int, tail: re.Match[str], in_string: bool) -> str:
    """Classify an assignment for ``_value_is_secret`` by its separator and its line.
    ``in_string``: the name opens a quoted string (``"password = x"``), which is its line."""
    line_start, line_end = _line_of(text, start, vend)
    prefix = "" if in_string else text[line_start:start].strip()
    # after the value: its closing quote, and inside a string (also a line that starts after a
    # ``\n`` escape) whatever closes around that string
    closes = in_string or text[max(0, line_start - 2):line_start] == "\\n"
    after = text[vend:line_end].strip(" \t\r\"'\\,;)]}" if closes else " \t\r\"'")
    whole_line = prefix in ("", "export", "-", "set") and \
        (after == "" or after.startswith(("#", ";")) or _CLOSING_TAGS.fullmatch(after) is not None)
    sep = tail.group("sep")
    spaced = tail.group(0)[:tail.start("sep") - tail.start()].strip("\"'\\") != "" or \
        text[tail.end("sep"):tail.start("val")] != ""
    if sep == "=" and not spaced:
        return "env" if whole_line else "flag"
    if sep == ":" and whole_line:
        return "header" if in_string else "colon"
    return "line" if whole_line else "code"


def _query_ranges(text: str, urls: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The query-and-fragment part of each URL."""
    out = []
    for ustart, uend in urls:
        rest = text.index("://", ustart) + 3
        cut = [p for p in (text.find("?", rest, uend), text.find("#", rest, uend)) if p != -1]
        if cut:
            out.append((min(cut), uend))
    return out


def _inside(pos: int, ranges: list[tuple[int, int]]) -> bool:
    """Is ``pos`` inside one of the sorted, disjoint ``ranges``?"""
    i = bisect.bisect_right(ranges, (pos, float("inf"))) - 1
    return i >= 0 and ranges[i][0] <= pos < ranges[i][1]


_NON_SPACE = re.compile(r"\S+")
_STRING_PREFIX = re.compile(r"[rRbBfFuU]{1,2}[\"']")


def _whole_value(text: str, name_start: int, vstart: int, vend: int) -> int:
    """Where an unquoted value ends: an assignment that starts its line (``.env``, INI,
    ``~/.aws/credentials``, YAML) owns the rest of the line, brackets and all (a generated
    password may hold ``(`` or ``;``), if nothing but a comment follows it."""
    line_start, line_end = _line_of(text, name_start, vstart)
    if text[line_start:name_start].strip() not in ("", "export", "-", "set"):
        return vend
    run = _NON_SPACE.match(text, vstart, line_end)
    if run is None or run.end() <= vend or run.group().endswith(",") or _STRING_PREFIX.match(run.group()):
        return vend  # a keyword argument (``password=password,``), a Python string (``r'...'``)
    after = text[run.end():line_end].strip()
    return run.end() if after == "" or after.startswith(("#", ";")) else vend


def _assignment_spans(text: str, low: str, queries: list[tuple[int, int]]) -> Iterator[tuple[int, int, str]]:
    """``NAME=value`` / ``"name": "value"`` / ``name: value`` where NAME says secret.

    ``queries``: the query parts of URLs, where a value ends at ``&`` or ``#`` (the next parameter).
    """
    done_until = -1
    for hit in _keyword_hits(low):
        if hit < done_until:
            continue
        before = text[max(0, hit - 128):hit]
        start = hit - (len(before) - len(before.rstrip(_NAME_CHARSET)))
        if start > 0 and text[start - 1] == "\\" and text[start] in "nrt":  # after a \n escape
            start += 1
        name_match = _NAME_CHARS.match(text, hit)
        assert name_match is not None  # a ``*`` pattern matches at any position
        end = name_match.end()
        done_until = end
        name = text[start:end].strip(".-")
        if not name or not _name_is_secret(name):
            continue
        opening = ""
        if start > 0 and text[start - 1] in "\"'":
            opening = "\\" + text[start - 1] if start > 1 and text[start - 2] == "\\" else text[start - 1]
        tail = _ASSIGN_TAIL.match(text, end)
        if tail is None or (tail.group("q") and tail.group("q") != opening):
            continue
        # a quote opened before the name and not closed after it: the name starts a quoted
        # string (``"password = x"``, ``-H 'X-API-Key: value'``)
        in_string = bool(opening) and not tail.group("q")
        raw = tail.group("val")
        vstart, vend = tail.span("val")
        quoted = len(raw) >= 2 and raw[0] in "\"'" and raw[-1] == raw[0]
        if raw.startswith('\\"') and len(raw) >= 4:
            quoted, vstart, vend = True, vstart + 2, vend - 2
        elif quoted:
            vstart, vend = vstart + 1, vend - 1
        elif queries and _inside(vstart, queries):
            cut = [p for p in (text.find("&", vstart, vend), text.find("#", vstart, vend)) if p != -1]
            vend = min(cut) if cut else vend
        else:
            vend = _whole_value(text, start - len(opening), vstart, vend)
        value = judged = text[vstart:vend]
        if not quoted and ("%" in value or "&" in value or "\\" in value) and _has_escapes(value, False):
            # an encoded snippet (``DB_PASSWORD=%24%7BDB_PASSWORD%7D`` in a URL): judge it decoded
            level = _decode_once(value, False)
            judged = level[0].strip(" \t\r\n") if level else value
            if len(judged) >= 2 and judged[0] in "\"'" and judged[-1] == judged[0]:
                judged, quoted = judged[1:-1], True
        form = _assignment_form(text, start - len(opening), tail.end("val"), tail, in_string)
        if form in ("line", "code") and not quoted and not opening and _starts_ini_line(text, start, vend):
            form = "ini"
        if _value_is_secret(judged, quoted, form):
            done_until = vend
            yield vstart, vend, "secret_assignment"


# ---------------------------------------------------------------------- Kubernetes Secret manifests

_K8S_KIND = re.compile(r"""^[ \t]*["']?kind["']?[ \t]*:[ \t]*["']?Secret["']?[ \t]*,?[ \t]*$""", re.M)
_K8S_DATA = re.compile(r"^([ \t]*)(?:data|stringData):[ \t]*$", re.M)
_YAML_ENTRY = re.compile(r"([ \t]+)[^\s:#][^:\n]*:(?:[ \t]+([^\n]*)|[ \t]*$)")
_K8S_JSON_KIND = re.compile(r'"kind"\s*:\s*"Secret"')
_JSON_DATA = re.compile(r'"(?:data|stringData)"\s*:\s*\{([^{}]*)\}')
_JSON_VALUE = re.compile(r'"(?:[^"\\\n]|\\.)*"\s*:\s*"((?:[^"\\\n]|\\.)*)"')


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _k8s_secret_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """Every value under ``data:``/``stringData:`` of a manifest of ``kind: Secret`` (YAML, or
    the JSON of ``kubectl get secret -o json``): base64 or not, those values are the secret,
    whatever their key is called."""
    if "Secret" not in text:
        return
    yaml_secret = _K8S_KIND.search(text) is not None
    for m in _K8S_DATA.finditer(text) if yaml_secret else ():
        header = len(m.group(1))
        pos = m.end() + 1
        block = -1  # indentation of a ``key: |`` entry whose lines are being redacted
        while pos < len(text):
            eol = text.find("\n", pos)
            eol = len(text) if eol == -1 else eol
            line = text[pos:eol]
            ind = _indent(line)
            if line.strip() and ind <= header:
                break
            if not line.strip():
                pass
            elif block >= 0 and ind > block:
                yield pos + ind, eol, "k8s_secret"
            else:
                block = -1
                e = _YAML_ENTRY.match(line)
                value = (e.group(2) or "").strip() if e else ""
                if value[:1] in ("|", ">"):
                    block = ind
                elif e and value and not value.startswith(("{{", _PLACEHOLDER_PREFIX)):
                    vstart = pos + e.start(2)
                    vend = vstart + len(e.group(2).rstrip())
                    if text[vstart] in "\"'" and text[vend - 1] == text[vstart] and vend - vstart >= 2:
                        vstart, vend = vstart + 1, vend - 1
                    yield vstart, vend, "k8s_secret"
            pos = eol + 1
    for m in _JSON_DATA.finditer(text) if _K8S_JSON_KIND.search(text) else ():
        for v in _JSON_VALUE.finditer(m.group(1)):
            if v.group(1):
                yield m.start(1) + v.start(1), m.start(1) + v.end(1), "k8s_secret"


# ---------------------------------------------------------------------- the decoded view

# A line with one of these is decoded (percent escapes, HTML entities, JSON escapes). A ``\n``,
# ``\t`` or ``\r`` escape only when a letter or digit follows it: there its own letter runs into
# the token after it (``<<'EOF'\nghp_...``, a command in a JSON string such as Codex's
# ``function_call.arguments``), and no detector sees where the token starts; elsewhere (``"a\n"``,
# ``"\n[db]"``) the text reads the same undecoded, and a code file's lines need not be decoded.
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_FORM_PLUS = re.compile(r"=[^\s&#\"'=<>+]*\+[^\s\"'<>]")  # ``q=docker+login+-p+...``: a form-encoded value
_TRIGGERS = (_PERCENT, _FORM_PLUS, re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"),
             re.compile(r"\\u[0-9A-Fa-f]{4}"), re.compile(r"\\/"), re.compile(r"\\[nrt](?=[A-Za-z0-9])"))
_ESCAPE_KINDS = (
    r"(?P<pct>(?:%[0-9A-Fa-f]{2})+)"
    r"|(?P<ent>&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});)"
    r"|(?P<uasc>(?:\\u00[0-7][0-9A-Fa-f])+)"
    r"|(?P<uni>\\u[0-9A-Fa-f]{4}(?:\\u[dD][c-fC-F][0-9A-Fa-f]{2})?)"
    r"|(?P<esc>\\[\"/\\bfnrt])")
_ESCAPES = re.compile(_ESCAPE_KINDS)
_ESCAPES_PLUS = re.compile(_ESCAPE_KINDS + r"|(?P<plus>\++)")  # form encoding: "+" is a space
_JSON_ESCAPES = {'"': '"', "/": "/", "\\": "\\", "b": " ", "f": " ", "n": "\n", "r": "\r", "t": "\t"}
MAX_DECODE_LEVELS = 3

Pieces = list[tuple[str, int, int]]  # (decoded text, start, end) relative to the escape


def _decode_percent(escape: str) -> Pieces:
    """``%41%C3%A9`` -> ``Aé``; each character keeps the escapes it came from."""
    data = bytes.fromhex(escape.replace("%", ""))
    if data.isascii():
        return [(chr(b), 3 * i, 3 * i + 3) for i, b in enumerate(data)]
    out: Pieces = []
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    first = 0
    for i in range(len(data)):
        chars = decoder.decode(data[i:i + 1])
        if chars:
            out.append((chars, 3 * first, 3 * i + 3))
            first = i + 1
    rest = decoder.decode(b"", final=True)
    if rest:
        out.append((rest, 3 * first, len(escape)))
    return out


def _decode_escape(kind: str, escape: str) -> Pieces | None:
    if kind == "pct":
        return _decode_percent(escape)
    if kind == "ent":
        value = html.unescape(escape)
        return None if value == escape else [(value, 0, len(escape))]
    if kind == "uni":
        cp = int(escape[2:6], 16)
        if len(escape) == 12:
            cp = 0x10000 + ((cp - 0xD800) << 10) + (int(escape[8:12], 16) - 0xDC00)
        return [("\ufffd" if 0xD800 <= cp <= 0xDFFF else chr(cp), 0, len(escape))]
    if kind == "esc":
        return [(_JSON_ESCAPES[escape[1]], 0, 2)]
    return [(" ", i, i + 1) for i in range(len(escape))]  # "+": a space in form-encoded text


def _decode_once(s: str, plus: bool) -> tuple[str, list[int], list[int]] | None:
    """One level of decoding, with where each decoded character came from: ``s[starts[i]:ends[i]]``
    decodes to character ``i``. None when nothing decodes. ``plus``: ``+`` is a space (form
    encoding), else a plus (base64, a URL path)."""
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for m in (_ESCAPES_PLUS if plus else _ESCAPES).finditer(s):
        kind = m.lastgroup or ""
        escape = m.group()
        a, b = m.span()
        if kind == "pct" and escape.isascii():
            data = bytes.fromhex(escape.replace("%", ""))
            if data.isascii():  # the common case, without a tuple per character
                if a > pos:
                    out.append(s[pos:a])
                    starts.extend(range(pos, a))
                    ends.extend(range(pos + 1, a + 1))
                out.append(data.decode("ascii"))
                starts.extend(range(a, b, 3))
                ends.extend(range(a + 3, b + 1, 3))
                pos = b
                continue
        if kind == "uasc":  # a run of \u00XX (ASCII) escapes, as one piece per character
            if a > pos:
                out.append(s[pos:a])
                starts.extend(range(pos, a))
                ends.extend(range(pos + 1, a + 1))
            out.append("".join(chr(int(escape[i + 2:i + 6], 16)) for i in range(0, len(escape), 6)))
            starts.extend(range(a, b, 6))
            ends.extend(range(a + 6, b + 1, 6))
            pos = b
            continue
        pieces = _decode_escape(kind, escape)
        if pieces is None:
            continue
        if a > pos:
            out.append(s[pos:a])
            starts.extend(range(pos, a))
            ends.extend(range(pos + 1, a + 1))
        for chars, ra, rb in pieces:
            out.append(chars)
            if len(chars) == 1:
                starts.append(a + ra)
                ends.append(a + rb)
            else:
                starts.extend([a + ra] * len(chars))
                ends.extend([a + rb] * len(chars))
        pos = b
    if not out:
        return None
    if pos < len(s):
        out.append(s[pos:])
        starts.extend(range(pos, len(s)))
        ends.extend(range(pos + 1, len(s) + 1))
    return "".join(out), starts, ends


def _has_escapes(text: str, plus: bool = True) -> bool:
    """Does ``text`` hold escapes (``plus``: or ``a+b`` in a form-encoded value)?"""
    return any(t.search(text) is not None for t in _TRIGGERS if plus or t is not _FORM_PLUS)


def _plus_is_space(s: str) -> bool:
    """Could ``+`` be a space here: percent escapes or ``name=a+b`` (form encoding) nearby."""
    return "+" in s and (_PERCENT.search(s) is not None or _FORM_PLUS.search(s) is not None)


# an "&" between URL parameters (``&name=``), not one that starts an entity or sits in a value
_PARAM_SEPARATOR = re.compile(r"&(?!#?[A-Za-z0-9]{1,32};)(?=[^=&\s]{1,100}=)")


def _decode_into(text: str, starts: list[int] | int, ends: list[int] | None, depth: int,
                 out: tuple[list[str], list[int], list[int]]) -> None:
    """Decode ``text`` (whose character ``i`` came from ``starts[i]:ends[i]`` of the original;
    ``starts`` an int: from ``starts + i``, a line of the original itself) into ``out``, level
    after level. Each ``&``-separated part is decoded apart: a raw ``&`` separates URL
    parameters, and one parameter's decoded value must not run into the next."""
    parts, all_starts, all_ends = out
    pos = 0
    for sep in [*(m.start() for m in _PARAM_SEPARATOR.finditer(text)), len(text)]:
        chunk = text[pos:sep]
        # where "+" may be a space, decode both ways: a form-encoded query, or a URL path with a
        # base64 value in it (there "+" is a plus)
        for plus in (True, False) if _plus_is_space(chunk) else (False,):
            level = _decode_once(chunk, plus) if chunk else None
            if level is None:
                continue
            decoded, st, en = level
            if isinstance(starts, int):
                cur_s, cur_e = list(map((starts + pos).__add__, st)), list(map((starts + pos).__add__, en))
            else:
                assert ends is not None
                cur_s = [starts[pos + x] for x in st]
                cur_e = [ends[pos + x - 1] for x in en]
            parts.extend((decoded, "\n"))
            all_starts.extend(cur_s)
            all_starts.append(cur_e[-1])
            all_ends.extend(cur_e)
            all_ends.append(cur_e[-1])
            if depth + 1 < MAX_DECODE_LEVELS and _has_escapes(decoded):
                _decode_into(decoded, cur_s, cur_e, depth + 1, out)
        pos = sep + 1


def decoded_view(text: str) -> tuple[str, list[int], list[int]] | None:
    """Every line of ``text`` holding escapes, decoded once, twice ... (up to three levels), the
    pieces joined by newlines; ``text[starts[i]:ends[i]]`` is what character ``i`` of the view
    came from. None when the text has nothing to decode."""
    if "%" not in text and "&" not in text and "\\" not in text and "+" not in text:
        return None
    hits = sorted(m.start() for t in _TRIGGERS for m in t.finditer(text))
    if not hits:
        return None
    out: tuple[list[str], list[int], list[int]] = ([], [], [])
    line_end = -1
    for hit in hits:
        if hit < line_end:
            continue
        line_start = text.rfind("\n", 0, hit) + 1
        line_end = text.find("\n", hit)
        line_end = len(text) if line_end == -1 else line_end
        _decode_into(text[line_start:line_end], line_start, None, 0, out)
    if not out[0]:
        return None
    return "".join(out[0]), out[1], out[2]


# ---------------------------------------------------------------------- the redactor


@dataclass
class Redaction:
    """The redacted text and how many secrets of each kind were replaced."""

    text: str
    counts: Counter[str] = field(default_factory=Counter)


Found = tuple[int, int, int, str]  # (start, end, priority: lower wins a tie, kind)


def _windows(positions: list[int], before: int, after: int, size: int) -> list[tuple[int, int]]:
    """Merged ``[pos - before, pos + after)`` ranges around sorted positions."""
    out: list[tuple[int, int]] = []
    for pos in positions:
        a, b = max(0, pos - before), min(size, pos + after)
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


BIGRAM_FILTER_CHARS = 32_768


def _numpy() -> Any:
    """numpy if installed (a dependency today; the filter below is only a speed-up without it)."""
    try:
        import numpy
    except ImportError:
        return None
    return numpy


def _pair_codes(needle: str) -> Any:
    """The character pairs of a needle (lowercased, as in ``_ascii_lower``), as array indexes."""
    np = _numpy()
    low = _ascii_lower(needle)
    return np.array([(ord(a) << 8) | ord(b) for a, b in zip(low, low[1:])], dtype=np.intp)


def _pairs_present(low: str) -> Any:
    """A 65536-entry table: does this pair of ASCII characters occur in ``low``? (numpy: one pass
    in C instead of one per needle.) None without numpy."""
    np = _numpy()
    if np is None:
        return None
    data = np.frombuffer(low.encode("ascii"), dtype=np.uint8).astype(np.intp)
    present = np.zeros(65536, dtype=bool)
    present[(data[:-1] << 8) | data[1:]] = True
    return present


def _find_all(haystack: str, needle: str) -> list[int]:
    out = []
    pos = haystack.find(needle)
    while pos != -1:
        out.append(pos)
        pos = haystack.find(needle, pos + 1)
    return out


class Redactor:
    """Compiled detectors; ``redact(text)`` returns the text with every secret replaced."""

    def __init__(self, use_library: bool = True, kinds_file: Path = KINDS_FILE):
        self.kinds = load_kinds(kinds_file)
        self.detectors: list[Detector] = [k.detector for k in self.kinds]
        if use_library:
            self.detectors.extend(_library_detectors(kinds_file))
        # needle -> detectors it enables: each distinct needle is looked up once per text
        self._always = [i for i, d in enumerate(self.detectors) if not d.needles]
        self._by_needle: dict[str, list[int]] = {}
        for i, d in enumerate(self.detectors):
            for n in d.needles:
                self._by_needle.setdefault(n, []).append(i)
        self._needle_pairs: dict[str, Any] | None = None  # built when a long text first needs it

    def _active(self, text: str, low: str) -> list[int]:
        """Indexes of the detectors whose needles occur in the text (and of those without any).

        On a long text, ~90 ``needle in text`` scans would cost more than the regexes they save;
        there one pass marks which character pairs occur, and only needles whose pairs all occur
        are looked up."""
        active = set(self._always)
        pairs = _pairs_present(low) if len(low) >= BIGRAM_FILTER_CHARS else None
        if pairs is not None and self._needle_pairs is None:
            self._needle_pairs = {n: _pair_codes(n) for n in self._by_needle}
        needle_pairs = self._needle_pairs  # set whenever ``pairs`` is
        for needle, idxs in self._by_needle.items():
            if pairs is not None and needle_pairs is not None and not pairs[needle_pairs[needle]].all():
                continue
            if needle in (low if needle.islower() else text):
                active.update(idxs)
        return sorted(active)

    def _matches(self, det: Detector, text: str, low: str) -> Iterator[re.Match[str]]:
        """The detector's matches (one of its needles occurs), running its regex only where its
        gate or window allow."""
        hits: list[int] = []
        if det.needles and det.window is not None:
            for n in det.needles:
                hits.extend(_find_all(low if n.islower() else text, n))
        if det.gate is not None:
            if det.window is None:
                if det.gate.search(text) is None:
                    return
            else:
                hits.extend(m.start() for m in det.gate.finditer(text))
                if not hits:
                    return
        if det.window is None:
            yield from det.pattern.finditer(text)
            return
        seen: set[tuple[int, int]] = set()
        for a, b in _windows(sorted(hits), det.window[0], det.window[1], len(text)):
            for m in det.pattern.finditer(text, a, b):
                if m.span() not in seen:
                    seen.add(m.span())
                    yield m

    def _scan(self, text: str, in_view: bool) -> list[Found]:
        """Secret spans in one text (the original, or a decoded view), overlaps not merged."""
        found: list[Found] = []
        low = _ascii_lower(text)
        size = len(text)
        for prio in self._active(text, low):
            det = self.detectors[prio]
            for m in self._matches(det, text, low):
                start, end = _secret_span(det, m)
                if det.extend:
                    while end < size and text[end] in _TOKEN_CHARS:
                        end += 1
                if end <= start:
                    continue
                secret = text[start:end]
                if secret.startswith(_PLACEHOLDER_PREFIX) or _is_placeholder(secret) or \
                        (det.check is not None and not det.check(secret)):
                    continue
                found.append((start, end, prio, det.kind))
        extra = len(self.detectors)
        urls = _find_urls(text)
        found.extend((s, e, extra, k) for s, e, k in _url_spans(text, urls))
        found.extend((s, e, extra + 1, k) for s, e, k in _assignment_spans(text, low, _query_ranges(text, urls)))
        found.extend((s, e, extra + 2, k) for s, e, k in _k8s_secret_spans(text))
        return found

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """All secret spans in ``text`` (found as written or decoded), overlaps merged (an
        earlier-listed detector wins a tie)."""
        if len(text) < 8:  # shorter than any secret with its context (``pwd=abcd``)
            return []
        found = self._scan(text, in_view=False)
        view = decoded_view(text)
        if view is not None:
            vtext, starts, ends = view
            found.extend((starts[s], ends[e - 1], p, k) for s, e, p, k in self._scan(vtext, in_view=True))
        if _PLACEHOLDER_PREFIX in text:  # never cut into (or grow over) an earlier placeholder
            done = [m.span() for m in _PLACEHOLDER_RE.finditer(text)]
            found = [f for f in found if not any(f[0] < e and s < f[1] for s, e in done)]
        found.sort(key=lambda t: (t[0], -t[1], t[2]))
        merged: list[tuple[int, int, str]] = []
        for start, end, _prio, kind in found:
            if merged and start < merged[-1][1]:
                if end > merged[-1][1]:
                    merged[-1] = (merged[-1][0], end, merged[-1][2])
                continue
            merged.append((start, end, kind))
        return merged

    def redact(self, text: str) -> Redaction:
        if not text:
            return Redaction(text)
        spans = self.spans(text)
        if not spans:
            return Redaction(text)
        out: list[str] = []
        pos = 0
        counts: Counter[str] = Counter()
        for start, end, kind in spans:
            out.append(text[pos:start])
            out.append(PLACEHOLDER.format(kind=kind))
            counts[kind] += 1
            pos = end
        out.append(text[pos:])
        return Redaction("".join(out), counts)

    def redact_value(self, value: Any, counts: Counter[str]) -> Any:
        """Redact every string inside a JSON-like value (dicts, lists), adding to ``counts``."""
        if isinstance(value, str):
            r = self.redact(value)
            counts.update(r.counts)
            return r.text
        if isinstance(value, dict):
            return {k: self.redact_value(v, counts) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact_value(v, counts) for v in value]
        return value

    def redact_item(self, item: dict[str, Any], plain_meta: Iterable[str] = ()) -> tuple[dict[str, Any], Counter[str]]:
        """Redact title, uri, project, content and meta of an API item.

        ``id`` is left alone (collectors build ids from hashes or paths, never from secrets), and
        so are the meta keys in ``plain_meta``: values a collector derives itself (sizes, times,
        the same path as the id), which would only cost time on a 50k-file scan.
        """
        counts: Counter[str] = Counter()
        out = dict(item)
        for key in ("title", "uri", "project", "content"):
            if out.get(key) is not None:
                out[key] = self.redact_value(out[key], counts)
        if isinstance(out.get("meta"), dict):
            plain = set(plain_meta)
            out["meta"] = {k: v if k in plain else self.redact_value(v, counts) for k, v in out["meta"].items()}
        return out, counts


_DEFAULT: Redactor | None = None


def default_redactor() -> Redactor:
    """A process-wide Redactor (compiling the detectors once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Redactor()
    return _DEFAULT


def redact(text: str) -> str:
    """Shorthand: the text with every secret replaced."""
    return default_redactor().redact(text).text
