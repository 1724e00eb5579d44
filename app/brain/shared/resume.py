"""The one-line command that reopens a coding-agent session where it ran.

Why one function: the web page, the timeline (``brain recent``) and the MCP tools all print it,
and a developer pastes it into a shell. The project folder is quoted for that shell (a path with a
space or a ``;`` must not split or run anything), and a resume command that already changes folder
(Aider's and Gemini's carry their ``cd``) is kept as it is instead of getting a second one.
"""

from __future__ import annotations

import shlex


def reopen_command(project: str | None, resume: object) -> str | None:
    """``cd '<project>' && <resume>``; ``resume`` alone without a project; None without a resume
    (missing, blank, or not text: collectors own ``meta.resume`` and the readers are tolerant)."""
    if not isinstance(resume, str) or not resume.strip():
        return None
    if project and not resume.startswith("cd "):
        return f"cd {shlex.quote(project)} && {resume}"
    return resume
