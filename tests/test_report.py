"""``benchmarks.report``: the generated results page and CLI reference (and the matrix's saving).

Everything is written under ``tmp_path``; the real parser is only read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from benchmarks import matrix, report
from mathmatch.cli import build_parser

MRR = "systems.hybrid.metrics.all.mrr@10"
SPEED = "best_records_per_second"
MACHINE = {"cpu": "Test CPU 9000", "cores": 2, "memory_gib": 8.0, "gpu": None,
           "python": "3.11.7", "date": "2030-01-02T03:04:05+00:00", "git": "abc1234"}


def _condition(folder: Path) -> Path:
    folder.mkdir()
    (folder / "toy.yaml").write_text(
        "name: toy\n"
        "description: >\n  A toy condition\n  over two lines.\n"
        "commands:\n  - mathmatch -q bench {work}/idx --out {work}/toy.json\n"
        "results: \"{work}/toy.json\"\n"
        "expected:\n"
        f"  - {{figure: {MRR}, value: 0.936, tolerance: 0.01}}\n"
        f"  - {{figure: {SPEED}, min: 5000, tolerance: 0.25}}\n", encoding="utf-8")
    return folder


def _bench_results() -> dict:
    return {"systems": {"hybrid": {"metrics": {
                "all": {"recall@1": 0.9113, "mrr@10": 0.9361},
                "gsm8k": {"recall@1": 0.987, "mrr@10": 0.993}}}},
            "metrics": ["recall@1", "mrr@10"], "queries": {"all": 1500, "gsm8k": 700},
            SPEED: 4200.0, "machine": MACHINE}


def _row(page: str, figure: str) -> list[str]:
    lines = [line for line in page.splitlines() if line.startswith(f"| `{figure}` |")]
    assert len(lines) == 1, lines
    return [cell.strip() for cell in lines[0].strip("|").split("|")]


def test_results_page_shows_saved_verdicts(tmp_path):
    conditions = _condition(tmp_path / "conditions")
    results = tmp_path / "results"
    results.mkdir()
    (results / "toy.verdicts.json").write_text(json.dumps({
        "condition": "toy", "date": MACHINE["date"], "machine": MACHINE,
        "rows": [{"figure": MRR, "expected": 0.936, "got": 0.9361, "verdict": "OK"}]}))
    (results / "toy.json").write_text(json.dumps(_bench_results()))

    page = report.render_results(conditions, results)

    assert page.startswith("# Results")
    assert "python -m benchmarks.report results" in page.split("\n\n")[1]
    assert "A toy condition over two lines." in page
    assert "mathmatch -q bench {work}/idx --out {work}/toy.json" in page
    assert _row(page, MRR) == [f"`{MRR}`", "0.936 (±0.01)", "0.9361", "OK"]
    # A figure the saved run does not hold is not rerun, with its expected value.
    assert _row(page, SPEED) == [f"`{SPEED}`", ">= 5000 (±0.25 as a fraction)", "—", "not rerun"]
    assert "| [toy](#toy) | 2030-01-02T03:04:05+00:00 | 1 | 0 | 0 | 1 |" in page
    assert "Test CPU 9000, 2 cores" in page
    # The per-source table of the bench-format results file.
    assert "| `hybrid` | 1500 | 0.911 | 0.936 |" in page
    assert "| — gsm8k | 700 | 0.987 | 0.993 |" in page


def test_results_page_without_saved_run_says_not_rerun(tmp_path):
    conditions = _condition(tmp_path / "conditions")
    page = report.render_results(conditions, tmp_path / "no-results")

    assert _row(page, MRR) == [f"`{MRR}`", "0.936 (±0.01)", "—", "not rerun"]
    assert _row(page, SPEED)[3] == "not rerun"
    assert "| [toy](#toy) | not rerun | 0 | 0 | 0 | 2 |" in page
    section = _section(page, "toy")
    assert "Not rerun" in section
    assert "| OK |" not in section and "| FAIL |" not in section


def test_matrix_saves_what_the_page_reads(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "toy.json").write_text(json.dumps(_bench_results()))
    cond = {"name": "toy", "results": "{work}/toy.json",
            "extra_results": {"tuning": "{work}/tuning.json"}}
    (work / "tuning.json").write_text(json.dumps({"seconds": 12.5}))
    rows = [(MRR, 0.936, 0.9361, "OK"), (SPEED, ">= 5000", 4200.0, "OKish")]
    results = tmp_path / "results"

    matrix.keep_results(cond, rows, tmp_path / "data", work, "python", dest=results)

    assert json.loads((results / "toy.json").read_text()) == _bench_results()
    assert json.loads((results / "toy.tuning.json").read_text()) == {"seconds": 12.5}
    verdicts = json.loads((results / "toy.verdicts.json").read_text())
    assert verdicts["date"] == MACHINE["date"] and verdicts["machine"] == MACHINE
    assert verdicts["rows"][1] == {"figure": SPEED, "expected": ">= 5000", "got": 4200.0,
                                   "verdict": "OKish"}
    page = report.render_results(_condition(tmp_path / "conditions"), results)
    assert _row(page, SPEED) == [f"`{SPEED}`", ">= 5000 (±0.25 as a fraction)", "4,200.0",
                                 "OKish"]


def test_matrix_keeps_no_stale_results_after_a_failed_command(tmp_path):
    (tmp_path / "toy.json").write_text(json.dumps(_bench_results()))  # an earlier run's
    cond = {"name": "toy", "results": "{work}/toy.json"}
    rows = [("(command)", "mathmatch bench ...", "exit 2", "FAIL")]

    matrix.keep_results(cond, rows, tmp_path, tmp_path, "python", dest=tmp_path / "results")

    assert not (tmp_path / "results" / "toy.json").exists()
    page = report.render_results(_condition(tmp_path / "conditions"), tmp_path / "results")
    assert _row(page, "(command)")[2:] == ["exit 2", "FAIL"]
    assert _row(page, MRR)[3] == "not rerun"


def _leaf_commands(parser: argparse.ArgumentParser, words: tuple = ()) -> list[tuple]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(words, parser)]
    return [leaf for a in subs for name, p in a.choices.items()
            for leaf in _leaf_commands(p, words + (name,))]


def _section(page: str, title: str) -> str:
    head = f"\n## {title}\n"
    assert head in page, title
    return page.split(head, 1)[1].split("\n## ", 1)[0]


def test_cli_page_documents_every_command_of_the_real_parser():
    parser = build_parser()
    page = report.render_cli(parser)
    leaves = _leaf_commands(parser)
    names = {" ".join(words) for words, _ in leaves}
    assert {"index build", "index info", "index add", "index remove", "match", "bench", "dedup",
            "choose", "tune embedder", "tune reranker"} <= names
    assert page.startswith("# Command-line reference")
    assert "python -m benchmarks.report cli" in page.split("\n\n")[1]
    for words, sub in leaves:
        body = _section(page, " ".join(("mathmatch", *words)))
        assert f"usage: mathmatch {' '.join(words)}" in body
        for action in sub._actions:
            if action.help == argparse.SUPPRESS or not action.option_strings:
                continue
            # Every option is on the page: in its command's section, or once for all commands.
            assert any(opt in body or f"`{opt}" in page.split("\n## ", 1)[0]
                       for opt in action.option_strings), (words, action.option_strings)


def test_cli_walker_follows_any_depth_and_expands_help():
    parser = argparse.ArgumentParser(prog="toy", description="A toy tool.")
    parser.add_argument("-v", action="store_true", help="chatty")
    level1 = parser.add_subparsers(dest="a").add_parser("deep", help="the deep group")
    level1.add_argument("-v", action="store_true", help="chatty")
    level2 = level1.add_subparsers(dest="b").add_parser("deeper", aliases=["dr"], help="one more")
    level2.add_argument("-v", action="store_true", help="chatty")
    leaf = level2.add_subparsers(dest="c").add_parser("leaf", help="the leaf",
                                                      description="Does the leaf thing.")
    leaf.add_argument("-v", action="store_true", help="chatty")
    leaf.add_argument("--size", type=int, default=7, metavar="N",
                      help="how big (default: %(default)s)")
    leaf.add_argument("--kind", choices=("a", "b"), required=True, help="which kind")

    page = report.render_cli(parser)

    assert "| [`toy deep deeper leaf`](#toy-deep-deeper-leaf) | the leaf |" in page
    body = _section(page, "toy deep deeper leaf")
    assert "Does the leaf thing." in body
    assert "- `--size N`: how big (default: 7)" in body
    assert "- `--kind {a,b}` (required): which kind" in body
    assert page.count("## toy deep deeper leaf") == 1  # the alias is not a second command
    assert page.count("chatty") == 1  # an option of every command is listed once


def test_main_writes_both_pages(tmp_path):
    assert report.main(["cli", "--out", str(tmp_path / "cli.md")]) == 0
    assert "## mathmatch match" in (tmp_path / "cli.md").read_text()
    conditions = _condition(tmp_path / "conditions")
    assert report.main(["results", "--conditions", str(conditions), "--results",
                        str(tmp_path / "none"), "--out", str(tmp_path / "results.md")]) == 0
    assert "## toy" in (tmp_path / "results.md").read_text()


def test_a_matrix_figure_may_index_a_list():
    from benchmarks.matrix import figure

    results = {"runs": [{"records": 15309}], "systems": {"bm25": {"recall@1": 0.7}}}
    assert figure(results, "runs.0.records") == 15309
    assert figure(results, "systems.bm25.recall@1") == 0.7
    for missing in ("runs.1.records", "runs.x.records", "systems.dense.recall@1"):
        with pytest.raises(KeyError):
            figure(results, missing)
