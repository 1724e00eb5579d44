"""Take the README's screenshots of the web page (docs/img/search.png, docs/img/timeline.png).

A brain-api in this process on a loopback port, on a temporary database holding a made-up day of
work, photographed by headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by
Selenium from requirements-dev.txt). Nothing is read from your own brain.

    .venv/bin/python scripts/readme_screenshots.py          # writes docs/img/*.png
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "app"))

TOKEN = "readme-screenshots-" + "t" * 24
SPOTTER = "/home/dev/projects/spotter"
SID = "55604662-cf2a-4331-851a-ec234028f8ca"
DAY = "2026-03-10"


def items() -> list[dict]:
    def t(hm: str) -> str:
        return f"{DAY}T{hm}:00Z"

    return [
        {"id": f"claude:{SID}", "source": "claude", "title": "mix phx.server doesn't start", "project": SPOTTER,
         "created_at": t("09:12"), "updated_at": t("09:48"),
         "content": "user: mix phx.server doesn't start: eaddrinuse on port 4000\nassistant: Another process holds "
                    "port 4000. Find it with lsof -i :4000, or move the dev server to 4001 in config/dev.exs.\n"
                    "tool Edit: config/dev.exs\nuser: that fixed it, thanks",
         "meta": {"resume": f"claude --resume {SID}", "user_messages": 2}},
        {"id": "agent:codex:7f3e", "source": "agent", "title": "Add a health check endpoint", "project": SPOTTER,
         "created_at": t("14:05"), "updated_at": t("14:31"),
         "content": "user: add a /health endpoint that checks the Repo\nassistant: Added HealthController with a "
                    "SELECT 1 through Ecto.", "meta": {"agent": "codex", "resume": "codex resume 7f3e",
                                                      "user_messages": 3}},
        {"id": f"file:laptop:{SPOTTER}/config/dev.exs", "source": "file", "title": "spotter/config/dev.exs",
         "project": SPOTTER, "created_at": t("09:40"), "updated_at": t("09:40"),
         "content": "import Config\n\nconfig :spotter, SpotterWeb.Endpoint,\n  http: [ip: {127, 0, 0, 1}, port: 4001],\n"
                    "  check_origin: false,\n  debug_errors: true\n",
         "meta": {"path": f"{SPOTTER}/config/dev.exs", "rel_path": "config/dev.exs", "line_count": 6,
                  "language": "elixir"}},
        {"id": f"file:laptop:{SPOTTER}/lib/spotter_web/controllers/health_controller.ex", "source": "file",
         "title": "spotter/lib/spotter_web/controllers/health_controller.ex", "project": SPOTTER,
         "created_at": t("14:29"), "updated_at": t("14:29"),
         "content": "defmodule SpotterWeb.HealthController do\n  use SpotterWeb, :controller\nend\n",
         "meta": {"path": f"{SPOTTER}/lib/spotter_web/controllers/health_controller.ex", "line_count": 3}},
        {"id": "browser:chrome-default:1", "source": "browser", "title": "Phoenix.Endpoint — Phoenix v1.7",
         "uri": "https://hexdocs.pm/phoenix/Phoenix.Endpoint.html", "created_at": t("09:20"),
         "updated_at": t("09:20"), "content": "Phoenix.Endpoint: the http and https port options of the server",
         "meta": {"domain": "hexdocs.pm", "visit_count": 1}},
        {"id": "browser:chrome-default:2", "source": "browser", "title": "eaddrinuse when starting mix phx.server",
         "uri": "https://elixirforum.com/t/eaddrinuse-mix-phx-server/5312", "created_at": t("09:25"),
         "updated_at": t("09:31"), "content": "eaddrinuse: the port 4000 is already in use by another server",
         "meta": {"domain": "elixirforum.com", "visit_count": 2}},
        {"id": "note:standup", "source": "note", "title": "Stand-up notes", "created_at": t("10:00"),
         "updated_at": t("10:00"), "content": "Port clash fixed; next: health check for the load balancer."},
    ]


def serve(app) -> tuple[str, object]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def main() -> int:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from brain.api import create_app
    from brain.core.embed import get_embedder, get_text_model
    from brain.core.embed_worker import EmbedWorker

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        print("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)", file=sys.stderr)
        return 1
    out = ROOT / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"server.db_path": f"{tmp}/brain.db", "server.api_tokens": [TOKEN]})
        client = app.test_client()
        assert client.post("/api/v1/items", json={"items": items()},
                           headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        cfg = app.config["BRAIN"]
        worker = EmbedWorker(cfg.server.db_path, get_text_model(cfg).model_id, lambda: get_embedder(cfg))
        worker.drain()
        worker.close()
        url, server = serve(app)
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,780",
                    "--hide-scrollbars"):
            opts.add_argument(arg)
        d = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
        try:
            d.get(url + "/signin")
            d.find_element(By.ID, "token").send_keys(TOKEN + "\n")
            WebDriverWait(d, 20).until(lambda d: d.find_elements(By.ID, "q"))
            d.get(url + "/search?q=port+4000+eaddrinuse")
            d.execute_script("document.activeElement.blur()")
            d.save_screenshot(str(out / "search.png"))
            d.set_window_size(1100, 1020)
            d.get(f"{url}/timeline?day={DAY}")
            d.save_screenshot(str(out / "timeline.png"))
        finally:
            d.quit()
            server.shutdown()  # type: ignore[attr-defined]
    print(f"wrote {out / 'search.png'} and {out / 'timeline.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
