"""The output folder of a tuning run: fresh, resumed from its checkpoints, or refused.

Both tuning commands keep their checkpoints in ``OUT/checkpoints`` beside a ``recipe.json``
(the settings that define the run): running the same command again resumes; a different
recipe, or a finished model already in ``OUT``, is refused unless ``--overwrite`` (or, for
checkpoints, ``--no-resume``) says to start again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mathcore.options import option
from mathcore.outputs import write_text

CHECKPOINTS = "checkpoints"
RECIPE_FILE = "recipe.json"


# Fields both tuning configs have (each class needs its own field object: hence functions).
def exclude_qrels_option() -> Any:
    """``--exclude-qrels FILE...``: the benchmark data no tuning run may see."""
    return option(factory=list, help="qrels whose queries and judged records are never "
                  "trained on, mined or validated on (repeatable)", metavar="FILE")


def seed_option() -> Any:
    return option(0, "random seed")


def resume_option() -> Any:
    """``--no-resume``: start again instead of resuming from ``OUT/checkpoints``."""
    return option(True, "discard checkpoints of an earlier run in OUT", negate="--no-resume")


def overwrite_option() -> Any:
    return option(False, "replace a finished model in OUT")


class OutputFolderError(Exception):
    """An output folder that cannot be used as asked."""


def prepare_output(out: Path, recipe: dict, finished_file: str, resume: bool,
                   overwrite: bool) -> bool:
    """Make ``out/checkpoints`` ready; True when the run there should resume.

    Raises:
        OutputFolderError: when *out* holds a finished model, other files, or checkpoints of
            another recipe, and neither ``overwrite`` nor (for checkpoints) ``resume=False``
            allows replacing them.
    """
    out = Path(out)
    ckpt = out / CHECKPOINTS
    if (out / finished_file).is_file() and not ckpt.is_dir():
        if not overwrite:
            raise OutputFolderError(f"{out} already holds a model tuned with another recipe; "
                                    "pass --overwrite to replace it")
        shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()) and not ckpt.is_dir():
        if not overwrite:
            raise OutputFolderError(f"{out} exists and is not empty; choose a new folder or "
                                    "pass --overwrite")
        shutil.rmtree(out)
    if ckpt.is_dir():
        saved = ckpt / RECIPE_FILE
        if resume and saved.is_file() and json.loads(saved.read_text()) == recipe:
            return True
        if resume and not overwrite:
            raise OutputFolderError(f"{ckpt} holds checkpoints of another recipe; pass "
                                    "--no-resume to start again")
        shutil.rmtree(ckpt)
    ckpt.mkdir(parents=True, exist_ok=True)
    write_text(ckpt / RECIPE_FILE, json.dumps(recipe, indent=1))
    return False
