"""The `brain` command, composed from each area's commands (main.py). The laptop-side commands that only
talk to brain-api over HTTP (ask, forget, gpu, recent) live here too; the server-side ones are loaded lazily so
a laptop install without the server extra still runs."""
