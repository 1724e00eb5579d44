"""brain: a self-hosted second brain for a software developer."""

__version__ = "0.1.0"
