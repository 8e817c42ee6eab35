"""``index.verify``: an index folder checked part by part, and the loaders' messages about
damaged files.

Each test copies the session's sample index (``sample_index``: built once with the packaged
MiniLM) and damages one part of the copy.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from index._common import DamagedFileError, load_npy, save_npy
from index.layout import part_dir
from index.manifest import ManifestError, read_manifest
from index.parts import pending_dir
from index.vectors import VectorIndex
from index.verify import DAMAGED, INCOMPLETE, format_report, verify_index
from mathcore.store import Store, StoreError


@pytest.fixture
def index(sample_index, tmp_path) -> Path:
    """A private copy of the sample index, to damage."""
    return Path(shutil.copytree(sample_index, tmp_path / "idx"))


def _part(index: Path, section: str) -> Path:
    return part_dir(index, read_manifest(index), section)


def _rel(index: Path, path: Path) -> str:
    return str(path.relative_to(index))


def _truncate(path: Path, keep: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(keep)


def _sql(index: Path, *statements: str) -> None:
    db = sqlite3.connect(index / "records.sqlite")
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _only(report, part: str, kind: str = DAMAGED):
    assert not report.ok
    assert {p.part for p in report.problems} == {part}, format_report(report)
    assert all(p.kind == kind for p in report.problems)
    return report.problems[0]


# --- verify_index -------------------------------------------------------------------------------

def test_clean_index_is_ok_and_left_untouched(index):
    before = _snapshot(index)
    report = verify_index(index)
    assert report.ok, format_report(report)
    # (question vectors, "questions N", are there once another test of the session built them)
    assert report.status.startswith("ok: 306 records, dense 306, lexical 306")
    assert set(report.checked) >= {"manifest", "store", "sources", "dense", "lexical"}
    text = format_report(report)
    assert text.splitlines()[1] == f"status     {report.status}"
    assert "dense      ok, 306 records" in text
    after = _snapshot(index)
    # Read-only: every file as it was; SQLite may leave its (empty) shared-memory files.
    assert {name: after[name] for name in before} == before
    assert set(after) - set(before) <= {"records.sqlite-wal", "records.sqlite-shm"}


def test_truncated_vectors(index):
    vectors = _part(index, "dense") / "vectors.npy"
    _truncate(vectors, 50_000)
    report = verify_index(index)
    problem = _only(report, "dense")
    assert problem.file == _rel(index, vectors)
    assert problem.message.startswith("truncated to 50,000 bytes; its header describes "
                                      "float32 [306, 384]")
    assert f"delete {vectors.parent}" in problem.repair and "mathmatch index add" in problem.repair
    assert report.status.startswith(f"DAMAGED: {_rel(index, vectors)}: truncated")


def test_missing_ids(index):
    ids = _part(index, "dense") / "ids.npy"
    ids.unlink()
    problem = _only(verify_index(index), "dense")
    assert (problem.file, problem.message) == (_rel(index, ids), "missing")


def test_truncated_bm25_file(index):
    data = _part(index, "lexical") / "data.csc.index.npy"
    _truncate(data, 200)
    problem = _only(verify_index(index), "lexical")
    assert problem.file == _rel(index, data) and "truncated to 200 bytes" in problem.message
    assert "rebuilds BM25" in problem.repair


def test_garbage_manifest(index):
    (index / "manifest.json").write_text("garbage\n", encoding="utf-8")
    report = verify_index(index)
    problem = _only(report, "manifest")
    assert problem.file == "manifest.json" and problem.message.startswith("not valid JSON")
    assert "mathmatch index build CORPUS... --out NEW_DIR" in problem.repair
    assert report.checked["store"] == "306 records"  # the store is still checked


def test_junk_store(index):
    (index / "records.sqlite").write_bytes(b"\x13junk, not SQLite" * 300)
    report = verify_index(index)
    problem = _only(report, "store")
    assert problem.file == "records.sqlite" and "not a database" in problem.message
    assert "--out NEW_DIR" in problem.repair


def test_row_deleted_behind_the_stores_back(index):
    _sql(index, "DELETE FROM records WHERE rowid = (SELECT MAX(rowid) FROM records)")
    report = verify_index(index)
    problem = _only(report, "store")
    assert problem.message == ("its 305 records (the manifest names 306) do not add up to its "
                               "checksum: records were changed outside mathmatch")
    assert "not checked" in report.checked["dense"]  # a damaged store vouches for no rowid


def test_interrupted_load_is_incomplete(index):
    _sql(index, "UPDATE sources SET done = 0 WHERE rowid = 1")
    report = verify_index(index)
    problem = _only(report, "sources", INCOMPLETE)
    assert problem.file == "records.sqlite"
    assert problem.message.startswith("a load was interrupted (source ")
    assert report.status.startswith("INCOMPLETE: a load was interrupted (source ")
    assert "again: it resumes where it stopped" in report.status


def test_store_ahead_of_its_manifest_is_incomplete(index):
    """As an `index remove` leaves it when stopped between the store and the manifest."""
    with Store(index / "records.sqlite") as store, store.transaction():
        store.remove([store.get([store.rowids()[0]])[0].record.id])
    report = verify_index(index)
    problem = _only(report, "store", INCOMPLETE)
    assert problem.message.startswith("holds 305 records, but the manifest names another "
                                      "state (306 records)")
    assert "`index remove` again" in problem.repair


def test_pending_chunk_is_incomplete(index):
    pending = pending_dir(index, "dense")
    pending.mkdir(parents=True)
    save_npy(pending / "chunk-000001.vecs.npy", np.zeros((1, 384), np.float32))
    save_npy(pending / "chunk-000001.ids.npy", np.array([1], np.int64))
    problem = _only(verify_index(index), "dense", INCOMPLETE)
    assert problem.file == _rel(index, pending)
    assert problem.message.startswith("1 chunks of encoded answer vectors wait here")


def test_manifest_count_that_disagrees_with_the_part(index):
    import json

    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    manifest["lexical"]["count"] = 300
    (index / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    problem = _only(verify_index(index), "lexical")
    assert problem.file == "manifest.json" and "says 300 documents" in problem.message


def test_ids_outside_the_store(index):
    ids_path = _part(index, "lexical") / "ids.npy"
    ids = np.load(ids_path)
    ids[0] = 10_000
    save_npy(ids_path, ids)
    problem = _only(verify_index(index), "lexical")
    assert problem.file == _rel(index, ids_path)
    assert "1 records not in the store (rowid 10000)" in problem.message


def test_missing_folder_is_no_index(tmp_path):
    report = verify_index(tmp_path / "nothing")
    problem = _only(report, "manifest")
    assert "not an index folder" in problem.message


def test_repair_of_a_damaged_part_works(index, run_cli, sample_dir):
    """The repair verify names, followed word for word, gives an index that verifies."""
    lexical = _part(index, "lexical")
    _truncate(lexical / "data.csc.index.npy", 200)
    problem = _only(verify_index(index), "lexical")
    assert f"delete {lexical}, then run `mathmatch index add {index} CORPUS...`" in problem.repair
    shutil.rmtree(lexical)
    assert run_cli(["-q", "index", "add", index, sample_dir / "records.jsonl",
                    sample_dir / "mathml", "--workers", "0", "--device", "cpu"]) == 0
    report = verify_index(index)
    assert report.ok, format_report(report)


@pytest.fixture(scope="module")
def passage_index(tmp_path_factory) -> Path:
    """The sample's MathML files (6 records) with passage vectors and question vectors."""
    from mathmatch.cli import main
    from retriever.questions import QuestionIndex

    out = tmp_path_factory.mktemp("verify") / "passages"
    sample = Path(__file__).resolve().parents[1] / "data" / "sample"
    assert main(["-q", "index", "build", str(sample / "mathml"), "--out", str(out),
                 "--workers", "0", "--device", "cpu", "--passages"]) == 0
    QuestionIndex.open(out, device="cpu").close()
    return out


def test_passage_and_question_vectors(passage_index, tmp_path):
    report = verify_index(passage_index)
    assert report.ok, format_report(report)
    assert report.counts["dense"] == report.counts["records"] == 6
    assert "questions" in report.counts
    assert "passage vectors" in report.checked["dense"]
    index = Path(shutil.copytree(passage_index, tmp_path / "idx"))
    vectors = _part(index, "questions") / "vectors.npy"
    _truncate(vectors, 300)
    problem = _only(verify_index(index), "questions")
    assert problem.file == _rel(index, vectors) and "mathmatch dedup" in problem.repair


# --- the loaders' messages ------------------------------------------------------------------------

def test_read_manifest_names_a_garbage_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text("garbage", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"manifest\.json: not valid JSON .*damaged.*"
                                            r"mathmatch index build CORPUS\.\.\. --out NEW_DIR"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_bytes(b"\xff\xfe[1, 2")
    with pytest.raises(ManifestError, match="manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ManifestError, match="expected a JSON object, found list"):
        read_manifest(tmp_path)


@pytest.mark.parametrize("mmap", [True, False])
def test_load_npy_names_a_truncated_file(tmp_path, mmap):
    path = tmp_path / "vectors.npy"
    save_npy(path, np.zeros((100, 8), np.float32))
    _truncate(path, 1000)
    with pytest.raises(DamagedFileError, match=rf"{path}: truncated to 1,000 bytes, but its "
                                               r"header describes float32 \[100, 8\] .*"
                                               "mathmatch index verify DIR") as err:
        load_npy(path, mmap=mmap)
    assert err.value.path == path and isinstance(err.value, ValueError)
    path.write_bytes(b"not numpy at all")
    with pytest.raises(ValueError, match=rf"{path}: not a readable \.npy file"):
        load_npy(path, mmap=mmap)


def test_vector_index_load_names_what_is_damaged(index):
    dense = _part(index, "dense")
    _truncate(dense / "vectors.npy", 50_000)
    with pytest.raises(ValueError, match=rf"{dense / 'vectors.npy'}: truncated"):
        VectorIndex.load(dense)
    (dense / "ids.npy").unlink()
    with pytest.raises(FileNotFoundError, match=rf"{dense / 'ids.npy'} not found.*rebuild"):
        VectorIndex.load(dense)


def test_store_on_junk_names_the_file(tmp_path):
    path = tmp_path / "records.sqlite"
    path.write_bytes(b"\x13junk, not SQLite" * 300)
    for readonly in (True, False):
        with pytest.raises(StoreError, match=rf"{path}: not a readable record store \(file is "
                                             r"not a database\).*--out NEW_DIR"):
            Store(path, readonly=readonly)


def test_store_read_only_at_a_path_with_uri_characters(tmp_path):
    path = tmp_path / "a b?c#d%20" / "records.sqlite"
    Store(path).close()
    with Store(path, readonly=True) as store:
        assert store.count() == 0
