"""A pickle payload for the safe-loading tests: unpickling it creates a marker file, so a test can assert it never ran."""

from __future__ import annotations

from pathlib import Path


class Payload:
    """Unpickling this calls open(marker, "w"): a harmless stand-in for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")
