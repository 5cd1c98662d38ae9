"""The error every Detect entry raises for a run that cannot go as asked; below both backends."""

from __future__ import annotations


class DetectError(ValueError):
    """A detection cannot run as asked; the message says why and what to do."""
