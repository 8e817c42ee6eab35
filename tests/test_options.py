"""Settings defined once: the flags of a config come from its dataclass, with the same defaults.

Every comparison is against the dataclass's own defaults (never a number written here), so a
default written differently in two places -- the config and a command's parser -- fails.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from dedup.finder import DedupConfig
from index.build import IndexConfig
from index.corpora import LoadConfig
from mathcore.mathml import Limits
from mathcore.options import add_options, from_args
from mathmatch.choose import ChooseConfig
from tuning.embedder import TuneConfig
from tuning.reranker import RerankTuneConfig

# What each command sets itself (positionals, paths, nested configs), as the CLI passes them.
GIVEN = {
    TuneConfig: {"corpora": [Path("corpus.jsonl")], "out": Path("tuned")},
    RerankTuneConfig: {"index": Path("idx"), "out": Path("rr")},
    LoadConfig: {"corpora": [Path("corpus.jsonl")], "out": Path("idx")},
    DedupConfig: {"index": Path("idx")},
    ChooseConfig: {"items": Path("items.jsonl")},
    Limits: {},
}
GIVEN[IndexConfig] = {"load": LoadConfig(**GIVEN[LoadConfig])}
CONFIGS = list(GIVEN)


def _parser(cls: type) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="test")
    add_options(parser, cls)
    return parser


def _cli_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli")]


def _default(field: dataclasses.Field):
    return field.default if field.default is not dataclasses.MISSING else field.default_factory()


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_parsed_defaults_build_the_dataclass_defaults(cls):
    args = _parser(cls).parse_args([])
    assert from_args(cls, args, **GIVEN[cls]) == cls(**GIVEN[cls])
    for f in _cli_fields(cls):
        assert getattr(args, f.name) == _default(f), f.name


@pytest.mark.parametrize("cls", [TuneConfig, RerankTuneConfig], ids=lambda c: c.__name__)
def test_a_given_flag_reaches_its_field(cls):
    args = _parser(cls).parse_args(["--lr", "1e-4", "--no-resume", "--seed", "7",
                                    "--exclude-qrels", "a.tsv", "b.tsv", "--exclude-qrels",
                                    "c.tsv", "--device", "cpu", "--overwrite"])
    cfg = from_args(cls, args, **GIVEN[cls])
    assert cfg.learning_rate == 1e-4 and cfg.resume is False and cfg.seed == 7
    assert cfg.exclude_qrels == [Path("a.tsv"), Path("b.tsv"), Path("c.tsv")]
    assert cfg.device == "cpu" and cfg.overwrite is True
    assert cfg == dataclasses.replace(cls(**GIVEN[cls]), learning_rate=1e-4, resume=False,
                                      seed=7, exclude_qrels=cfg.exclude_qrels, device="cpu",
                                      overwrite=True)


def test_the_flags_keep_their_command_line_names_and_conversions():
    emb = from_args(TuneConfig, _parser(TuneConfig).parse_args(
        ["--max-pairs-per-source", "0", "--epochs", "2", "--loss", "gist"]), **GIVEN[TuneConfig])
    assert emb.max_pairs_per_source is None  # 0 on the command line: no cap
    assert emb.epochs == 2.0 and emb.loss == "gist"
    rr = from_args(RerankTuneConfig, _parser(RerankTuneConfig).parse_args(
        ["--select", "uniform", "--no-residual", "--givens-weight", "0", "--qlora", "off"]),
        **GIVEN[RerankTuneConfig])
    assert (rr.select, rr.residual, rr.givens_weight, rr.qlora) == ("uniform", False, 0.0, "off")
    build = _parser(IndexConfig).parse_args(["--no-vectors", "--save-every", "10",
                                             "--approximate", "hnsw"])
    cfg = from_args(IndexConfig, build, **GIVEN[IndexConfig])
    assert (cfg.vectors, cfg.chunk_rows, cfg.approximate) == (False, 10, "hnsw")
    limits = from_args(Limits, _parser(Limits).parse_args(["--max-record-bytes", "100"]))
    assert limits == Limits(max_bytes=100)
    with pytest.raises(SystemExit):
        _parser(TuneConfig).parse_args(["--loss", "triplet"])  # choices come from the config


def test_help_shows_each_default_as_the_command_line_did(capsys):
    with pytest.raises(SystemExit):
        _parser(TuneConfig).parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for piece in ("learning rate (default: 2e-4 with --lora, 5e-5 without)", "epochs (default: 1)",
                  "cap each source's training pairs (default: 3000; 0: no cap)",
                  "(default: the epochs decide)", "--no-resume", "(repeatable)"):
        assert piece in text, piece
    assert "(default: [])" not in text


def test_from_args_reads_only_the_options_it_added():
    # Another option of the command with a field's name is not taken for that field.
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="dense,bm25")
    add_options(parser, RerankTuneConfig, only=("seed",))
    cfg = from_args(RerankTuneConfig, parser.parse_args(["--seed", "3"]),
                    **GIVEN[RerankTuneConfig])
    assert cfg.seed == 3 and cfg.mode == RerankTuneConfig(**GIVEN[RerankTuneConfig]).mode


# The command line: every option of these commands that carries a config field's name has that
# field's default. Until mathmatch.cli builds these flags with add_options, some fields go by
# other names there (--lr's dest `lr`, --no-resume's `no_resume`, ...); they are the only ones
# allowed to be missing.
CLI = [
    (["tune", "embedder", "c.jsonl", "--out", "o"], TuneConfig, {"learning_rate", "resume"}),
    (["tune", "reranker", "idx", "--out", "o"], RerankTuneConfig, {"learning_rate", "resume"}),
    (["tune", "embedder", "c.jsonl", "--out", "o"], Limits, {"max_bytes"}),
    (["index", "build", "c.jsonl", "--out", "o"], LoadConfig, set()),
    (["index", "build", "c.jsonl", "--out", "o"], IndexConfig, {"vectors", "chunk_rows"}),
    (["index", "build", "c.jsonl", "--out", "o"], Limits, {"max_bytes"}),
    (["dedup", "idx"], DedupConfig, set()),
    (["choose", "--items", "items.jsonl"], ChooseConfig, set()),
]


@pytest.mark.parametrize("argv,cls,unwired", CLI, ids=lambda x: x.__name__ if isinstance(x, type)
                         else None)
def test_the_command_line_has_the_configs_defaults(argv, cls, unwired):
    from mathmatch.cli import build_parser

    args = build_parser().parse_args(argv)
    missing = set()
    for f in _cli_fields(cls):
        if not hasattr(args, f.name):
            missing.add(f.name)
            continue
        assert getattr(args, f.name) == _default(f), f"{' '.join(argv[:2])}: {f.name}"
    assert missing <= unwired
