"""A corpus of FAKE secrets and of look-alikes that are not secrets, and the channels they are
planted in (Claude transcripts, the other coding agents' sessions, browser history, files).

Every secret here is generated from a seeded random generator at test time: shaped like the real
format (prefix, alphabet, length) and never a real credential. Each (kind, channel) pair gets its
own value, so a leak found anywhere names the kind and the channel it came from. The random part
of a value is kept in ``cores`` (alphanumeric runs, so that percent-, JSON- and HTML-encoding leave
them intact): a leak is any core found in the outbox, the server database or the logs.

A look-alike (git SHA, UUID, lockfile hash, base64 image, documentation placeholder, version
string, ...) must survive: the text planted in a channel must reach the server unchanged.
"""

from __future__ import annotations

import base64
import html
import json
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

ALNUM = string.ascii_letters + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
UPPER_ALNUM = string.ascii_uppercase + string.digits
BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"


def rnd(rng: random.Random, n: int, alphabet: str = ALNUM) -> str:
    """``n`` random characters; alphanumeric ones always hold a digit and a letter (as real tokens
    do, and as the detectors' vetoes expect)."""
    while True:
        s = "".join(rng.choice(alphabet) for _ in range(n))
        if alphabet not in (ALNUM, LOWER_ALNUM, UPPER_ALNUM) or n < 8 or (
                any(c.isdigit() for c in s) and any(c.isalpha() for c in s) and
                (alphabet != ALNUM or (any(c.islower() for c in s) and any(c.isupper() for c in s)))):
            return s


def b64ish(rng: random.Random, n: int, specials: str = "+/") -> str:
    """Base64-looking text with a few ``+``/``/`` (alphanumeric runs stay >= 10 long)."""
    s = list(rnd(rng, n))
    for pos in range(12, n - 12, rng.randint(14, 24)):
        s[pos] = rng.choice(specials)
    return "".join(s)


def cores_of(value: str, minimum: int = 10) -> tuple[str, ...]:
    """The alphanumeric runs of a value that prove a leak (encodings leave them intact)."""
    return tuple(r for r in re.findall(r"[A-Za-z0-9]+", value) if len(r) >= minimum)


def _pem(rng: random.Random, label: str, lines: int = 22) -> tuple[str, tuple[str, ...]]:
    body = [b64ish(rng, 64) for _ in range(lines)] + [b64ish(rng, 28)[:-4] + "AB=="]
    text = f"-----BEGIN {label}-----\n" + "\n".join(body) + f"\n-----END {label}-----"
    return text, cores_of("\n".join(body))


def _password(rng: random.Random) -> str:
    """A realistic generated password: letters and digits with a symbol."""
    return rnd(rng, 12) + rng.choice("!#%^*-_.~") + rnd(rng, 4, LOWER_ALNUM)


WORDS = ("marble", "canyon", "violet", "harbor", "lantern", "quartz", "meadow", "falcon", "copper", "glacier",
         "thistle", "ember", "orchid", "saddle", "tundra", "willow", "cobalt", "juniper", "pebble", "sparrow",
         "basalt", "bramble", "cedar", "dune", "fennel", "garnet", "heron", "indigo", "jasper", "kestrel",
         "lichen", "mosaic", "nectar", "otter", "prairie", "quiver", "raven", "sorrel", "timber", "umber",
         "velvet", "walnut", "yarrow", "zephyr", "anchor", "beacon", "cinder", "drift")


def _passphrase(rng: random.Random) -> str:
    """A password of words without digits (``MarbleCanyonViolet``): what INI files often hold and
    what a digit-and-letter test cannot tell from a name."""
    return "".join(rng.choice(WORDS).capitalize() if rng.random() < 0.5 else rng.choice(WORDS) for _ in range(4))


@dataclass(frozen=True)
class Fake:
    value: str  # the secret itself (what a config file would hold)
    snippet: str  # the secret in its natural context (what a human pastes)
    cores: tuple[str, ...]  # substrings that must never reach the server


Maker = Callable[[random.Random], Fake]


def token(prefix: str, n: int, alphabet: str = ALNUM, suffix: str = "", context: str = "{v}") -> Maker:
    """A self-identifying token: prefix + random part (+ fixed suffix), in prose."""
    def make(rng: random.Random) -> Fake:
        part = rnd(rng, n, alphabet)
        value = prefix + part + suffix
        return Fake(value, context.format(v=value), cores_of(part, 8))
    return make


def maker(fn: Callable[[random.Random], tuple[str, str]]) -> Maker:
    """From a function returning (value, snippet): cores are the value's alphanumeric runs."""
    def make(rng: random.Random) -> Fake:
        value, snippet = fn(rng)
        return Fake(value, snippet, cores_of(value))
    return make


def _pem_maker(label: str, context: str = "{v}") -> Maker:
    def make(rng: random.Random) -> Fake:
        text, cores = _pem(rng, label)
        return Fake(text, context.format(v=text), cores)
    return make


def _putty(rng: random.Random) -> Fake:
    pub, priv = b64ish(rng, 68), b64ish(rng, 64)
    text = ("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: fake-key\nPublic-Lines: 2\n"
            f"AAAAC3NzaC1lZDI1NTE5AAAAI{pub}\nPrivate-Lines: 1\n{priv}\nPrivate-MAC: {rnd(rng, 64, HEX)}")
    return Fake(text, text, cores_of(priv))


def _gcp_service_account(rng: random.Random) -> Fake:
    pem, cores = _pem(rng, "PRIVATE KEY", 10)
    doc = json.dumps({"type": "service_account", "project_id": "fake-project-123", "private_key_id": rnd(rng, 40, HEX),
                      "private_key": pem + "\n", "client_email": "ci@fake-project-123.iam.gserviceaccount.com"})
    return Fake(pem, doc, cores)


def _basic(rng: random.Random) -> Fake:
    pw = rnd(rng, 14)
    b64 = base64.b64encode(f"deploy:{pw}".encode()).decode()
    return Fake(b64, f"curl -H 'Authorization: Basic {b64}' https://api.internal.example/v1/status",
                cores_of(b64.rstrip("="), 10))


def _pypi(rng: random.Random) -> Fake:
    # a macaroon whose location is ``index.invalid`` (a reserved name): no real index's host
    ident = rnd(rng, 32).encode()
    mac = b"\x02\x01\x0dindex.invalid\x02" + bytes([len(ident)]) + ident + b"\x00\x06\x20" + rng.randbytes(32)
    value = "pypi-" + base64.urlsafe_b64encode(mac).decode().rstrip("=")
    return Fake(value, f"twine upload -u __token__ -p {value} dist/*", cores_of(value[40:], 10))


def _azure_storage(rng: random.Random) -> Fake:
    key = b64ish(rng, 86) + "=="
    return Fake(key, f"DefaultEndpointsProtocol=https;AccountName=fakeacct;AccountKey={key};EndpointSuffix=core.windows.net",
                cores_of(key))


def webhook(template: str, n: int, context: str = "{v}") -> Maker:
    """A webhook URL: its ids are not secret, its token is."""
    def make(rng: random.Random) -> Fake:
        t = rnd(rng, n)
        value = template.format(a=rnd(rng, 10, UPPER_ALNUM), b=rnd(rng, 10, UPPER_ALNUM), n=rnd(rng, 18, string.digits), t=t)
        return Fake(value, context.format(v=value), (t,))
    return make


def _k(value_fn: Callable[[random.Random], str], snippet: str) -> Maker:
    """A secret known by its context: ``snippet`` shows ``{v}`` in its natural place."""
    return maker(lambda rng: (v := value_fn(rng), snippet.format(v=v)))


@dataclass(frozen=True)
class SecretKind:
    name: str
    make: Maker


JWT_HEADER = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"  # {"alg":"HS256","typ":"JWT"}: the same in every JWT

SECRET_KINDS: list[SecretKind] = [
    SecretKind("aws_access_key_id", token("AKIA", 16, UPPER_ALNUM)),
    SecretKind("aws_secret_access_key", _k(lambda r: rnd(r, 40) if r.random() < 0.5 else b64ish(r, 40),
                                           "aws_secret_access_key = {v}")),
    SecretKind("aws_session_token", token("IQoJb3JpZ2luX2VjE", 260, ALNUM)),
    SecretKind("github_classic_pat", token("ghp_", 36)),
    SecretKind("github_oauth", token("gho_", 36)),
    SecretKind("github_app_token", token("ghs_", 36)),
    SecretKind("github_fine_grained_pat", maker(lambda r: (v := f"github_pat_11{rnd(r, 20, UPPER_ALNUM)}_{rnd(r, 59)}", v))),
    SecretKind("gitlab_pat", token("glpat-", 20)),
    SecretKind("gitlab_runner", token("glrt-", 20)),
    SecretKind("slack_bot", maker(lambda r: (v := f"xoxb-{rnd(r, 12, string.digits)}-{rnd(r, 13, string.digits)}-{rnd(r, 24)}", v))),
    SecretKind("slack_user", maker(lambda r: (v := f"xoxp-{rnd(r, 12, string.digits)}-{rnd(r, 12, string.digits)}-{rnd(r, 13, string.digits)}-{rnd(r, 32, HEX)}", v))),
    SecretKind("slack_webhook", webhook("https://hooks.slack.com/services/T{a}/B{b}/{t}", 24, "webhook: {v}")),
    SecretKind("slack_app", maker(lambda r: (v := f"xapp-1-A{rnd(r, 10, UPPER_ALNUM)}-{rnd(r, 13, string.digits)}-{rnd(r, 64, HEX)}", v))),
    SecretKind("stripe_live", token("sk_live_", 99)),
    SecretKind("stripe_test", token("sk_test_", 24)),
    SecretKind("stripe_restricted", token("rk_live_", 24)),
    SecretKind("stripe_webhook", token("whsec_", 32)),
    SecretKind("openai_project", maker(lambda r: (v := f"sk-proj-{rnd(r, 74)}T3BlbkFJ{rnd(r, 74)}", v))),
    SecretKind("openai_legacy", maker(lambda r: (v := f"sk-{rnd(r, 20)}T3BlbkFJ{rnd(r, 20)}", v))),
    SecretKind("anthropic", maker(lambda r: (v := f"sk-ant-api03-{rnd(r, 93)}AA", v))),
    SecretKind("google_api_key", token("AIzaSy", 33)),
    SecretKind("google_oauth_secret", token("GOCSPX-", 28)),
    SecretKind("google_refresh_token", maker(lambda r: (v := f"1//0g{rnd(r, 98)}", f"refresh_token {v}"))),
    SecretKind("gcp_service_account", _gcp_service_account),
    SecretKind("rsa_private_key", _pem_maker("RSA PRIVATE KEY")),
    SecretKind("openssh_private_key", _pem_maker("OPENSSH PRIVATE KEY")),
    SecretKind("pgp_private_key", _pem_maker("PGP PRIVATE KEY BLOCK")),
    SecretKind("putty_private_key", _putty),
    SecretKind("jwt", lambda r: Fake(v := f"{JWT_HEADER}.eyJ{rnd(r, 60)}.{rnd(r, 43)}", v, cores_of(v[len(JWT_HEADER):]))),
    SecretKind("npm_token", token("npm_", 36)),
    SecretKind("npmrc_auth", _k(lambda r: "-".join(rnd(r, n, HEX) for n in (8, 4, 4, 4, 12)),
                                "//npm.internal.example/:_authToken={v}")),
    SecretKind("pypi_token", _pypi),
    SecretKind("huggingface", token("hf_", 34)),
    SecretKind("digitalocean_pat", token("dop_v1_", 64, HEX)),
    SecretKind("digitalocean_oauth", token("doo_v1_", 64, HEX)),
    SecretKind("vault_service_token", token("hvs.CAESI", 80)),
    SecretKind("vault_legacy_token", token("s.", 24, context="vault login {v}")),
    SecretKind("discord_bot_token", maker(lambda r: (v := f"M{rnd(r, 25)}.{rnd(r, 6)}.{rnd(r, 38)}", v))),
    SecretKind("discord_webhook", webhook("https://discord.com/api/webhooks/{n}/{t}", 68)),
    SecretKind("azure_storage_key", _azure_storage),
    SecretKind("azure_sas_key", _k(lambda r: b64ish(r, 43) + "=",
                                   "Endpoint=sb://fake-ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={v}")),
    SecretKind("azure_sas_url", _k(lambda r: quote(b64ish(r, 43) + "=", safe=""),
                                   "https://fakeacct.blob.core.windows.net/backups/db.tar?sv=2022-11-02&ss=b&sp=r&se=2026-12-31T00:00:00Z&sig={v}")),
    SecretKind("twilio_api_key", token("SK", 32, HEX)),
    SecretKind("twilio_auth_token", _k(lambda r: rnd(r, 32, HEX), "TWILIO_AUTH_TOKEN={v}")),
    SecretKind("sendgrid", maker(lambda r: (v := f"SG.{rnd(r, 22)}.{rnd(r, 43)}", v))),
    SecretKind("mailgun", token("key-", 32, LOWER_ALNUM)),
    SecretKind("mailchimp", maker(lambda r: (v := f"{rnd(r, 32, HEX)}-us{r.randint(1, 21)}", v))),
    SecretKind("shopify", token("shpat_", 32, HEX, context='curl -H "X-Shopify-Access-Token: {v}" https://fake-shop.myshopify.com/admin/api/2024-01/shop.json')),
    SecretKind("square", token("sq0atp-", 22)),
    SecretKind("telegram_bot", maker(lambda r: (v := f"{rnd(r, 10, string.digits)}:AA{rnd(r, 33)}", v))),
    SecretKind("basic_auth_header", _basic),
    SecretKind("bearer_header", _k(lambda r: rnd(r, 40), "curl -H 'Authorization: Bearer {v}' https://api.internal.example/v1/me")),
    SecretKind("curl_user", _k(_password, "curl -u deploy:{v} https://api.internal.example/v1/status")),
    SecretKind("url_userinfo", _k(_password, "postgres://app:{v}@db.internal.example:5432/app")),
    SecretKind("pgpassword", _k(_password, "PGPASSWORD={v} psql -h db.internal.example -U app app")),
    SecretKind("mysql_cli", _k(lambda r: rnd(r, 14), "mysql -u root -p{v} -h db.internal.example app")),
    SecretKind("docker_login", _k(lambda r: rnd(r, 16), "docker login -u ci -p {v} cr.internal.example")),
    SecretKind("netrc", _k(lambda r: rnd(r, 16), "machine api.internal.example login deploy password {v}")),
    SecretKind("ini_password", _k(lambda r: rnd(r, 14), "[database]\nhost = db.internal.example\npassword = {v}")),
    SecretKind("ini_password_words", _k(_passphrase, "[database]\nhost = db.internal.example\npassword = {v}")),
    SecretKind("ini_token_words", _k(lambda r: _passphrase(r).lower(), "[service \"api\"]\nurl = https://api.internal.example\ntoken = {v}")),
    SecretKind("env_secret_key", _k(lambda r: rnd(r, 50), "SECRET_KEY={v}")),
    SecretKind("yaml_password", _k(_password, "database:\n  user: app\n  password: {v}")),
    SecretKind("json_hmac", _k(lambda r: rnd(r, 64, HEX), '{{"webhook": "orders", "hmac": "{v}"}}')),
    SecretKind("django_secret", _k(lambda r: rnd(r, 16, LOWER_ALNUM) + rnd(r, 34, LOWER_ALNUM + "!@#%^&*(-_=+)"),
                                   "SECRET_KEY = 'django-insecure-{v}'")),
    SecretKind("sentry_dsn", maker(lambda r: (v := rnd(r, 32, HEX), f"SENTRY_DSN https://{v}@o{rnd(r, 6, string.digits)}.ingest.sentry.io/{rnd(r, 7, string.digits)}"))),
    SecretKind("databricks", token("dapi", 32, HEX)),
    # the fixed prefix is no core: one plant's leak would be counted for every plant of the kind
    SecretKind("atlassian", lambda r: Fake(v := "ATATT3xFfGF0" + rnd(r, 170) + "=" + rnd(r, 8, UPPER_ALNUM), v,
                                           cores_of(v[len("ATATT3xFfGF0"):]))),
    SecretKind("linear", token("lin_api_", 40)),
    SecretKind("notion", token("ntn_", 46)),
    SecretKind("postman", maker(lambda r: (v := f"PMAK-{rnd(r, 24, HEX)}-{rnd(r, 34, HEX)}", v))),
    SecretKind("grafana", maker(lambda r: (v := f"glsa_{rnd(r, 32)}_{rnd(r, 8, HEX)}", v))),
    SecretKind("newrelic", token("NRAK-", 27, UPPER_ALNUM)),
    SecretKind("doppler", token("dp.st.prd.", 43)),
    SecretKind("pulumi", token("pul-", 40, HEX)),
    SecretKind("terraform_cloud", maker(lambda r: (v := f"{rnd(r, 14)}.atlasv1.{rnd(r, 67)}", v))),
    SecretKind("age_key", token("AGE-SECRET-KEY-1", 58, BECH32)),
    SecretKind("heroku_api_key", _k(lambda r: "-".join(rnd(r, n, HEX) for n in (8, 4, 4, 4, 12)), "HEROKU_API_KEY={v}")),
    SecretKind("datadog_api_key", _k(lambda r: rnd(r, 32, HEX), "DD_API_KEY={v}")),
    SecretKind("okta_ssws", _k(lambda r: "00" + rnd(r, 40), "Authorization: SSWS {v}")),
    SecretKind("braintree", lambda r: Fake(v := f"access_token$production${rnd(r, 16, LOWER_ALNUM)}${rnd(r, 32, HEX)}", v,
                                           cores_of(v[len("access_token$production$"):]))),
    SecretKind("firebase_fcm", maker(lambda r: (v := f"AAAA{rnd(r, 7)}:APA91b{rnd(r, 134)}", v))),
    SecretKind("sshpass", _k(lambda r: rnd(r, 14), "sshpass -p {v} ssh deploy@host.internal.example")),
    SecretKind("redis_url", _k(lambda r: rnd(r, 20), "redis://:{v}@cache.internal.example:6379/0")),
    SecretKind("jdbc_password", _k(_password, "jdbc:mysql://db.internal.example:3306/app?user=app&password={v}")),
    SecretKind("wireguard_key", _k(lambda r: b64ish(r, 43) + "=", "[Interface]\nAddress = 10.8.0.2/24\nPrivateKey = {v}")),
    SecretKind("cookie_session", _k(lambda r: rnd(r, 32), "Cookie: sessionid={v}; theme=dark")),
    SecretKind("x_api_key_header", _k(lambda r: rnd(r, 32, HEX), "curl -H 'X-API-Key: {v}' https://api.internal.example/v1/items")),
]


# ---------------------------------------------------------------------- look-alikes


@dataclass(frozen=True)
class LookAlike:
    name: str
    make: Callable[[random.Random], str]  # the text, which must survive unchanged


def _uuid(rng: random.Random) -> str:
    return "-".join(rnd(rng, n, HEX) for n in (8, 4, 4, 4, 12))


def _b64(rng: random.Random, n: int) -> str:
    return base64.b64encode(rng.randbytes(n)).decode()


LOOKALIKES: list[LookAlike] = [
    LookAlike("git_sha", lambda r: f"commit {rnd(r, 40, HEX)}"),
    LookAlike("git_short_sha", lambda r: f"fixed in {rnd(r, 7, HEX)} (merge {rnd(r, 12, HEX)})"),
    LookAlike("git_sha256", lambda r: f"object {rnd(r, 64, HEX)}"),
    LookAlike("git_log_line", lambda r: f"{rnd(r, 40, HEX)} refs/heads/main"),
    LookAlike("uuid", lambda r: f"request id {_uuid(r)}"),
    LookAlike("uuid_in_path", lambda r: f"https://tracker.example.org/issues/{_uuid(r)}/comments"),
    LookAlike("npm_integrity", lambda r: f'"integrity": "sha512-{_b64(r, 64)}"'),
    LookAlike("yarn_integrity", lambda r: f"  integrity sha1-{_b64(r, 20)}"),
    LookAlike("pip_hash", lambda r: f"requests==2.32.3 --hash=sha256:{rnd(r, 64, HEX)}"),
    LookAlike("docker_digest", lambda r: f"image: app@sha256:{rnd(r, 64, HEX)}"),
    LookAlike("go_sum", lambda r: f"example.com/mod v1.2.3 h1:{_b64(r, 32)}"),
    LookAlike("cargo_checksum", lambda r: f'checksum = "{rnd(r, 64, HEX)}"'),
    LookAlike("sha256sum", lambda r: f"{rnd(r, 64, HEX)}  dist/app-1.4.2.tar.gz"),
    LookAlike("md5", lambda r: f"md5: {rnd(r, 32, HEX)}"),
    LookAlike("png_data_uri", lambda r: f"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAABAAAAAQ{_b64(r, 90)}"),
    LookAlike("jpeg_base64", lambda r: f"/9j/4AAQSkZJRgABAQAAAQABAAD/{_b64(r, 90)}"),
    LookAlike("woff_data_uri", lambda r: f"src: url(data:font/woff2;base64,d09GMgABAAAAA{_b64(r, 60)}) format('woff2');"),
    LookAlike("openai_placeholder", lambda r: "export OPENAI_API_KEY=sk-..."),
    LookAlike("your_api_key", lambda r: "curl https://api.example.com/v1/items?api_key=YOUR_API_KEY"),
    LookAlike("bearer_placeholder", lambda r: "curl -H 'Authorization: Bearer <token>' https://api.example.com/v1/me"),
    LookAlike("bearer_variable", lambda r: 'curl -H "Authorization: Bearer $GITHUB_TOKEN" https://api.github.com/user'),
    LookAlike("x_placeholder", lambda r: 'OPENAI_API_KEY="sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"'),
    LookAlike("ghp_placeholder", lambda r: "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    LookAlike("stars_password", lambda r: "password: ********"),
    LookAlike("changeme", lambda r: 'password = "changeme"'),
    LookAlike("env_reference", lambda r: "DB_PASSWORD=${DB_PASSWORD}"),
    LookAlike("template_reference", lambda r: 'api_key: "{{ vault_api_key }}"'),
    LookAlike("semver", lambda r: f"version {r.randint(1, 9)}.{r.randint(0, 30)}.{r.randint(0, 99)}-rc.{r.randint(1, 9)}+build.{r.randint(100, 999)}"),
    LookAlike("go_pseudo_version", lambda r: f"v0.0.0-20260101{rnd(r, 6, string.digits)}-{rnd(r, 12, HEX)}"),
    LookAlike("python_version", lambda r: f"Python 3.11.{r.randint(0, 9)} (main, Jan  1 2026, 00:00:00) [GCC 12.2.0]"),
    LookAlike("blog_slug", lambda r: f"https://blog.example.org/2026/01/how-to-rotate-your-api-keys-safely-{r.randint(10, 99)}"),
    LookAlike("qa_url", lambda r: f"https://stackoverflow.com/questions/{rnd(r, 8, string.digits)}/how-to-pass-a-bearer-token-with-curl"),
    LookAlike("docs_anchor", lambda r: "https://docs.example.com/api/authentication#bearer-tokens"),
    LookAlike("token_type_param", lambda r: f"https://app.example.com/cb?token_type=bearer&expires_in={r.randint(100, 9999)}"),
    LookAlike("oauth_client_id", lambda r: f"https://accounts.example.com/authorize?response_type=code&client_id={rnd(r, 20, LOWER_ALNUM)}&state=login"),
    LookAlike("search_jwt", lambda r: "https://www.google.com/search?q=what+is+a+jwt+token"),
    LookAlike("aws_arn", lambda r: f"arn:aws:iam::{rnd(r, 12, string.digits)}:role/deploy-{rnd(r, 6, LOWER_ALNUM)}"),
    LookAlike("s3_url", lambda r: f"https://fake-bucket.s3.amazonaws.com/reports/{rnd(r, 10, LOWER_ALNUM)}.csv"),
    LookAlike("k8s_configmap", lambda r: f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  LOG_LEVEL: info\n  BUILD: {rnd(r, 12, HEX)}"),
    LookAlike("css_colors", lambda r: f"color: #{rnd(r, 6, HEX)}; background: #{rnd(r, 6, HEX)};"),
    LookAlike("hashed_asset", lambda r: f"<script src=\"/static/main.{rnd(r, 8, HEX)}.js\"></script>"),
    LookAlike("ssh_public_key", lambda r: f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{_b64(r, 32)[:43]} dev@laptop"),
    LookAlike("certificate", lambda r: "-----BEGIN CERTIFICATE-----\n" + "\n".join(_b64(r, 48) for _ in range(4)) + "\n-----END CERTIFICATE-----"),
    LookAlike("public_key", lambda r: "-----BEGIN PUBLIC KEY-----\n" + _b64(r, 48) + "\n-----END PUBLIC KEY-----"),
    LookAlike("gpg_fingerprint", lambda r: "fingerprint: " + " ".join(rnd(r, 4, "0123456789ABCDEF") for _ in range(10))),
    LookAlike("ip_addresses", lambda r: f"listening on 10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}:8080 and [fe80::{rnd(r, 4, HEX)}:{rnd(r, 4, HEX)}]"),
    LookAlike("timestamps", lambda r: f"2026-0{r.randint(1, 9)}-1{r.randint(0, 9)}T10:00:00.{r.randint(100, 999)}Z epoch {r.randint(1700000000000, 1800000000000)}"),
    LookAlike("csp_hash", lambda r: f"Content-Security-Policy: script-src 'self' 'sha256-{_b64(r, 32)}'"),
    LookAlike("sri_hash", lambda r: f'<link rel="stylesheet" href="/app.css" integrity="sha384-{_b64(r, 48)}">'),
    LookAlike("slack_ids", lambda r: f"channel C{rnd(r, 8, UPPER_ALNUM)} user U{rnd(r, 8, UPPER_ALNUM)}"),
    LookAlike("stripe_publishable", lambda r: f"Stripe('pk_test_{rnd(r, 24)}')"),
    LookAlike("analytics_id", lambda r: f"gtag('config', 'G-{rnd(r, 10, UPPER_ALNUM)}')"),
    LookAlike("base64_cursor", lambda r: "next page cursor=" + base64.b64encode(json.dumps({"page": r.randint(2, 99)}).encode()).decode()),
    LookAlike("base64_text", lambda r: "echo " + base64.b64encode(f"hello world {r.randint(1, 999)}".encode()).decode() + " | base64 -d"),
    LookAlike("token_prose", lambda r: "Bearer tokens are sent in the Authorization header; rotate your secret key often."),
    LookAlike("keyword_code", lambda r: "primary_key = 'id'\nsort_key = lambda item: item.name\nmax_tokens = 4096\ntoken_type = 'bearer'"),
    LookAlike("password_reset_url", lambda r: f'password_reset_url = "https://app.example.com/reset/{rnd(r, 6, string.digits)}"'),
    LookAlike("secret_from_env", lambda r: "SECRET_KEY = os.environ['SECRET_KEY']\npassword = getpass.getpass()"),
    LookAlike("mysql_prompt", lambda r: "mysql -u root -p app_db"),
    LookAlike("docker_stdin", lambda r: 'echo "$CR_TOKEN" | docker login -u ci --password-stdin cr.internal.example'),
    LookAlike("hf_download", lambda r: "from huggingface_hub import hf_hub_download\nhf_hub_download(repo_id='org/model-base')"),
    LookAlike("azure_key_name", lambda r: "SharedAccessKeyName=RootManageSharedAccessKey;EntityPath=orders"),
    LookAlike("shopify_domain", lambda r: f"X-Shopify-Shop-Domain: shop-{rnd(r, 6, LOWER_ALNUM)}.myshopify.com"),
    LookAlike("discord_channel", lambda r: f"https://discord.com/channels/{rnd(r, 18, string.digits)}/{rnd(r, 18, string.digits)}"),
    LookAlike("terraform_ids", lambda r: f"sg-{rnd(r, 17, HEX)} i-{rnd(r, 17, HEX)} vpc-{rnd(r, 17, HEX)}"),
    LookAlike("container_id", lambda r: f"container {rnd(r, 64, HEX)} exited (0)"),
    LookAlike("test_card", lambda r: "card 4242 4242 4242 4242 exp 12/34 cvc 123"),
    LookAlike("email", lambda r: f"Author: Jane Doe <jane.{rnd(r, 5, LOWER_ALNUM)}@example.org>"),
]


# ---------------------------------------------------------------------- channels


def json_unicode_escape(text: str) -> str:
    """How an aggressive JSON encoder writes a string: every non-alphanumeric as ``\\u00XX``."""
    return "".join(c if c.isalnum() and c.isascii() else f"\\u{ord(c):04x}" for c in text)


def html_entities(text: str) -> str:
    """HTML-escaped, with ``=``, ``:`` and ``/`` as numeric entities too (as some pages do)."""
    return html.escape(text).replace("=", "&#61;").replace(":", "&#58;").replace("/", "&#x2F;")


@dataclass(frozen=True)
class Plant:
    kind: str
    channel: str
    text: str  # the text put into the channel (a secret: its snippet; a look-alike: itself)
    value: str  # a secret's bare value ("" for a look-alike)
    cores: tuple[str, ...]  # a secret: what must not reach the server; a look-alike: what must
    secret: bool


CLAUDE_CHANNELS = ("claude_user", "claude_tool_input", "claude_tool_output", "claude_output_urlencoded",
                   "claude_output_json_escaped", "claude_output_html")
CHROME_CHANNELS = ("chrome_path", "chrome_query", "chrome_fragment", "chrome_title", "chrome_urlencoded",
                   "chrome_double_encoded", "chrome_search_term", "chrome_html_title")
FIREFOX_CHANNELS = ("firefox_path", "firefox_query", "firefox_title", "firefox_description")
SNIPPET_FILES = {"file_code": "notes.py", "file_shell": "run.sh", "file_markdown": "NOTES.md",
                 "file_json": "note.json", "file_json_escaped": "escaped.json", "file_yaml": "notes.yaml",
                 "file_html": "page.html"}
KEYED_FILES = {"file_ini": "service.ini", "file_dotenv": "dotenv.txt", "file_toml": "settings.toml",
               "file_yaml_keyed": "config.yaml", "file_json_keyed": "config.json", "file_k8s_stringdata":
               "secret-string.yaml", "file_k8s_data": "secret-data.yaml", "file_netrc": "netrc.txt",
               "file_aws_credentials": "aws-credentials.ini"}
CHANNELS = CLAUDE_CHANNELS + CHROME_CHANNELS + FIREFOX_CHANNELS + tuple(SNIPPET_FILES) + tuple(KEYED_FILES)
ONE_LINE_ONLY = {"file_ini", "file_netrc", "file_aws_credentials"}  # formats with no multi-line values
# The other coding agents, each with the channels its sessions have: what the user typed, what the
# assistant answered, a tool call's input (a shell command) and a tool's output (a file it read).
AGENTS = ("codex", "gemini", "cursor", "aider", "opencode")
AGENT_ROLES = ("user", "assistant", "tool_input", "tool_output")
AGENT_CHANNELS = tuple(f"{agent}_{role}" for agent in AGENTS for role in AGENT_ROLES)


def plants(seed: int = 12) -> list[Plant]:
    """Every secret kind and every look-alike in every channel, each with fresh values. The agent
    channels draw from a generator of their own, so the other channels' values stay as they were."""
    out: list[Plant] = []
    for rng, channels in ((random.Random(seed), CHANNELS), (random.Random(seed + 1), AGENT_CHANNELS)):
        for kind in SECRET_KINDS:
            for channel in channels:
                fake = kind.make(rng)
                if channel in ONE_LINE_ONLY and "\n" in fake.value:
                    continue
                cores = fake.cores
                if channel == "file_k8s_data":
                    cores = cores + (base64.b64encode(fake.value.encode()).decode().rstrip("="),)
                out.append(Plant(kind.name, channel, fake.snippet, fake.value, cores, True))
        for look in LOOKALIKES:
            for channel in channels:
                text = look.make(rng)
                out.append(Plant(look.name, channel, text, "", (), False))
    return out


# ---------------------------------------------------------------------- channel encodings


def browser_url(p: Plant, n: int) -> tuple[str, str, str]:
    """(url, title, description) of a browser plant; ``n`` keeps the URLs distinct."""
    s = p.text
    c = p.channel.split("_", 1)[1]
    title = f"page {n}"
    desc = ""
    if c == "path":
        url = f"https://paste.example.net/view/{n}/{quote(s, safe='/:=@+,;')}"
    elif c == "query":
        url = f"https://www.google.com/search?q={quote_plus(s)}&sourceid=chrome&ie=UTF-8&n={n}"
    elif c == "fragment":
        url = f"https://notes.example.net/app/{n}#{quote(s, safe=':=/&?@')}"
    elif c == "urlencoded":
        url = f"https://www.bing.com/search?q={quote(s, safe='')}&form=QBLH&n={n}"
    elif c == "double_encoded":
        inner = f"https://app.example.net/run?cmd={quote(s, safe='')}"
        url = f"https://accounts.example.net/login?n={n}&continue={quote(inner, safe='')}"
    elif c == "search_term":
        url = f"https://duckduckgo.com/?q=term{n}"
    elif c == "html_title":
        url, title = f"https://forum.example.net/t/{n}", f"{html_entities(s)} - Forum"
    elif c == "description":
        url, desc = f"https://wiki.example.net/page/{n}", s
    else:  # title
        url, title = f"https://chat.example.net/c/{n}", f"{s} - Chat"
    return url, title, desc


def expected_browser_text(p: Plant, url: str, title: str, desc: str) -> str:
    """Where a browser plant's text must appear in the item (for look-alikes)."""
    c = p.channel.split("_", 1)[1]
    if c in ("title", "html_title"):
        return " ".join(title.split())
    if c == "description":
        return desc
    if c == "search_term":
        return p.text
    return url


# how a plant is written in a session, by the role of its channel (Claude's and the agents' alike)
_AROUND: dict[str, Callable[[str], str]] = {
    "user": lambda s: f"Why does this fail?\n{s}\nplease check",
    "assistant": lambda s: f"The service reads this at startup:\n{s}\nThat is where the value comes from.",
    "tool_input": lambda s: f"cat > /tmp/notes.txt <<'EOF'\n{s}\nEOF",
    "tool_output": lambda s: f"{s}\nexit status 0",
    # Claude's tool outputs in encoded forms
    "output_urlencoded": lambda s: f"GET https://api.internal.example/debug?q={quote_plus(s)}&n=1 200",
    "output_json_escaped": lambda s: '{"note": "' + json_unicode_escape(s) + '"}',
    "output_html": lambda s: f"<pre>{html_entities(s)}</pre>",
}


def claude_text(p: Plant) -> str:
    """The text of a Claude plant as it is written into the transcript."""
    return _AROUND[p.channel.removeprefix("claude_")](p.text)


def agent_role(p: Plant) -> str:
    """The role of an agent plant's channel: user, assistant, tool_input or tool_output."""
    return p.channel.split("_", 1)[1]


def agent_text(p: Plant) -> str:
    """The text of an agent plant as the session holds it (before the agent's own encoding: a
    JSON string in a JSON string for Codex's arguments, Cursor's ``rawArgs`` and ``result``)."""
    return _AROUND[agent_role(p)](p.text)


_ENV_NAMES = ("API_TOKEN", "DB_PASSWORD", "CLIENT_SECRET", "SERVICE_API_KEY")
_JSON_NAMES = ("client_secret", "hmac", "apiKey", "password", "access_token")
_INI_NAMES = ("password", "secret", "token", "api_key")


def _yaml_value(v: str, indent: str) -> str:
    if "\n" in v:
        return "|\n" + "\n".join(indent + "  " + line for line in v.split("\n"))
    return "'" + v.replace("'", "''") + "'"


def _toml_string(v: str) -> str:
    return json.dumps(v)  # a JSON string is a valid TOML basic string


def file_entry(p: Plant, i: int) -> str:
    """The plant's entry in its file (files hold every kind of one channel)."""
    s, v = p.text, p.value
    c = p.channel
    if c == "file_code":
        return f'NOTE_{i} = """\n{s}\n"""\n'
    if c == "file_shell":
        return f"# step {i}\n{s}\n"
    if c == "file_markdown":
        return f"## Note {i}\n\n```\n{s}\n```\n"
    if c == "file_yaml":
        return f"note_{i}: " + _yaml_value(s, "") + "\n"
    if c == "file_html":
        return f"<p>note {i}</p><pre>{html_entities(s)}</pre>\n"
    if not p.secret:  # look-alikes under neutral names in the keyed formats
        if c in ("file_ini", "file_netrc", "file_aws_credentials", "file_toml", "file_dotenv"):
            return "".join(f"# {line}\n" for line in s.split("\n"))
        if c in ("file_yaml_keyed", "file_k8s_stringdata", "file_k8s_data"):
            return f"  note_{i}: " + _yaml_value(s, "  ") + "\n"
    if c == "file_ini":
        return f"[service_{i}]\nhost = svc{i}.internal.example\n{_INI_NAMES[i % 4]} = {v}\n\n"
    if c == "file_dotenv":
        return f"{_ENV_NAMES[i % 4]}_{i}={json.dumps(v) if any(ch.isspace() for ch in v) else v}\n"
    if c == "file_toml":
        return f"[service_{i}]\nname = \"svc{i}\"\n{_INI_NAMES[i % 4]} = {_toml_string(v)}\n\n"
    if c == "file_yaml_keyed":
        return f"  service_{i}:\n    {_INI_NAMES[i % 4]}: " + _yaml_value(v, "    ") + "\n"
    if c == "file_k8s_stringdata":
        return f"  value-{i}: " + _yaml_value(v, "  ") + "\n"
    if c == "file_k8s_data":
        return f"  blob-{i}: {base64.b64encode(v.encode()).decode()}\n"
    if c == "file_netrc":
        return f"machine svc{i}.internal.example login deploy password {v}\n"
    if c == "file_aws_credentials":
        return f"[profile-{i}]\naws_secret_access_key = {v}\nregion = eu-west-1\n\n"
    raise ValueError(c)


def file_text(channel: str, entries: list[str], secret: bool) -> str:
    """A whole file of one channel."""
    if channel == "file_json":
        return json.dumps({f"note_{i}": e for i, e in enumerate(entries)}, indent=2) + "\n"
    if channel == "file_json_escaped":
        return "{\n" + ",\n".join(f'  "note_{i}": "{json_unicode_escape(e)}"' for i, e in enumerate(entries)) + "\n}\n"
    if channel == "file_json_keyed":
        if secret:
            return json.dumps({f"service_{i}": {_JSON_NAMES[i % 5]: e} for i, e in enumerate(entries)}, indent=2) + "\n"
        return json.dumps({f"note_{i}": e for i, e in enumerate(entries)}, indent=2) + "\n"
    body = "".join(entries)
    if channel == "file_yaml_keyed":
        return "services:\n" + body if secret else "notes:\n" + body
    if channel in ("file_k8s_stringdata", "file_k8s_data"):
        if not secret:  # look-alikes: the same layout in a ConfigMap, whose data is not secret
            return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-notes\ndata:\n{body}"
        key = "stringData" if channel == "file_k8s_stringdata" else "data"
        return f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-{key.lower()}\ntype: Opaque\n{key}:\n{body}"
    if channel == "file_shell":
        return "#!/bin/sh\nset -e\n" + body
    return body


def json_entry_text(p: Plant) -> str:
    """What a JSON file stores for a plant (the snippet, or for keyed files the value)."""
    return p.value if p.secret and p.channel == "file_json_keyed" else p.text
