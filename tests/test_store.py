"""The SQLite record store (mathcore.store): exact round trips, checksum, duplicates, sources."""

from __future__ import annotations

import sqlite3

import pytest

from mathcore import Derived, Record, Reject, Store, StoreError, derive
from mathcore.loaders import load_jsonl
from mathcore.store import SCHEMA_VERSION


def rec(rid: str, answer: str = "<math><mn>1</mn></math>", origin: str = "f.jsonl:1",
        **kw) -> tuple[Record, Derived]:
    r = Record(id=rid, question=kw.pop("question", ""), answer=answer, origin=origin, **kw)
    return r, derive(r)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "idx" / "records.sqlite") as s:
        yield s


def test_records_round_trip_exactly(store, data_dir):
    records = [r for r in load_jsonl(data_dir / "corpus_sample.jsonl")]
    with store.transaction():
        assert store.insert([(r, derive(r)) for r in records]) == []
    assert store.count() == len(records) == 10
    for r in records:
        got = store.by_id(r.id)
        assert got.record == r  # every field, meta and origin included
        assert got.answer_text == derive(r).answer_text
        assert got.record.answer.encode("utf-8") == r.answer.encode("utf-8")
    assert store.count_by_source() == {"gsm8k": 2, "math": 4, "mathematics_dataset": 4}
    assert store.by_id("no-such-id") is None


def test_get_keeps_the_order_asked_and_skips_unknown(store):
    with store.transaction():
        store.insert([rec(f"r{i}") for i in range(5)])
    rowids = store.rowids()
    got = store.get([rowids[3], 999, rowids[0]])
    assert [g.record.id for g in got] == ["r3", "r0"]
    assert store.ids_of(rowids[:2]) == {rowids[0]: "r0", rowids[1]: "r1"}


def test_iter_column_in_batches(store):
    with store.transaction():
        store.insert([rec(f"r{i}", f"<math><mn>{i}</mn></math>") for i in range(7)])
    batches = list(store.iter_column("answer_text", batch=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [v for b in batches for _, v in b] == [str(i) for i in range(7)]
    after = batches[0][-1][0]
    assert [v for b in store.iter_column("id", after=after) for _, v in b] == \
        [f"r{i}" for i in range(3, 7)]
    with pytest.raises(ValueError, match="unknown column 'answer'"):
        list(store.iter_column("answer"))


def test_checksum_is_order_independent_and_follows_content(tmp_path):
    items = [rec(f"r{i}", f"answer {i}") for i in range(4)]
    with Store(tmp_path / "a.sqlite") as a, Store(tmp_path / "b.sqlite") as b:
        empty = a.checksum()
        assert empty == "0" * 64
        with a.transaction():
            a.insert(items)
        with b.transaction():
            b.insert(items[::-1])
        assert a.checksum() == b.checksum() != empty
        with a.transaction():
            a.remove(["r1", "r3"])
        with b.transaction():
            b.remove(["r1", "r3", "absent"])
        assert a.checksum() == b.checksum()
        with Store(tmp_path / "c.sqlite") as c:
            with c.transaction():
                c.insert([items[0], items[2]])
            assert c.checksum() == a.checksum()


def test_duplicate_id_is_rejected_naming_both_places(store):
    with store.transaction():
        store.insert([rec("dup", "first", origin="a.jsonl:3")])
    before = store.checksum()
    with store.transaction():
        rejects = store.insert([rec("dup", "second", origin="b.jsonl:7"), rec("new")])
    assert rejects == [Reject("b.jsonl:7", "duplicate id 'dup': already loaded from a.jsonl:3 "
                                           "(`mathmatch index add --replace` replaces it)", "dup")]
    assert store.by_id("dup").record.answer == "first"
    assert store.count() == 2
    assert store.checksum() != before  # "new" was added


def test_replace_gives_a_new_rowid_and_checksum(tmp_path, store):
    with store.transaction():
        store.insert([rec("a", "old"), rec("b")])
    old_rowid = store.by_id("a").rowid
    old_sum = store.checksum()
    with store.transaction():
        assert store.insert([rec("a", "new", origin="g.jsonl:2")], replace=True) == []
    got = store.by_id("a")
    assert (got.record.answer, got.record.origin) == ("new", "g.jsonl:2")
    assert got.rowid > old_rowid and old_rowid not in store.rowids()
    assert store.checksum() != old_sum
    with Store(tmp_path / "fresh.sqlite") as fresh:
        with fresh.transaction():
            fresh.insert([rec("b"), rec("a", "new")])
        assert fresh.checksum() == store.checksum()


def test_removed_rowids_are_never_reused(store):
    with store.transaction():
        store.insert([rec("a"), rec("b")])
    last = max(store.rowids())
    with store.transaction():
        assert store.remove(["b"]) == [last]
    with store.transaction():
        store.insert([rec("c")])
    assert store.by_id("c").rowid > last


def test_a_failed_transaction_leaves_nothing(store):
    with pytest.raises(RuntimeError, match="boom"):
        with store.transaction():
            store.insert([rec("a")])
            store.add_rejects([Reject("x:1", "bad")])
            raise RuntimeError("boom")
    assert (store.count(), store.reject_count(), store.checksum()) == (0, 0, "0" * 64)


def test_rejects_keep_their_order(store):
    with store.transaction():
        assert store.add_rejects([Reject("a:1", "one"), Reject("a:2", "two", "id2")]) == 2
    assert list(store.iter_rejects()) == [Reject("a:1", "one"), Reject("a:2", "two", "id2")]
    assert store.reject_count() == 2


def test_sources_progress_and_forget(store):
    with store.transaction():
        store.start_source("c.jsonl", "abc", 10, "records")
        store.start_source("c.jsonl", "ignored", 0, "records")  # already known: kept
        store.advance_source("c.jsonl", 4, 3, 1, 0.5)
        store.advance_source("c.jsonl", 9, 2, 0, 0.25, done=True)
        store.start_source("c.jsonl.old", "def", 5, "records")
        store.start_source("dir", "0a", 5, "folder")
        store.add_rejects([Reject("c.jsonl:2", "bad"), Reject("c.jsonl.old:1", "bad"),
                           Reject("dir/x.mml", "bad"), Reject("c.jsonl", "bad")])
    assert store.source("c.jsonl") == {"path": "c.jsonl", "sha256": "abc", "size": 10,
                                       "format": "records", "position": 9, "records": 5,
                                       "rejects": 1, "done": 1, "seconds": 0.75}
    assert [s["path"] for s in store.sources()] == ["c.jsonl", "c.jsonl.old", "dir"]
    with store.transaction():
        store.forget_source("c.jsonl")
    # The source goes with the rejects it gave, and only those.
    assert store.source("c.jsonl") is None
    assert [r.origin for r in store.iter_rejects()] == ["c.jsonl.old:1", "dir/x.mml"]
    with store.transaction():
        store.forget_source("dir")
    assert [r.origin for r in store.iter_rejects()] == ["c.jsonl.old:1"]


def test_reopening_keeps_everything(tmp_path):
    path = tmp_path / "records.sqlite"
    with Store(path) as s, s.transaction():
        s.insert([rec("a", "é ∑ 𝑥")])
    with Store(path, readonly=True) as ro:
        assert ro.by_id("a").record.answer == "é ∑ 𝑥"
        assert ro.checksum() != "0" * 64
        assert ro.size_bytes() > 0
        with pytest.raises(sqlite3.OperationalError):
            ro._db.execute("DELETE FROM records")


def test_missing_store_read_only(tmp_path):
    with pytest.raises(StoreError, match="no record store here"):
        Store(tmp_path / "none.sqlite", readonly=True)


def test_store_of_another_schema_is_refused(tmp_path):
    path = tmp_path / "records.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE state SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=f"store schema {SCHEMA_VERSION + 1}.*rebuild the index"):
        Store(path)
