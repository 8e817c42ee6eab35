"""The index folder under concurrent writers, kills and careless use (one test per way it broke).

Writers take the folder's lock; readers read the last committed manifest; outputs are written
whole; `index build` never takes over a folder that is not an index.  Processes are real
(`python -m mathmatch.cli`) where the behaviour is between processes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from index import VectorIndex
from index.layout import part_dir
from index.lock import LockError, WriteLock
from index.manifest import read_manifest
from index.verify import format_report, verify_index
from mathcore import Store

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def _cli(*args, check: bool = False, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "mathmatch.cli", *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=600, **kw)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _popen(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mathmatch.cli", "-q", *map(str, args)],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> dict[str, Path]:
    """The sample records split into three corpora: a (100), b (60), c (60)."""
    folder = tmp_path_factory.mktemp("parts")
    lines = (SAMPLE / "records.jsonl").read_text(encoding="utf-8").splitlines()
    out = {}
    for name, (lo, hi) in {"a": (0, 100), "b": (100, 160), "c": (160, 220)}.items():
        out[name] = folder / f"{name}.jsonl"
        out[name].write_text("\n".join(lines[lo:hi]) + "\n", encoding="utf-8")
    return out


@pytest.fixture
def base(tmp_path, parts, tiny_encoder_path) -> Path:
    """An index of corpus a, built with the tiny encoder."""
    out = tmp_path / "base"
    _cli("-q", "index", "build", parts["a"], "--out", out, "--workers", "0", "--encoder",
         tiny_encoder_path, "--device", "cpu", check=True)
    return out


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]


def assert_consistent(index: Path, expected: set[str]) -> None:
    """The store holds every expected id once; the committed vectors and BM25 hold every
    stored record once, and nothing else."""
    m = read_manifest(index)
    with Store(index / "records.sqlite", readonly=True) as store:
        rows = store.rowids()
        ids = store.ids_of(rows)
        assert sorted(ids.values()) == sorted(expected)
        assert store.checksum() == m["store"]["checksum"]
    vectors = VectorIndex.load(part_dir(index, m, "dense")).ids()
    assert sorted(vectors.tolist()) == sorted(rows)
    assert m["dense"]["count"] == m["lexical"]["count"] == m["store"]["records"] == len(expected)
    assert m["dense"]["corpus_checksum"] == m["lexical"]["corpus_checksum"] == \
        m["store"]["checksum"]
    report = verify_index(index)
    assert report.ok, format_report(report)


# --- one writer at a time -------------------------------------------------------------------

def test_two_adds_at_once_each_record_once(base, parts):
    """Table row 1: two `index add` processes on one folder; with --wait the second waits
    for the first, and both corpora end up in the store, vectors and BM25 exactly once."""
    procs = [_popen("index", "add", base, parts[n], "--workers", "0", "--device", "cpu",
                    "--wait", "300") for n in ("b", "c")]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    assert_consistent(base, set(_ids(parts["a"]) + _ids(parts["b"]) + _ids(parts["c"])))


def test_second_writer_is_refused_naming_the_holder(base, parts):
    with WriteLock(base, purpose="a test holding the lock"):
        proc = _cli("index", "add", base, parts["b"], "--workers", "0")
    assert proc.returncode == 2
    assert f"pid {os.getpid()}" in proc.stderr and "a test holding the lock" in proc.stderr
    assert "--wait" in proc.stderr
    assert_consistent(base, set(_ids(parts["a"])))  # nothing of b went in


def test_a_waiting_writer_goes_on_when_the_lock_is_released(base, parts):
    lock = WriteLock(base).acquire()
    threading.Timer(3.0, lock.release).start()
    proc = _cli("-q", "index", "add", base, parts["b"], "--workers", "0", "--wait", "120")
    assert proc.returncode == 0, proc.stderr
    assert_consistent(base, set(_ids(parts["a"]) + _ids(parts["b"])))


def test_lock_in_process_waits_then_refuses(tmp_path):
    with WriteLock(tmp_path):
        t = time.monotonic()
        with pytest.raises(LockError, match="being written by pid"):
            WriteLock(tmp_path, wait=0.5).acquire()
        assert time.monotonic() - t >= 0.5


def test_lock_of_a_killed_writer_is_free(tmp_path):
    """flock dies with its holder: a writer killed with SIGKILL leaves no stale lock."""
    code = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); "
            f"from index.lock import WriteLock; WriteLock({str(tmp_path)!r}).acquire(); "
            "print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(LockError):
        WriteLock(tmp_path).acquire()
    proc.kill()
    proc.wait()
    with WriteLock(tmp_path):
        pass


# --- readers see the last committed state ---------------------------------------------------

def test_match_during_an_add_reads_committed_states(base, parts):
    """A searcher opened while `index add` runs answers from the state before the add or the
    state after it, never refuses and never sees half of it."""
    from retriever.searcher import open_searcher

    before = set(_ids(parts["a"]))
    after = before | set(_ids(parts["b"]))
    proc = _popen("index", "add", base, parts["b"], "--workers", "0", "--device", "cpu")
    seen = 0
    while proc.poll() is None or seen < 3:
        searcher = open_searcher(base, "hybrid", device="cpu")
        try:
            run = searcher.search([("q", "How many apples are left?")], k=300)
            count = searcher.manifest["store"]["records"]
        finally:
            searcher.close()
        assert count in (len(before), len(after))
        assert set(run["q"]) <= (before if count == len(before) else after)
        assert len(run["q"]) == count
        seen += 1
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert_consistent(base, after)


# --- kills at random moments ----------------------------------------------------------------

@pytest.mark.parametrize("command", ["build", "add"])
def test_random_kills_then_resume_give_a_clean_index(tmp_path, parts, tiny_encoder_path,
                                                     command):
    """kill -9 at random moments of `index build` / `index add`, then run it to the end: every
    record once, vectors and BM25 for all, and the next reader or writer trusts nothing a
    killed one left."""
    out = tmp_path / "idx"
    if command == "build":
        args = ["index", "build", SAMPLE / "records.jsonl", "--out", out, "--encoder",
                tiny_encoder_path]
        expected = set(_ids(SAMPLE / "records.jsonl"))
    else:
        _cli("-q", "index", "build", parts["a"], "--out", out, "--workers", "0", "--encoder",
             tiny_encoder_path, "--device", "cpu", check=True)
        args = ["index", "add", out, parts["b"], parts["c"]]
        expected = set(_ids(parts["a"]) + _ids(parts["b"]) + _ids(parts["c"]))
    args += ["--workers", "0", "--device", "cpu", "--batch-size", "4", "--save-every", "8"]
    rng = random.Random(7)
    for _ in range(4):
        proc = _popen(*args)
        time.sleep(rng.uniform(1.0, 6.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    _cli("-q", *args, check=True)
    assert_consistent(out, expected)
    names = {p.name for p in out.iterdir()}
    m = read_manifest(out)
    assert {n for n in names if n.startswith(("dense", "lexical"))} == \
        {m["dense"]["dir"], m["lexical"]["dir"]}  # no part of a killed writer is left
    assert "pending" not in names and not any(n.endswith(".tmp") for n in names)


# --- outputs and folders --------------------------------------------------------------------

def test_out_equal_to_queries_is_refused_and_the_queries_kept(run_cli, capsys, sample_index,
                                                              tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_bytes((SAMPLE / "queries.jsonl").read_bytes())
    before = queries.read_bytes()
    assert run_cli(["match", sample_index, "--queries", queries, "--out", queries]) == 2
    assert "is also an input" in capsys.readouterr().err
    assert queries.read_bytes() == before
    link = tmp_path / "same.jsonl"
    link.symlink_to(queries)
    assert run_cli(["match", sample_index, "--queries", link, "--out", queries]) == 2
    assert queries.read_bytes() == before


def test_failed_match_leaves_the_earlier_results(run_cli, sample_index, tmp_path):
    out = tmp_path / "run.jsonl"
    assert run_cli(["-q", "match", sample_index, "--queries", SAMPLE / "queries.jsonl",
                    "--out", out, "--k", "3"]) == 0
    before = out.read_bytes()
    assert before
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "q1", "text": "fine"}\n{"_id": "q2", "text": \n', encoding="utf-8")
    assert run_cli(["-q", "match", sample_index, "--queries", bad, "--out", out]) == 2
    assert out.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_out_folder_is_refused(run_cli, capsys, sample_index, tmp_path):
    assert run_cli(["match", sample_index, "--queries", SAMPLE / "queries.jsonl",
                    "--out", tmp_path]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_build_never_takes_over_a_foreign_folder(run_cli, capsys, tmp_path, parts):
    """Table row 3: the user's files are left as they were, nothing is added."""
    out = tmp_path / "u"
    (out / "lexical").mkdir(parents=True)
    (out / "lexical" / "my.npy").write_text("mine")
    (out / "rejects.jsonl").write_text("notes")
    before = sorted((p.relative_to(out), p.read_bytes() if p.is_file() else b"")
                    for p in out.rglob("*"))
    for extra in ([], ["--replace"]):
        assert run_cli(["index", "build", parts["a"], "--out", out, "--workers", "0",
                        "--no-vectors", *extra]) == 2
        assert "not empty and not a mathmatch index" in capsys.readouterr().err
        assert sorted((p.relative_to(out), p.read_bytes() if p.is_file() else b"")
                      for p in out.rglob("*")) == before


def test_replace_rebuilds_an_index_and_says_what_it_removed(run_cli, capsys, tmp_path, parts):
    out = tmp_path / "idx"
    assert run_cli(["-q", "index", "build", parts["a"], "--out", out, "--workers", "0",
                    "--no-vectors"]) == 0
    (out / "notes.txt").write_text("the user's own")
    assert run_cli(["index", "build", parts["b"], "--out", out, "--workers", "0",
                    "--no-vectors", "--replace"]) == 0
    err = capsys.readouterr().err
    assert "--replace: removed the index" in err and "records.sqlite" in err
    with Store(out / "records.sqlite", readonly=True) as store:
        assert sorted(store.ids_of(store.rowids()).values()) == sorted(_ids(parts["b"]))
    assert (out / "notes.txt").read_text() == "the user's own"
    # Without --replace, building into an index resumes or grows it.
    assert run_cli(["-q", "index", "build", parts["c"], "--out", out, "--workers", "0",
                    "--no-vectors"]) == 0
    assert read_manifest(out)["store"]["records"] == 120


# --- remove and add again -------------------------------------------------------------------

def test_removed_records_can_be_added_again_from_their_source(run_cli, capsys, base, parts):
    """Table row 11; and remove names the ids it did not find."""
    ids = _ids(parts["a"])[:5]
    listing = base.parent / "rm.txt"
    listing.write_text("\n".join([*ids, "no-such-id"]) + "\n")
    assert run_cli(["index", "remove", base, "--ids", listing]) == 0
    assert "1 ids were not in the index: no-such-id" in capsys.readouterr().err
    assert_consistent(base, set(_ids(parts["a"])) - set(ids))
    assert run_cli(["index", "add", base, parts["a"], "--workers", "0"]) == 0
    assert "5 of its records were removed since it was loaded" in capsys.readouterr().err
    assert_consistent(base, set(_ids(parts["a"])))
    with Store(base / "records.sqlite", readonly=True) as store:
        assert store.reject_count() == 0  # the records still there are not duplicates


# --- search results do not depend on k ------------------------------------------------------

def test_hybrid_top_10_is_the_same_for_any_k(sample_index):
    """Table row 10: the fusion depth no longer grows with k."""
    from mathcore.runs import iter_queries
    from retriever.searcher import open_searcher

    queries = list(iter_queries(SAMPLE / "queries.jsonl"))[:30]
    searcher = open_searcher(sample_index, "hybrid", device="cpu")
    try:
        small = searcher.search(queries, k=10)
        large = searcher.search(queries, k=150)
    finally:
        searcher.close()
    for qid, _ in queries:
        assert list(large[qid])[:10] == list(small[qid])
        assert np.allclose(list(large[qid].values())[:10], list(small[qid].values()))
        scores = list(large[qid].values())
        assert scores == sorted(scores, reverse=True)
        assert len(large[qid]) > 10


@pytest.mark.parametrize("k", ["0", "-1"])
def test_k_below_one_is_a_usage_error(run_cli, capsys, sample_index, k):
    assert run_cli(["match", sample_index, "--queries", SAMPLE / "queries.jsonl",
                    "--k", k]) == 2
    assert "k must be at least 1" in capsys.readouterr().err


# --- third-party noise ----------------------------------------------------------------------

def test_bitsandbytes_kernels_line_is_silenced():
    code = "import logging; logging.basicConfig(); {} import bitsandbytes, peft"
    plain = subprocess.run([sys.executable, "-c", code.format("")], env=ENV,
                           capture_output=True, text=True, cwd=ROOT)
    if "gemm_4bit_forward" not in plain.stderr:
        pytest.skip("bitsandbytes does not say it on this CPU (no AVX-512 BF16)")
    ours = subprocess.run([sys.executable, "-c", code.format("import mathcore;")], env=ENV,
                          capture_output=True, text=True, cwd=ROOT)
    assert ours.returncode == 0, ours.stderr
    assert "gemm_4bit_forward" not in ours.stderr


def test_no_cuda_is_said_once(caplog, monkeypatch):
    import logging

    from mathcore import device

    monkeypatch.setattr(device, "cuda_available", lambda: False)
    monkeypatch.setattr(device, "_SAID_NO_CUDA", [])
    with caplog.at_level(logging.DEBUG, logger="mathcore.device"):
        for purpose in ("encoding", "reranking", "encoding"):
            assert device.resolve_device("auto", purpose=purpose) == "cpu"
    said = [r for r in caplog.records if "CUDA is not available" in r.getMessage()]
    assert [r.levelname for r in said] == ["INFO", "DEBUG", "DEBUG"]


def test_a_writer_leaves_other_files_in_the_folder_alone(tmp_path):
    """The clean-up of a writer taking the lock removes only what index writers leave (part
    folders no manifest names, their temporary files): not a user's files, nor the temporary
    file of an output being written into the folder (`match --out DIR/run.jsonl`, while
    `--symbolic` builds the question vectors)."""
    from index.lock import clean_up
    from index.manifest import write_manifest

    write_manifest(tmp_path, {"store": {}, "dense": {"dir": "dense.2"}})
    for name in ("dense.1", "dense.2", "lexical.3", "notes"):
        (tmp_path / name).mkdir()
    own = ["manifest.json.tmp", "rejects.tmp"]
    theirs = [".run.jsonl.123.tmp", "draft.tmp", "run.jsonl"]
    for name in own + theirs:
        (tmp_path / name).write_text("x")
    removed = clean_up(tmp_path)
    assert sorted(removed) == sorted(["dense.1", "lexical.3", *own])
    assert all((tmp_path / n).exists() for n in ["dense.2", "notes", *theirs])
