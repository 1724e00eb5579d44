"""Secret redaction: runs on every item before it leaves the machine.

Why here and not on the server: a secret that reached brain-api has already crossed the network
and may sit in logs, backups and embedding requests. So collectors redact content, titles, URIs
and meta strings locally, replacing each secret with ``[REDACTED:<kind>]``.

Detectors, in three groups:

* The provider token regexes maintained by Yelp's ``detect-secrets`` (AWS, GitHub, GitLab,
  Slack, Stripe live keys, Twilio, SendGrid, npm, PyPI, Telegram, ...). Only their regex
  ``denylist`` is used: the library's scanner works line by line, reports secret *values*
  without positions and adds entropy heuristics, which is too slow and too noisy to rewrite
  text with. Its JWT, private-key, IP and basic-auth plugins are replaced by our own (the JWT
  regex there stops before the signature, the private-key one matches only the BEGIN line, and
  public IPs are not secrets), and its ``key = value`` regexes (IBM, Cloudant, SoftLayer) by
  the generic assignment rule below, because they were 60 % of a scan's time.
* Patterns the library lacks: Anthropic and current OpenAI keys (``sk-proj-``...), Google API
  keys, GitHub fine-grained PATs, Stripe test/restricted keys and webhook secrets, whole
  private-key blocks, full JWTs, ``Authorization``/bearer/basic credentials, ``curl -u``.
* Structural rules: ``user:password@`` in URLs, sensitive query/fragment parameters, and
  ``NAME=value`` assignments whose name says secret.

Redaction is idempotent: the placeholder itself never matches a detector.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

PLACEHOLDER = "[REDACTED:{kind}]"
_PLACEHOLDER_PREFIX = "[REDACTED"

# The detect-secrets plugins we use: class name -> (kind, needles). A needle is a lowercase
# literal every match contains; a file without any needle skips that plugin's regexes.
_LIBRARY_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "AWSKeyDetector": ("aws", ()),
    "ArtifactoryDetector": ("artifactory", ("AKC",) + tuple(f"AP{c}" for c in "0123456789ABCDEF")),
    "AzureStorageKeyDetector": ("azure_storage", ()),
    "CloudantDetector": ("cloudant", ("cloudant",)),
    "DiscordBotTokenDetector": ("discord", ()),
    "GitHubTokenDetector": ("github", ()),
    "GitLabTokenDetector": ("gitlab", ()),
    "IbmCosHmacDetector": ("ibm_cos", ()),
    "IbmCloudIamDetector": ("ibm_cloud_iam", ()),
    "MailchimpDetector": ("mailchimp", ("-us",)),
    "NpmDetector": ("npm", ()),
    "OpenAIDetector": ("openai", ()),
    "PypiTokenDetector": ("pypi", ()),
    "SendGridDetector": ("sendgrid", ()),
    "SlackDetector": ("slack", ("xox", "hooks.slack.com")),
    "SoftlayerDetector": ("softlayer", ("softlayer",)),
    "SquareOAuthDetector": ("square", ()),
    "StripeDetector": ("stripe", ("k_live_",)),
    "TelegramBotTokenDetector": ("telegram", ()),
    "TwilioKeyDetector": ("twilio", ()),
}
# Cheap regexes that must match before a slow library regex (one starting with a character
# class) is run: a literal first character lets the regex engine skip ahead quickly.
_LIBRARY_GATES: dict[str, re.Pattern[str]] = {
    "TelegramBotTokenDetector": re.compile(r":[0-9A-Za-z_\-]{35}"),
    "DiscordBotTokenDetector": re.compile(r"\.[a-zA-Z\d_\-]{6}\.[a-zA-Z\d_\-]{27}"),
}
# Assignment-form library regexes (``build_assignment_regex``: ``(?:(?<=\W)|(?<=^))...key = value``)
# try a match at every position and took 60 % of a scan; ``_assignment_spans`` covers that form.
_ASSIGNMENT_FORM = "(?:(?<=\\W)|(?<=^))"
# Library plugins replaced by our own detectors, or not about secrets at all.
_LIBRARY_SKIP = {"JwtTokenDetector", "PrivateKeyDetector", "IPPublicDetector", "BasicAuthDetector"}

# Characters trimmed from both ends of a library match: some denylist regexes include the
# delimiter around the token (Artifactory: ``(?:\s|=|:|"|^)AKC...(?:\s|"|$)``).
_TRIM = " \t\r\n\"'=:,;"


@dataclass(frozen=True)
class Detector:
    """One regex. ``group`` picks the secret part of a match (None: see ``_secret_span``).

    Speed matters (a 50k-file scan redacts every file once): a regex that starts with a literal
    is fast because the engine jumps between occurrences of it, so our own patterns start with
    one and put the word-boundary test in a lookbehind after it. Slow regexes get ``needles``
    (literals of which one must occur in the text: lowercase ones are looked up in the
    lowercased text, others as they are) or a ``gate`` (a fast regex that must match first).
    ``check`` can veto a match (e.g. ``Basic xyz`` must decode to ``user:pass``).
    """

    kind: str
    pattern: re.Pattern[str]
    group: int | None = 0
    needles: tuple[str, ...] = ()
    check: Callable[[re.Match[str]], bool] | None = None
    gate: re.Pattern[str] | None = None


def _decodes_to_userpass(m: re.Match[str]) -> bool:
    """``Basic <b64>`` is a credential only if it decodes to printable ``user:password``."""
    raw = m.group(1)
    try:
        text = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    return ":" in text and text.isprintable()


_W = "A-Za-z0-9_\\-"  # token characters, for the lookbehinds below
_OWN_DETECTORS: tuple[Detector, ...] = (
    Detector("private_key", re.compile(
        r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----.*?"
        r"(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\n\s*\n|\Z)", re.DOTALL)),
    Detector("private_key", re.compile(r"PuTTY-User-Key-File-\d+:.*?(?:Private-MAC: *[0-9a-f]+|\Z)", re.DOTALL)),
    Detector("anthropic", re.compile(rf"sk-ant-(?<![{_W}]sk-ant-)[A-Za-z0-9]+-[{_W}]{{20,}}")),
    # OpenAI: legacy sk-<48>, sk-proj-/sk-svcacct-/sk-admin- keys; a digit somewhere rules out prose.
    Detector("openai", re.compile(rf"sk-(?<![{_W}]sk-)(?!ant-)(?=[{_W}]*\d)[{_W}]{{20,}}")),
    Detector("google_api_key", re.compile(rf"AIza(?<![{_W}]AIza)[{_W}]{{35}}(?![{_W}])")),
    Detector("github", re.compile(r"github_pat_(?<![A-Za-z0-9_]github_pat_)[A-Za-z0-9_]{22,}")),
    Detector("github", re.compile(r"gh(?<![A-Za-z0-9_]gh)[pousr]_[A-Za-z0-9]{36,}")),
    Detector("stripe", re.compile(r"sk_(?<![A-Za-z0-9_]sk_)(?:live|test)_[0-9A-Za-z]{16,}")),
    Detector("stripe", re.compile(r"rk_(?<![A-Za-z0-9_]rk_)(?:live|test)_[0-9A-Za-z]{16,}")),
    Detector("stripe", re.compile(r"whsec_(?<![A-Za-z0-9_]whsec_)[A-Za-z0-9]{24,}")),
    Detector("slack", re.compile(r"xapp-(?<![A-Za-z0-9_]xapp-)\d-[A-Z0-9]+-\d+-[a-f0-9]+")),
    Detector("jwt", re.compile(rf"eyJ(?<![{_W}]eyJ)[{_W}]{{4,}}\.eyJ[{_W}]{{4,}}\.[{_W}]*")),
    Detector("auth_header", re.compile(
        r"(?i)\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token|digest|bot)\s+"
        r"([A-Za-z0-9._~+/=:\-]{6,})"), group=1, needles=("authorization",)),
    Detector("auth_header", re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/\-]{16,}=*)"), group=1, needles=("bearer",)),
    Detector("auth_header", re.compile(r"Basic(?<![A-Za-z0-9_]Basic)\s+([A-Za-z0-9+/]{8,}={0,2})(?![A-Za-z0-9+/=])"),
             group=1, check=_decodes_to_userpass),
    Detector("basic_auth", re.compile(r"-u(?<!\S-u)\s+[\"']?[^\s:\"']+:([^\s\"']+)"), group=1),
    Detector("basic_auth", re.compile(r"--user(?<!\S--user)[\s=]+[\"']?[^\s:\"']+:([^\s\"']+)"), group=1),
)

_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,30}\Z")
_URL_REST = re.compile(r"[^\s\"'<>`\\]+")
_PARAM = re.compile(r"([?&#;])([^=&#;?]{1,100})=([^&#;]*)")
_SENSITIVE_PARAMS = {
    "token", "access_token", "refresh_token", "id_token", "auth_token", "api_key", "apikey", "key", "secret",
    "client_secret", "password", "passwd", "pwd", "pass", "code", "sig", "signature", "session", "sessionid",
    "session_id", "sid", "auth", "authorization", "jwt", "otp", "ticket", "credential", "credentials",
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-signature", "x-goog-credential",
}
_SENSITIVE_PARTS = {"token", "secret", "password", "passwd", "pwd", "key", "sig", "signature", "session",
                    "auth", "credential", "credentials", "apikey", "otp", "jwt"}

# NAME=value assignments: we find these words in the lowercased text with str.find (much faster
# than a case-insensitive regex alternation), then parse the identifier around each hit.
_ASSIGN_WORDS = ("secret", "pass", "pwd", "token", "key", "credential")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_.\-]*")
_ASSIGN_TAIL = re.compile(
    r"""(?P<q>["']?)[ \t]*(?P<sep>:=|=>|=(?!=)|:(?!:))[ \t]*"""
    r"""(?P<val>"[^"\n]{1,300}"|'[^'\n]{1,300}'|[^\s"'`,;(){}\[\]]+)""")
_NAME_PARTS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_SECRET_WORDS = {"secret", "password", "passwd", "passphrase", "pwd", "token", "apikey", "credential",
                 "credentials", "pass", "pw"}
_SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"), ("client", "secret"),
                 ("signing", "key"), ("session", "key"), ("master", "key"), ("encryption", "key"),
                 ("auth", "key"), ("account", "key")}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_NOT_SECRET_VALUES = {"none", "null", "nil", "true", "false", "undefined", "required", "optional", "string", "str",
                      "bool", "int", "your_token", "xxx", "changeme", "redacted", "secret", "password", "token"}


@dataclass
class Redaction:
    """The redacted text and how many secrets of each kind were replaced."""

    text: str
    counts: Counter[str] = field(default_factory=Counter)


def _library_detectors() -> list[Detector]:
    """Wrap detect-secrets' maintained regexes as Detectors (imported lazily: ~0.2 s)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    out = []
    for secret_type, cls in sorted(get_mapping_from_secret_type_to_class().items()):
        if not issubclass(cls, RegexBasedDetector) or cls.__name__ in _LIBRARY_SKIP:
            continue
        kind, needles = _LIBRARY_KINDS.get(cls.__name__) or (
            re.sub(r"[^a-z0-9]+", "_", secret_type.lower()).strip("_"), ())
        gate = _LIBRARY_GATES.get(cls.__name__)
        out.extend(Detector(kind, pattern, group=None, needles=needles, gate=gate) for pattern in cls.denylist
                   if not pattern.pattern.startswith(_ASSIGNMENT_FORM))
    return out


def _secret_span(det: Detector, m: re.Match[str]) -> tuple[int, int]:
    """The span to replace: the chosen group, else the longest group of >= 8 chars, else the match.

    Why the longest group: detect-secrets' regexes use groups both for the secret
    (``aws...key...'(<40 chars>)'``) and for token prefixes (``(ghp|gho)_...``); a group of at
    least 8 characters is the secret, a short one is a prefix.
    """
    if det.group is not None:
        return m.span(det.group)
    best = (0, 0)
    for i in range(1, (m.re.groups or 0) + 1):
        if m.group(i) and len(m.group(i)) >= 8 and len(m.group(i)) > best[1] - best[0]:
            best = m.span(i)
    start, end = best if best != (0, 0) else m.span()
    text = m.string
    while start < end and text[start] in _TRIM:
        start += 1
    while end > start and text[end - 1] in _TRIM:
        end -= 1
    return start, end


def _param_is_sensitive(name: str) -> bool:
    """``token``, ``access_token``, ``X-Amz-Signature``: yes. ``token_type``, ``q``: no (the
    sensitive word must be the last part of the name)."""
    low = unquote(name).strip().lower()
    if low in _SENSITIVE_PARAMS:
        return True
    parts = [p for p in re.split(r"[_\-.\[\]]+", low) if p]
    return bool(parts) and parts[-1] in _SENSITIVE_PARTS


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


def _url_spans(text: str, urls: list[tuple[int, int]]) -> Iterator[tuple[int, int, str]]:
    """Passwords in ``scheme://user:password@host`` and values of sensitive query/fragment parameters."""
    for ustart, uend in urls:
        url, base = text[ustart:uend], ustart
        rest = url.index("://") + 3
        auth_end = len(url)
        for ch in "/?#":
            pos = url.find(ch, rest)
            if pos != -1:
                auth_end = min(auth_end, pos)
        authority = url[rest:auth_end]
        at = authority.rfind("@")
        if at > 0 and ":" in authority[:at]:
            colon = authority.index(":")
            if colon + 1 < at and not authority[colon + 1:].startswith(_PLACEHOLDER_PREFIX):
                yield base + rest + colon + 1, base + rest + at, "url_userinfo"
        for p in _PARAM.finditer(url, auth_end):
            value = p.group(3)
            if value and not value.startswith(_PLACEHOLDER_PREFIX) and _param_is_sensitive(p.group(2)):
                yield base + p.start(3), base + p.end(3), "url_param"


def _name_is_secret(name: str) -> bool:
    """Does an identifier name a secret? ``DB_PASSWORD``, ``clientSecret``, ``api-key``,
    ``self.token``: yes. ``token_type``, ``max_tokens``, ``TOKEN_RE``: no, because the secret
    word must be the last part of the name (or the last two parts a pair such as api+key)."""
    parts = [p.lower() for p in _NAME_PARTS.findall(name)]
    if not parts:
        return False
    return parts[-1] in _SECRET_WORDS or tuple(parts[-2:]) in _SECRET_PAIRS


def _looks_like_code(value: str) -> bool:
    """An identifier or dotted path without digits (``token``, ``self.password``, ``Token``)."""
    return bool(_IDENTIFIER.fullmatch(value)) and not any(c.isdigit() for c in value)


def _value_is_secret(value: str, quoted: bool, form: str) -> bool:
    """Decide whether an assigned value looks like a literal secret rather than code, a type
    annotation, a format string or a placeholder.

    ``form``: ``env`` (``NAME=value`` at line start, no spaces: shell, .env, ini),
    ``colon`` (``name: value`` filling the line: YAML, headers), ``flag`` (``--password=x``,
    ``f(token=x)``: ``=`` without spaces mid-line), ``code`` (``name = value``).
    """
    if not value or value.startswith((_PLACEHOLDER_PREFIX, "$", "<", "{", "%(", "os.", "process.env")):
        return False
    low = value.lower()
    if low in _NOT_SECRET_VALUES or set(value) <= {"*", "x", "X", ".", "-"}:
        return False
    if quoted:
        return len(value) >= 6 and value.count(" ") < 2 and not any(f in value for f in ("%s", "%d", "{}", "{0"))
    if value.isdigit():
        return False
    if form == "env":
        return len(value) >= 4
    if form == "colon":
        return len(value) >= 4 and not (_looks_like_code(value) and (value[0].isupper() or "." in value))
    if form == "flag":
        return len(value) >= 4 and not _looks_like_code(value)
    return len(value) >= 8 and any(c.isdigit() for c in value) and any(c.isalpha() for c in value) \
        and not _IDENTIFIER.fullmatch(value)


def _inside(pos: int, ranges: list[tuple[int, int]]) -> bool:
    """Is ``pos`` inside one of the sorted, disjoint ``ranges``?"""
    i = bisect.bisect_right(ranges, (pos, float("inf"))) - 1
    return i >= 0 and ranges[i][0] <= pos < ranges[i][1]


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


def _assignment_form(text: str, start: int, vend: int, tail: re.Match[str]) -> str:
    """Classify an assignment for ``_value_is_secret`` by its separator and its line."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", vend)
    prefix = text[line_start:start].strip()
    after = text[vend:line_end if line_end != -1 else len(text)].strip(" \t\r\"'")
    whole_line = prefix in ("", "export", "-", "set") and (after == "" or after.startswith("#"))
    sep = tail.group("sep")
    spaced = tail.group(0)[:tail.start("sep") - tail.start()].strip("\"'") != "" or \
        text[tail.end("sep"):tail.start("val")] != ""
    if sep == "=" and not spaced:
        return "env" if whole_line else "flag"
    if sep == ":" and whole_line:
        return "colon"
    return "code"


def _assignment_spans(text: str, skip: list[tuple[int, int]]) -> Iterator[tuple[int, int, str]]:
    """``NAME=value`` / ``"name": "value"`` / ``name: value`` where NAME says secret.

    ``skip`` holds URL ranges: query parameters there are judged by the URL rules instead.
    """
    done_until = -1
    for hit in _keyword_hits(_ascii_lower(text)):
        if hit < done_until or (skip and _inside(hit, skip)):
            continue
        start = hit
        while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_.-"):
            start -= 1
        end = _NAME_CHARS.match(text, hit).end()
        done_until = end
        name = text[start:end].strip(".-")
        if not name or not _name_is_secret(name):
            continue
        opening = text[start - 1] if start > 0 and text[start - 1] in "\"'" else ""
        tail = _ASSIGN_TAIL.match(text, end)
        if tail is None or (opening and tail.group("q") != opening) or (tail.group("q") and not opening):
            continue
        raw = tail.group("val")
        quoted = raw[0] in "\"'" and raw[-1] == raw[0] and len(raw) >= 2
        vstart, vend = tail.span("val")
        if quoted:
            vstart, vend = vstart + 1, vend - 1
        value = text[vstart:vend]
        if _value_is_secret(value, quoted, _assignment_form(text, start - len(opening), vend, tail)):
            done_until = vend
            yield vstart, vend, "secret_assignment"


class Redactor:
    """Compiled detectors; ``redact(text)`` returns the text with every secret replaced."""

    def __init__(self, use_library: bool = True):
        self.detectors: list[Detector] = list(_OWN_DETECTORS)
        if use_library:
            self.detectors.extend(_library_detectors())
        # needle -> detectors it enables; each distinct needle is looked up once per text
        self._always = [i for i, d in enumerate(self.detectors) if not d.needles]
        self._by_needle: dict[str, list[int]] = {}
        for i, d in enumerate(self.detectors):
            for n in d.needles:
                self._by_needle.setdefault(n, []).append(i)

    def _active(self, text: str, low: str) -> list[int]:
        active = set(self._always)
        for needle, idxs in self._by_needle.items():
            if needle in (low if needle.islower() else text):
                active.update(idxs)
        return sorted(active)

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """All secret spans, overlaps merged (an earlier-listed detector wins a tie)."""
        found: list[tuple[int, int, int, str]] = []
        if len(text) < 8:  # shorter than any secret with its context (``pwd=abcd``)
            return []
        low = _ascii_lower(text)
        for prio in self._active(text, low):
            det = self.detectors[prio]
            if det.gate is not None and det.gate.search(text) is None:
                continue
            for m in det.pattern.finditer(text):
                if det.check is not None and not det.check(m):
                    continue
                start, end = _secret_span(det, m)
                if end > start and not text.startswith(_PLACEHOLDER_PREFIX, start):
                    found.append((start, end, prio, det.kind))
        extra = len(self.detectors)
        urls = _find_urls(text)
        found.extend((s, e, extra, k) for s, e, k in _url_spans(text, urls))
        found.extend((s, e, extra + 1, k) for s, e, k in _assignment_spans(text, urls))
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
        out, pos, counts = [], 0, Counter()
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
