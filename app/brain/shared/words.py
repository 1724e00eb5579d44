"""Counted nouns in what a person reads: "1 item", "2 items", never "1 items"."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, in the plural (``noun + "s"`` unless given) for any count but one."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
