"""The `brain` command, composed from each area's commands (main.py). The laptop-side commands that only
talk to brain-api over HTTP (ask, forget, gpu, recent) live here too; the server-side ones are loaded lazily so
a laptop install without the server extra still runs."""

from brain.shared import hook_deadline

# The SessionStart hook's 2 s count from the process's start: armed here, before `brain.cli.main`
# imports click and the settings (0.3 s idle, over 1.5 s on a loaded 2-core laptop).
hook_deadline.arm()
