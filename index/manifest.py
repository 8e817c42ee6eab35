"""``manifest.json``: what an index folder holds, and the checks made when it is loaded.

The manifest is plain JSON with sorted keys, rewritten atomically.  Later stages add their own
section (``dense``, ``lexical``) next to the store's; loading checks that each section still
matches the store (its checksum and count) and names what to do when it does not.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path
from typing import Any

from index.layout import MANIFEST
from mathcore import __version__

FORMAT_VERSION = 1


class ManifestError(RuntimeError):
    """An index folder whose manifest is missing, of another version, or out of date."""


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_manifest(index_dir: Path) -> dict[str, Any]:
    """The manifest of an index folder.

    Raises:
        ManifestError: when it is missing, unreadable, or of a format this version cannot
            read.
    """
    path = Path(index_dir) / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{index_dir}: not an index folder (no {MANIFEST}); "
                            "create one with `mathmatch index build CORPUS --out DIR`")
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read ({exc})") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:  # bad JSON, or bad UTF-8
        raise ManifestError(f"{path}: not valid JSON ({exc}): the manifest is damaged; "
                            "rebuild the index with `mathmatch index build CORPUS... --out "
                            "NEW_DIR`") from exc
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: expected a JSON object, found {type(data).__name__}: the "
                            "manifest is damaged; rebuild the index with "
                            "`mathmatch index build CORPUS... --out NEW_DIR`")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ManifestError(f"{path}: format version {version}, this mathmatch "
                            f"({__version__}) reads {FORMAT_VERSION}; rebuild the index")
    return data


def write_manifest(index_dir: Path, data: dict[str, Any]) -> Path:
    """Write the manifest atomically (a crash leaves the old one or the new one, never half)."""
    path = Path(index_dir) / MANIFEST
    data = dict(data)
    data["format_version"] = FORMAT_VERSION
    data["mathmatch_version"] = __version__
    data["updated"] = now()
    data.setdefault("created", data["updated"])
    data.setdefault("python", platform.python_version())
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_or_new(index_dir: Path) -> dict[str, Any]:
    """The existing manifest, or an empty one for a new index folder."""
    try:
        return read_manifest(index_dir)
    except ManifestError:
        if (Path(index_dir) / MANIFEST).is_file():
            raise
        return {}
