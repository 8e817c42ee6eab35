"""``mathmatch index build`` / ``index info`` and the load behind them (index.corpora).

Builds run in this process (``--workers 0``) and without vectors (``--no-vectors``: the store and
BM25 only), except one that runs the process pool.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

import mathmatch
from index import corpora
from index.corpora import BuildError, LoadConfig, load_corpora
from mathcore import Store
from mathmatch.cli import build_parser

FAST = ["--workers", "0", "--no-vectors"]


def _subcommands(parser: argparse.ArgumentParser, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _subcommands(sub, prefix + (name,))
    return found


def _store(index: Path) -> Store:
    return Store(index / "records.sqlite", readonly=True)


def _rejects(index: Path) -> list[dict]:
    with open(index / "rejects.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _write_jsonl(path: Path, rows: list) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


# --- the command line ----------------------------------------------------------------------

def test_version(run_cli, capsys):
    assert run_cli(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mathmatch {mathmatch.__version__}"


@pytest.mark.parametrize("command", _subcommands(build_parser()),
                         ids=lambda c: " ".join(c) or "mathmatch")
def test_help_of_every_command(run_cli, capsys, command):
    assert run_cli([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mathmatch")
    assert " ".join(("mathmatch",) + command) in out


@pytest.mark.parametrize("argv", [[], ["index"], ["index", "build", "x.jsonl"],
                                  ["index", "frobnicate"], ["--no-such-option"]])
def test_usage_errors_exit_2(run_cli, capsys, argv):
    assert run_cli(argv) == 2
    assert "usage: mathmatch" in capsys.readouterr().err


def test_build_then_info(run_cli, capsys, tmp_path, sample_dir):
    out = tmp_path / "idx"
    assert run_cli(["index", "build", sample_dir / "records.jsonl", sample_dir / "mathml",
                    "--out", out, *FAST]) == 0
    err = capsys.readouterr().err
    assert "loaded 306 records, rejected 0" in err
    assert {"records.sqlite", "rejects.jsonl", "manifest.json"} <= {p.name for p in out.iterdir()}
    assert (out / "rejects.jsonl").read_text(encoding="utf-8") == ""

    assert run_cli(["index", "info", out]) == 0
    text = capsys.readouterr().out
    assert f"index      {out}  (format 1, mathmatch {mathmatch.__version__}" in text
    assert "records    306\n  gsm8k                    150\n  math                     150\n" \
           "  mathml                   1\n  mathml-sample            5\n" in text
    assert "rejects    0\n" in text
    assert f"  {sample_dir / 'records.jsonl'}  records  300 records, 0 rejects, done" in text
    assert f"  {sample_dir / 'mathml'}  folder  6 records, 0 rejects, done" in text
    assert "records.sqlite" in text

    assert run_cli(["index", "info", out, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    store = info["manifest"]["store"]
    assert (store["records"], store["rejects"]) == (306, 0)
    assert store["by_source"] == {"gsm8k": 150, "math": 150, "mathml": 1, "mathml-sample": 5}
    assert [s["done"] for s in store["sources"]] == [1, 1]
    assert info["manifest"]["limits"] == {"max_bytes": 4 * 1024 * 1024, "max_depth": 128}
    with _store(out) as s:
        assert store["checksum"] == s.checksum()
        assert s.count() == 306
    assert info["files"]["manifest.json"] == (out / "manifest.json").stat().st_size


def test_info_counts_reject_reasons(run_cli, capsys, tmp_path):
    corpus = _write_jsonl(tmp_path / "c.jsonl", [
        {"id": "a", "answer": "<math><mi>x</mi></math>"},
        {"id": "b", "answer": "<math><mi>&bad;</mi></math>"},
        "{broken",
        "{broken again",
    ])
    out = tmp_path / "idx"
    assert run_cli(["index", "build", corpus, "--out", out, *FAST]) == 0
    assert "3 rejected records: see" in capsys.readouterr().err
    assert run_cli(["index", "info", out]) == 0
    text = capsys.readouterr().out
    assert "rejects    3\n       2  invalid JSON\n       1  answer\n" in text


def test_limits_given_on_the_command_line_apply(run_cli, capsys, tmp_path):
    corpus = _write_jsonl(tmp_path / "c.jsonl", [
        {"id": "flat", "answer": "<math><mi>x</mi></math>"},
        {"id": "deep", "answer": "<math><mrow><mrow><mi>x</mi></mrow></mrow></math>"},
        {"id": "long", "answer": "x" * 300},
    ])
    out = tmp_path / "idx"
    assert run_cli(["index", "build", corpus, "--out", out, *FAST, "--max-depth", "3",
                    "--max-record-bytes", "200"]) == 0
    reasons = {r["origin"].rsplit(":", 1)[1]: r["reason"] for r in _rejects(out)}
    assert reasons == {"2": "answer: formula 1 at character 0: formula nested deeper than 3 "
                            "levels",
                       "3": "line longer than the limit of 200 bytes"}
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["limits"] == {"max_bytes": 200, "max_depth": 3}


def test_missing_corpus_exits_2(run_cli, capsys, tmp_path):
    assert run_cli(["index", "build", tmp_path / "nowhere.jsonl", "--out", tmp_path / "idx",
                    *FAST]) == 2
    assert f"mathmatch: {tmp_path / 'nowhere.jsonl'}: no such file or directory" in \
        capsys.readouterr().err
    assert not (tmp_path / "idx" / "records.sqlite").exists()


def test_unknown_corpus_format_exits_2(run_cli, capsys, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello", encoding="utf-8")
    assert run_cli(["index", "build", notes, "--out", tmp_path / "idx", *FAST]) == 2
    assert "unknown corpus format" in capsys.readouterr().err


def test_info_of_a_folder_that_is_no_index_exits_2(run_cli, capsys, tmp_path):
    assert run_cli(["index", "info", tmp_path]) == 2
    assert "not an index folder (no manifest.json)" in capsys.readouterr().err


def test_strict_and_nothing_loaded(run_cli, capsys, tmp_path):
    mixed = _write_jsonl(tmp_path / "mixed.jsonl", [{"id": "a", "answer": "x"}, "{bad"])
    assert run_cli(["index", "build", mixed, "--out", tmp_path / "i1", *FAST, "--strict"]) == 1
    assert "--strict: 1 records were rejected" in capsys.readouterr().err
    assert run_cli(["index", "build", mixed, "--out", tmp_path / "i2", *FAST]) == 0
    capsys.readouterr()
    bad = _write_jsonl(tmp_path / "bad.jsonl", ["{bad", {"id": "x"}])
    assert run_cli(["index", "build", bad, "--out", tmp_path / "i3", *FAST]) == 1
    assert "nothing could be loaded" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    assert run_cli(["index", "build", empty, "--out", tmp_path / "i4", *FAST]) == 1


def test_duplicates_then_replace(run_cli, capsys, tmp_path):
    first = _write_jsonl(tmp_path / "first.jsonl", [{"id": "a", "answer": "one"},
                                                    {"id": "b", "answer": "two"}])
    second = _write_jsonl(tmp_path / "second.jsonl", [{"id": "c", "answer": "three"},
                                                      {"id": "a", "answer": "uno"}])
    out = tmp_path / "idx"
    assert run_cli(["index", "build", first, second, "--out", out, *FAST]) == 0
    assert _rejects(out) == [{"origin": f"{second}:2", "id": "a",
                              "reason": f"duplicate id 'a': already loaded from {first}:1 "
                                        "(`mathmatch index add --replace` replaces it)"}]
    with _store(out) as s:
        assert s.by_id("a").record.answer == "one"
        before = s.checksum()

    third = _write_jsonl(tmp_path / "third.jsonl", [{"id": "a", "answer": "eins"}])
    assert run_cli(["index", "add", out, third, "--workers", "0", "--replace"]) == 0
    with _store(out) as s:
        assert (s.by_id("a").record.answer, s.by_id("a").record.origin) == ("eins", f"{third}:1")
        assert s.count() == 3
        assert s.checksum() != before
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["store"]["checksum"] == s.checksum()


def test_a_finished_build_run_again_changes_nothing(run_cli, capsys, tmp_path, data_dir):
    corpus = data_dir / "variants.jsonl"
    out = tmp_path / "idx"
    assert run_cli(["index", "build", corpus, "--out", out, *FAST]) == 0
    with _store(out) as s:
        count, checksum = s.count(), s.checksum()
    assert run_cli(["index", "build", corpus, "--out", out, *FAST]) == 0
    with _store(out) as s:
        assert (s.count(), s.checksum(), s.reject_count()) == (count, checksum, 0)


def test_changed_finished_source_needs_replace(run_cli, capsys, tmp_path):
    corpus = _write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "answer": "one"}, "{bad"])
    out = tmp_path / "idx"
    assert run_cli(["index", "build", corpus, "--out", out, *FAST]) == 0
    with open(corpus, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "b", "answer": "two"}) + "\n")
    capsys.readouterr()
    assert run_cli(["index", "build", corpus, "--out", out, *FAST]) == 2
    assert "changed since it was loaded; load it again over the records it gave with " \
        f"`mathmatch index add {out} {corpus} --replace`" in capsys.readouterr().err
    assert run_cli(["index", "build", corpus, "--out", out, *FAST, "--replace"]) == 0
    with _store(out) as s:
        assert (s.count(), [r.origin for r in s.iter_rejects()]) == (2, [f"{corpus}:2"])
    # Loaded again, the source's old rejects were replaced, not doubled.
    assert [r["origin"] for r in _rejects(out)] == [f"{corpus}:2"]


def test_process_pool_gives_the_same_store(run_cli, capsys, tmp_path, data_dir):
    corpus = tmp_path / "mixed.jsonl"
    lines = (data_dir / "corpus_sample.jsonl").read_bytes().splitlines(keepends=True)
    lines += (data_dir / "variants.jsonl").read_bytes().splitlines(keepends=True)
    lines.insert(3, b"{broken\n")
    lines.insert(7, b'{"id": "bad-math", "answer": "<math><mi>&x;</mi></math>"}\n')
    corpus.write_bytes(b"".join(lines))
    pooled, serial = tmp_path / "pooled", tmp_path / "serial"
    assert run_cli(["index", "build", corpus, "--out", pooled, "--workers", "2",
                    "--no-vectors"]) == 0
    assert run_cli(["index", "build", corpus, "--out", serial, *FAST]) == 0
    with _store(pooled) as p, _store(serial) as s:
        assert p.count() == s.count() == 21
        assert p.checksum() == s.checksum()
        assert [p.by_id(i).record for i in ("math-test-00447", "variant-entities")] == \
            [s.by_id(i).record for i in ("math-test-00447", "variant-entities")]
    assert _rejects(pooled) == _rejects(serial)
    assert [r["origin"] for r in _rejects(pooled)] == [f"{corpus}:4", f"{corpus}:8"]


# --- interrupted builds --------------------------------------------------------------------

def _interrupt_after(monkeypatch, batches: int, exc: type[BaseException] = KeyboardInterrupt):
    real = corpora.process_units
    calls = []

    def flaky(units, limits):
        calls.append(len(units))
        if len(calls) > batches:
            raise exc("interrupted by the test")
        return real(units, limits)

    monkeypatch.setattr(corpora, "process_units", flaky)
    return calls


@pytest.fixture
def mixed_corpus(tmp_path, data_dir) -> tuple[Path, list[str], list[int]]:
    """A JSONL of 10 real records with 4 bad lines among them: (path, good ids, bad lines)."""
    good = (data_dir / "corpus_sample.jsonl").read_text(encoding="utf-8").splitlines()
    bad = ["{not json", '{"id": "no-answer"}', '{"id": "m", "answer": "<math><mi>x</math>"}',
           '[1]']
    lines = good[:2] + bad[:1] + good[2:5] + bad[1:3] + good[5:9] + bad[3:] + good[9:]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, [json.loads(g)["id"] for g in good], [3, 7, 8, 13]


def test_interrupted_build_resumes_without_loss_or_double(monkeypatch, tmp_path, mixed_corpus):
    corpus, good_ids, bad_lines = mixed_corpus
    out = tmp_path / "idx"
    cfg = LoadConfig([corpus], out, workers=0, batch_size=3, progress=False)
    calls = _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        load_corpora(cfg)
    assert calls == [3, 3, 3]
    with _store(out) as s:
        # Two batches of three lines were committed: lines 1-6, one of them bad.
        assert (s.count(), s.reject_count()) == (5, 1)
        assert s.source(str(corpus))["position"] == 6
        assert s.source(str(corpus))["done"] == 0

    monkeypatch.undo()
    report = load_corpora(cfg)
    assert (report.added, report.rejected) == (5, 3)
    with _store(out) as s:
        ids = [v for batch in s.iter_column("id") for _, v in batch]
        assert sorted(ids) == sorted(good_ids)  # each record once
        originals = {json.loads(line)["id"]: json.loads(line)
                     for line in corpus.read_text(encoding="utf-8").splitlines()
                     if line.startswith('{"id": "') and json.loads(line).get("answer")}
        for rid in good_ids:
            assert s.by_id(rid).record.answer == originals[rid]["answer"]
        assert s.source(str(corpus))["done"] == 1
    origins = [r["origin"] for r in _rejects(out)]
    assert origins == [f"{corpus}:{n}" for n in bad_lines]  # each reject once


def test_interrupted_folder_build_resumes(monkeypatch, tmp_path, sample_dir, data_dir):
    folder = tmp_path / "mathml"
    shutil.copytree(sample_dir / "mathml", folder)
    shutil.copy(data_dir / "hostile" / "svg-root.xml", folder / "svg-root.xml")
    out = tmp_path / "idx"
    cfg = LoadConfig([folder], out, workers=0, batch_size=2, progress=False)
    _interrupt_after(monkeypatch, 1, RuntimeError)
    with pytest.raises(RuntimeError, match="interrupted by the test"):
        load_corpora(cfg)
    monkeypatch.undo()
    load_corpora(cfg)
    with _store(out) as s:
        assert s.count() == 6
        assert [r.origin for r in s.iter_rejects()] == [str(folder / "svg-root.xml")]


def test_changed_source_under_an_unfinished_build_is_refused(monkeypatch, run_cli, capsys,
                                                             tmp_path, mixed_corpus):
    corpus, _, _ = mixed_corpus
    out = tmp_path / "idx"
    _interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        load_corpora(LoadConfig([corpus], out, workers=0, batch_size=3, progress=False))
    monkeypatch.undo()
    with open(corpus, "a", encoding="utf-8") as fh:
        fh.write('{"id": "late", "answer": "x"}\n')
    with pytest.raises(BuildError, match="changed since the interrupted build started; delete"):
        load_corpora(LoadConfig([corpus], out, workers=0, progress=False))
    assert run_cli(["index", "build", corpus, "--out", out, *FAST]) == 2
    assert f"{corpus} changed since the interrupted build started" in capsys.readouterr().err
    with _store(out) as s:
        assert s.count() == 2  # left as it was


def test_interrupted_command_says_how_to_resume(monkeypatch, run_cli, capsys, tmp_path,
                                                mixed_corpus):
    corpus, good_ids, _ = mixed_corpus
    out = tmp_path / "idx"
    _interrupt_after(monkeypatch, 0)
    assert run_cli(["index", "build", corpus, "--out", out, *FAST]) == 130
    assert "interrupted; run the same command again to resume" in capsys.readouterr().err
    monkeypatch.undo()
    assert run_cli(["index", "build", corpus, "--out", out, *FAST]) == 0
    with _store(out) as s:
        assert (s.count(), s.reject_count()) == (len(good_ids), 4)


@pytest.mark.parametrize("kwargs, message", [
    ({"corpora": []}, "no corpus given"),
    ({"batch_size": 0}, "batch_size must be at least 1"),
    ({"workers": -1}, "workers must be 0 or more"),
])
def test_load_config_is_validated(tmp_path, kwargs, message):
    args = {"corpora": [tmp_path / "c.jsonl"], "out": tmp_path / "idx", **kwargs}
    with pytest.raises(ValueError, match=message):
        LoadConfig(**args)
