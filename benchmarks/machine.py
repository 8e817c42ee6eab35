"""What every benchmark shares: the dev data's place, the machine, and writing results."""

from __future__ import annotations

import json
from pathlib import Path

from mathcore.machine import blas, describe, machine, peak_rss_mib

__all__ = ["DEFAULT_DATA", "blas", "describe", "machine", "peak_rss_mib", "save_result"]

# The dev data (see its README): beside the repository, as CI lays it out.
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def save_result(path: Path, result: dict, sort_keys: bool = False) -> None:
    """Write a benchmark's result as indented JSON, making its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, sort_keys=sort_keys) + "\n", encoding="utf-8")
