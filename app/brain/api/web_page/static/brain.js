// brain's web page: the parts that need a script. Everything else works without it.
// - the browser's time zone, so the server renders days and times in it (a cookie)
// - "/" focuses the search box; Ctrl+Enter asks
// - copy buttons
// - the answer streaming in: fetch POST /api/v1/ask {stream: true} with the session cookie and
//   its CSRF token, read as server-sent events from a ReadableStream (docs/API.md, "Ask")
// No HTML is ever built from text: every string goes in through textContent.
"use strict";

(function () {
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function setTimeZone() {
    let tz = "";
    try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return; }
    if (!tz || !/^[A-Za-z0-9_+\-/]+$/.test(tz)) return;
    const had = document.cookie.split("; ").find((c) => c.startsWith("brain_tz="));
    if (had === "brain_tz=" + tz) return;
    document.cookie = "brain_tz=" + tz + "; path=/; max-age=31536000; samesite=strict";
    if (document.body.dataset.tz !== tz && !sessionStorage.getItem("brain_tz_reloaded")) {
      sessionStorage.setItem("brain_tz_reloaded", "1");
      location.reload();
    }
  }

  function shortcuts() {
    document.addEventListener("keydown", (ev) => {
      const q = document.getElementById("q");
      const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
      if (ev.key === "/" && q && !typing && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
        ev.preventDefault();
        q.focus();
        q.select();
      }
    });
  }

  function copyButtons() {
    document.addEventListener("click", async (ev) => {
      const button = ev.target.closest("button.copy");
      if (!button) return;
      const text = button.dataset.copy || "";
      let ok = false;
      try {
        // a clipboard that asks for permission may never answer: give it a moment, then select instead
        await Promise.race([navigator.clipboard.writeText(text),
          new Promise((resolve, reject) => setTimeout(() => reject(new Error("no clipboard")), 1500))]);
        ok = true;
      } catch (e) {
        const code = button.parentElement.querySelector("code");
        const range = document.createRange();
        range.selectNodeContents(code);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        ok = document.execCommand && document.execCommand("copy");
      }
      button.textContent = ok ? "Copied" : "Selected: press Ctrl+C";
      setTimeout(() => { button.textContent = "Copy"; }, 2500);
    });
  }

  // ------------------------------------------------------------------------------------ ask

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function itemHref(id) {
    return "/item/" + encodeURIComponent(id).replace(/%3A/g, ":").replace(/%2F/g, "/").replace(/%40/g, "@");
  }

  function minutes(seconds) {
    if (seconds < 90) return Math.round(seconds) + " seconds";
    return "about " + Math.round(seconds / 60) + " minutes";
  }

  function startMessage(data) {
    const took = data.elapsed_s >= 1 ? " (" + Math.round(data.elapsed_s) + " s so far)" : "";
    if (data.stage === "ready") return "The LLM is ready; writing the answer…";
    if (data.stage === "retrieval_only") return data.message;
    const usual = data.usual_s ? "this usually takes " + minutes(data.usual_s) :
      "this can take a few minutes" + (data.timeout_s ? " (at most " + minutes(data.timeout_s) + ")" : "");
    if (data.stage === "checking") return "Checking the GPU VM…";
    if (data.stage === "waiting_ollama") return "The GPU VM is up; waiting for the LLM to load — " + usual + took + ".";
    return "The GPU VM is starting — " + usual + took + ".";
  }

  function Asker(form) {
    const status = document.getElementById("ask-status");
    const answer = document.getElementById("ask-answer");
    const sources = document.getElementById("ask-sources");
    const button = form.querySelector('button[type="submit"]');
    let text = "";

    function say(message, kind) {
      status.textContent = message;
      status.className = kind === "error" ? "error" : "note";
    }

    function showSources(citations) {
      sources.replaceChildren();
      for (const c of citations || []) {
        const li = el("li", { id: "cite-" + c.n });
        li.append(el("span", { class: "icon icon-" + c.source, "aria-hidden": "true" }, ""));
        li.append(el("span", { class: "n" }, "[" + c.n + "] "));
        li.append(el("a", { href: itemHref(c.id) }, c.title || c.id));
        if (c.uri && /^https?:/.test(c.uri)) li.append(el("span", { class: "where" }, " " + c.uri));
        // FTS5 marks what matched as [word]: the page shows the words, not the brackets
        if (c.snippet) li.append(el("span", { class: "snippet" }, " " + c.snippet.replace(/\[(\w{1,60})\]/g, "$1")));
        sources.append(li);
      }
    }

    function linkCitations(citations) {
      // the answer again, with each [n] a link to its item
      const byN = new Map((citations || []).map((c) => [String(c.n), c]));
      answer.replaceChildren();
      const parts = text.split(/(\[\d+\])/);
      for (const part of parts) {
        const m = /^\[(\d+)\]$/.exec(part);
        const c = m && byN.get(m[1]);
        if (c) {
          answer.append(el("a", { href: itemHref(c.id), class: "cite", title: c.title || c.id }, part));
        } else {
          answer.append(document.createTextNode(part));
        }
      }
    }

    function failed(payload, status) {
      const err = (payload && payload.error) || {};
      let msg;
      if (err.code === "llm_unavailable") {
        msg = "The LLM is not answering: " + (err.message || err.reason) + ". Here is what the brain found:";
      } else if (err.code === "gpu_unavailable") {
        msg = "The GPU VM could not be started: " + err.message + ". Here is what the brain found:";
      } else if (status === 401) {
        msg = "Your session has ended: sign in again.";
      } else {
        msg = (err.message || "The ask failed (HTTP " + status + ").");
      }
      say(msg, "error");
      showSources(payload && payload.citations);
    }

    function handle(event, data) {
      if (event === "token") {
        if (!text) say("Writing the answer…");
        text += data.text;
        answer.textContent = text;
      } else if (event === "status") {
        say(startMessage(data), data.stage === "retrieval_only" ? "error" : "note");
      } else if (event === "done") {
        text = data.answer || text;
        linkCitations(data.citations);
        showSources(data.citations);
        const model = data.model ? " by " + data.model : "";
        say(data.retrieval_only ? "No LLM answer (" + data.reason + "); the sources are below." :
          "Answered" + model + " from " + (data.citations || []).length + " sources.");
      } else if (event === "error") {
        failed(data, 503);
      }
    }

    async function readEvents(resp) {
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data.push(line.slice(6));
          }
          if (data.length) handle(event, JSON.parse(data.join("\n")));
        }
      }
    }

    async function ask(ev) {
      ev.preventDefault();
      const question = form.question.value.trim();
      if (!question) { form.question.focus(); return; }
      const body = { question: question, stream: true };
      const source = form.querySelector('[name="source"]').value;
      const project = form.querySelector('[name="project"]').value.trim();
      if (source) body.source = source;
      if (project) body.project = project;
      text = "";
      answer.replaceChildren();
      sources.replaceChildren();
      say("Looking through your memory…");
      button.disabled = true;
      try {
        const resp = await fetch("/api/v1/ask", {
          method: "POST", credentials: "same-origin", body: JSON.stringify(body),
          headers: { "Content-Type": "application/json", "Accept": "text/event-stream", "X-CSRF-Token": csrf },
        });
        const type = resp.headers.get("Content-Type") || "";
        if (resp.ok && type.startsWith("text/event-stream")) {
          await readEvents(resp);
        } else {
          const payload = await resp.json().catch(() => ({}));
          if (resp.ok) handle("done", payload); else failed(payload, resp.status);
        }
      } catch (e) {
        say("brain-api did not answer (" + e.message + ").", "error");
      } finally {
        button.disabled = false;
      }
    }

    form.addEventListener("submit", ask);
    form.question.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); form.requestSubmit(); }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    setTimeZone();
    shortcuts();
    copyButtons();
    const form = document.getElementById("askform");
    if (form) Asker(form);
  });
})();
