"""Hostile input among good records: each hostile one rejected with a reason, no crash, no file
read, no connection; every good record beside it kept, byte for byte.

The good records are real (latex2mathml, LaTeXML, MathJax ... see ``tests/data/README.md``); the
hostile ones are written here (they name this test's temporary files and a local port) or
taken from ``tests/data/hostile``.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import tracemalloc
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from index.build import build_store
from index.corpora import LoadConfig, load_corpora
from mathcore import Record, Store, loaders
from mathcore.loaders import read_mathml_file

NS = "http://www.w3.org/1998/Math/MathML"
# Billion laughs: &lol9; would expand to 10^9 "lol"s.
LAUGHS = ('<!DOCTYPE math [<!ENTITY lol0 "lol">'
          + "".join(f'<!ENTITY lol{i} "' + f"&lol{i - 1};" * 10 + '">' for i in range(1, 10))
          + "]>")
DECLARATION = "DTD or entity declarations are not allowed"


# --- guards: files and network -------------------------------------------------------------

@dataclass
class Secret:
    """A file hostile input points at: its marker must appear nowhere, and it is never read.

    A read is seen in the file's access time: set far in the past, a read moves it (relatime
    updates an access time older than the modification time).  On a file system mounted
    noatime reads cannot be seen, and ``was_read`` answers False.
    """

    path: Path
    marker: str
    observable: bool = True

    def arm(self) -> None:
        os.utime(self.path, (1, self.path.stat().st_mtime))

    def was_read(self) -> bool:
        return self.observable and self.path.stat().st_atime != 1


@pytest.fixture
def secret(tmp_path) -> Secret:
    path = tmp_path / "secret" / "secret.txt"
    path.parent.mkdir()
    s = Secret(path, f"SECRET-{random.Random(str(tmp_path)).getrandbits(64):016x}")
    path.write_text(s.marker + "\n", encoding="utf-8")
    s.arm()
    path.read_bytes()
    s.observable = s.was_read()
    if not s.observable:
        warnings.warn("file reads cannot be observed here (noatime): only the marker is checked",
                      stacklevel=1)
    s.arm()
    return s


@dataclass
class Network:
    """Records every connection attempt: from Python, and at a listening local port."""

    port: int
    server: socket.socket
    calls: list = field(default_factory=list)

    def connections(self) -> int:
        n = 0
        while True:
            try:
                conn, _ = self.server.accept()
            except BlockingIOError:
                return n
            conn.close()
            n += 1


@pytest.fixture
def network(monkeypatch) -> Iterator[Network]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.setblocking(False)
    net = Network(server.getsockname()[1], server)

    def refuse(*args, **kwargs):
        net.calls.append(args)
        raise OSError("network access during a test of hostile input")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield net
    server.close()


def _index_bytes(index: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(index.rglob("*")) if p.is_file())


def _rejects(index: Path) -> list[dict]:
    with open(index / "rejects.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


# --- hostile lines of a records JSONL ------------------------------------------------------

def _hostile_lines(secret: Secret, port: int) -> list[tuple[str, bytes, str]]:
    """(name, JSONL line, pattern of the reason) for each hostile record."""
    file_uri = secret.path.as_uri()
    deep = "<math>" + "<mrow>" * 100_000 + "<mi>x</mi>" + "</mrow>" * 100_000 + "</math>"

    def rec(rid: str, answer, **more) -> bytes:
        return json.dumps({"id": rid, "question": "q", "answer": answer, **more}).encode()

    garbage = random.Random(3).randbytes(400).replace(b"\n", b" ")
    return [
        ("billion laughs before <math>",
         rec("h-laughs", LAUGHS + f'<math xmlns="{NS}"><mi>&lol9;</mi></math>'),
         f"answer: {DECLARATION}"),
        ("billion laughs inside <math>",
         rec("h-laughs-in", f'<math xmlns="{NS}">{LAUGHS}<mi>&lol9;</mi></math>'),
         f"answer: {DECLARATION}"),
        ("XXE to a file",
         rec("h-xxe-file", f'<!DOCTYPE m [<!ENTITY x SYSTEM "{file_uri}">]>'
                           "<math><mi>&x;</mi></math>"),
         f"answer: {DECLARATION}"),
        ("XXE to a file inside <math>",
         rec("h-xxe-file-in", f'<math><!DOCTYPE m [<!ENTITY x SYSTEM "{file_uri}">]>'
                              "<mi>&x;</mi></math>"),
         DECLARATION),
        ("XXE parameter entity",
         rec("h-xxe-pe", f'<math><!DOCTYPE m [<!ENTITY % p SYSTEM "{file_uri}"> %p;]>'
                         "<mi>x</mi></math>"),
         DECLARATION),
        ("entity reference without a DTD",
         rec("h-bare-entity", "It is <math><mi>&x;</mi></math>."),
         r"answer: formula 1 at character 6: undefined entity &x; \(only MathML"),
        ("XXE to the network",
         rec("h-xxe-net", f'<!DOCTYPE m [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/x">]>'
                          "<math><mi>&x;</mi></math>"),
         DECLARATION),
        ("external DTD",
         rec("h-dtd", f'<!DOCTYPE math SYSTEM "http://127.0.0.1:{port}/mathml.dtd">'
                      f'<math xmlns="{NS}"><mi>x</mi></math>'),
         f"answer: {DECLARATION}"),
        ("100,000-deep nesting", rec("h-deep", deep),
         "answer: formula 1 at character 0: MathML nested deeper than 256 levels"),
        ("binary garbage", garbage, r"invalid UTF-8 at byte \d+"),
        ("latin-1 text", '{"id": "h-latin1", "answer": "caf\u00e9"}'.encode("latin-1"),
         "invalid UTF-8 at byte 33: invalid continuation byte"),
        # UTF-16 of ASCII is valid UTF-8 (with NULs between the characters), but no JSON.
        ("UTF-16 text", json.dumps({"id": "h-utf16", "answer": "x"}).encode("utf-16-le"),
         "invalid JSON: Expecting property name enclosed in double quotes at column 2"),
        ("root in another namespace",
         rec("h-other-ns", '<math xmlns="http://example.com/other"><mi>x</mi></math>'),
         "root element <math> is in namespace 'http://example.com/other', not MathML"),
        ("malformed MathML", rec("h-malformed", "<math><mi>x</mo></math>"),
         "answer: formula 1 at character 0: malformed MathML: Opening and ending tag mismatch"),
        ("<math> never closed", rec("h-unclosed", "See <math><mi>x</mi> and more"),
         r"answer: <math> at character 4 has no closing </math>"),
        ("unknown entity", rec("h-entity", "<math><mi>&nosuch;</mi></math>"),
         "undefined entity &nosuch;"),
        ("NUL character", rec("h-nul", "<math><mi>\x00</mi></math>"), "malformed MathML"),
        ("missing id", json.dumps({"question": "q", "answer": "a"}).encode(), "missing 'id'"),
        ("empty id", rec(" ", "a"), "missing id"),
        ("missing answer", json.dumps({"id": "h-no-answer", "question": "q"}).encode(),
         "missing 'answer'"),
        ("blank answer", rec("h-blank", " \n\t"), "missing answer"),
        ("answer not a string", rec("h-list", ["<math/>"]),
         "'answer' must be a string, got list"),
        ("question not a string", rec("h-qdict", "a", question={"x": 1}),
         "'question' must be a string, got dict"),
        ("id not a string", json.dumps({"id": 12, "answer": "a"}).encode(),
         "'id' must be a string, got int"),
        ("invalid JSON", b'{"id": "h-json", "answer": "a"', "invalid JSON: Expecting"),
        ("JSON that is no object", b'["h-array", "a"]', "expected a JSON object, got list"),
        ("JSON nested too deeply", b'{"id": "h-nest", "answer": "a", "m": ' + b"[" * 100_000
         + b"]" * 100_000 + b"}", "invalid JSON: nested too deeply"),
        ("lone surrogate", b'{"id": "h-surrogate", "answer": "bad \\ud800 text"}',
         r"unpaired surrogate \\ud800 is not a Unicode character"),
        # Its reason names the line of the first copy: see hostile_jsonl.
        ("duplicate id", rec("variant-entities", "<math><mn>2</mn></math>"),
         "duplicate id 'variant-entities': already loaded from {first}"),
    ]


@pytest.fixture
def hostile_jsonl(tmp_path, data_dir, secret, network):
    """A records JSONL: the 25 good fixture records, the hostile lines spread among them.

    Returns the path, the good records as written and ``{line number: hostile case}``.
    """
    good = []
    for name in ("variants.jsonl", "corpus_sample.jsonl", "mse_sample.jsonl"):
        good += (data_dir / name).read_bytes().splitlines()
    hostile = _hostile_lines(secret, network.port)
    # Hostile case k goes after good record k * (len(good) - 1) // len(hostile): one or two
    # after each good record, and a good record last.
    lines, expected = [], {}
    for i, line in enumerate(good):
        lines.append(line)
        for k, case in enumerate(hostile):
            if k * (len(good) - 1) // len(hostile) == i:
                lines.append(case[1])
                expected[len(lines)] = case
    assert len(expected) == len(hostile) and lines[-1] == good[-1]
    path = tmp_path / "corpus" / "mixed.jsonl"
    first = next(n for n, line in enumerate(lines, 1) if b'"id": "variant-entities"' in line)
    for n, (name, line, pattern) in expected.items():
        expected[n] = (name, line, pattern.replace("{first}", re.escape(f"{path}:{first} ")))
    path.parent.mkdir()
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, [json.loads(g) for g in good], expected


def _check_hostile_build(index: Path, corpus: Path, good: list[dict], expected: dict,
                         secret: Secret, network: Network) -> None:
    with Store(index / "records.sqlite", readonly=True) as store:
        assert store.count() == len(good)
        for obj in good:
            got = store.by_id(obj["id"]).record
            assert got.answer == obj["answer"]
            assert got.question == obj["question"]
            assert got.final == (obj.get("final"))
            assert got.answer.encode("utf-8") == obj["answer"].encode("utf-8")
    rejects = {r["origin"]: r for r in _rejects(index)}
    assert len(rejects) == len(_rejects(index)) == len(expected)  # each once
    for lineno, (name, _, pattern) in expected.items():
        reject = rejects.get(f"{corpus}:{lineno}")
        assert reject is not None, f"{name} (line {lineno}) was not rejected"
        assert re.search(pattern, reject["reason"]), (name, reject["reason"])
    assert secret.marker.encode() not in _index_bytes(index)
    assert not secret.was_read()
    assert network.calls == [] and network.connections() == 0


def test_hostile_records_via_the_python_api(tmp_path, hostile_jsonl, secret, network):
    corpus, good, expected = hostile_jsonl
    index = tmp_path / "idx"
    report, manifest = build_store(LoadConfig([corpus], index, workers=0, batch_size=7,
                                              progress=False))
    assert (report.added, report.rejected) == (len(good), len(expected))
    assert manifest["store"]["rejects"] == len(expected)
    _check_hostile_build(index, corpus, good, expected, secret, network)


def test_hostile_records_via_the_command(tmp_path, run_cli, capsys, hostile_jsonl, secret,
                                         network):
    corpus, good, expected = hostile_jsonl
    index = tmp_path / "idx"
    assert run_cli(["index", "build", corpus, "--out", index, "--workers", "0",
                    "--no-vectors"]) == 0
    err = capsys.readouterr().err
    assert f"{len(expected)} rejected records: see" in err
    assert secret.marker not in err
    _check_hostile_build(index, corpus, good, expected, secret, network)
    assert run_cli(["index", "build", corpus, "--out", index, "--workers", "0", "--no-vectors",
                    "--strict"]) == 1


def test_fifty_megabyte_record_is_refused_without_being_parsed(tmp_path, monkeypatch):
    corpus = tmp_path / "big.jsonl"
    with open(corpus, "wb") as fh:
        fh.write(b'{"id": "before", "answer": "<math><mn>1</mn></math>"}\n')
        fh.write(b'{"id": "huge", "question": "", "answer": "<math><mtext>')
        fh.write(b"a" * (50 * 1024 * 1024))
        fh.write(b'</mtext></math>"}\n')
        fh.write(b'{"id": "after", "answer": "<math><mn>2</mn></math>"}\n')
    parsed = []
    real = loaders._json_object

    def spy(text, origin):
        parsed.append(len(text))
        return real(text, origin)

    monkeypatch.setattr(loaders, "_json_object", spy)
    tracemalloc.start()
    try:
        load_corpora(LoadConfig([corpus], tmp_path / "idx", workers=0, progress=False))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert max(parsed) < 100 and len(parsed) == 2  # the big line never reached the JSON parser
    assert peak < 16 * 1024 * 1024  # nor was it held whole
    assert _rejects(tmp_path / "idx") == [{"origin": f"{corpus}:2", "id": None,
                                           "reason": "line longer than the limit of 4194304 "
                                                     "bytes"}]
    with Store(tmp_path / "idx" / "records.sqlite", readonly=True) as store:
        assert [store.by_id(i).record.answer for i in ("before", "after")] == \
            ["<math><mn>1</mn></math>", "<math><mn>2</mn></math>"]


# --- hostile files in a folder -------------------------------------------------------------

def _utf7(text: str) -> str:
    # UTF-7 spelling of the markup characters, which a check of the UTF-8 text cannot see.
    return text.replace("<", "+ADw-").replace("!", "+ACE-").replace("%", "+ACU-")


@pytest.fixture
def hostile_folder(tmp_path, sample_dir, data_dir, secret, network):
    """A folder of the 9 good MathML files and 16 hostile ones: (folder, good, {file: reason})."""
    folder = tmp_path / "corpus"
    shutil.copytree(sample_dir / "mathml", folder / "sample")
    shutil.copytree(data_dir / "mathml", folder / "more")
    good = sorted(p for p in folder.rglob("*") if p.is_file())
    shutil.copytree(data_dir / "hostile", folder / "hostile")
    hostile = folder / "hostile"
    uri = secret.path.as_uri()
    files = {
        "xxe-file.mml": f'<!DOCTYPE math [<!ENTITY x SYSTEM "{uri}">]>'
                        f'<math xmlns="{NS}"><mi>&x;</mi></math>',
        "xxe-parameter.xml": f'<!DOCTYPE record [<!ENTITY % p SYSTEM "{uri}"> %p;]>'
                             "<record><answer>a</answer></record>",
        "xxe-network.mml": f'<!DOCTYPE math [<!ENTITY x SYSTEM "http://127.0.0.1:{network.port}'
                           f'/x">]><math xmlns="{NS}"><mi>&x;</mi></math>',
        "external-dtd-live.xml": f'<!DOCTYPE math SYSTEM "http://127.0.0.1:{network.port}/m.dtd">'
                                 f'<math xmlns="{NS}"><mi>x</mi></math>',
        "bare-entity.mml": f'<math xmlns="{NS}"><mi>&x;</mi></math>',
        "utf7-doctype.xml": '<?xml version="1.0" encoding="UTF-7"?>'
                            + _utf7(f'<!DOCTYPE record [<!ENTITY % p SYSTEM "{uri}"> %p;]>')
                            + "<record><answer>a</answer></record>",
        "deep.mml": "<math>" + "<mrow>" * 100_000 + "<mi>x</mi>" + "</mrow>" * 100_000
                    + "</math>",
        "no-answer.xml": "<record id='r'><question>q</question></record>",
        "latin1.xml": None,
    }
    for name, text in files.items():
        if text is not None:
            (hostile / name).write_text(text, encoding="utf-8")
    (hostile / "latin1.xml").write_bytes("<record><answer>caf\u00e9</answer></record>"
                                         .encode("latin-1"))
    with open(hostile / "huge.mml", "wb") as fh:
        fh.truncate(50 * 1024 * 1024)  # sparse
    (hostile / "link.mml").symlink_to(secret.path)
    with open(os.path.join(os.fsencode(hostile), b"na\xefve.mml"), "w", encoding="utf-8") as fh:
        fh.write(f'<math xmlns="{NS}"><mi>x</mi></math>')
    expected = {
        "billion-laughs.mml": DECLARATION,
        "external-dtd.xml": DECLARATION,
        "garbage.mml": r"invalid UTF-8 at byte \d+",
        "other-namespace.mml": "root <math> is not in the MathML namespace",
        "svg-root.xml": "root element <svg> is neither <record>, <html> nor MathML <math>",
        "unclosed.xml": "malformed XML: Opening and ending tag mismatch: math line 1 and answer",
        "utf16.xml": "invalid UTF-8 at byte 0",
        "xxe-file.mml": DECLARATION,
        "xxe-parameter.xml": DECLARATION,
        "xxe-network.mml": DECLARATION,
        "external-dtd-live.xml": DECLARATION,
        "bare-entity.mml": "undefined entity &x;",
        "utf7-doctype.xml": "malformed XML: Start tag expected",
        "deep.mml": "XML nested deeper than 256 levels",
        "no-answer.xml": "no answer section",
        "latin1.xml": "invalid UTF-8 at byte 19: invalid continuation byte",
        "huge.mml": "file of 52428800 bytes is over the limit of 4194304",
        "na\ufffdve.mml": "file name is not valid UTF-8",
    }
    return folder, good, {str(hostile / k): v for k, v in expected.items()}


@pytest.mark.parametrize("via", ["api", "command"])
def test_hostile_files_in_a_folder(tmp_path, run_cli, hostile_folder, secret, network, via):
    folder, good, expected = hostile_folder
    index = tmp_path / "idx"
    if via == "api":
        build_store(LoadConfig([folder], index, workers=0, progress=False))
    else:
        assert run_cli(["index", "build", folder, "--out", index, "--workers", "0",
                        "--no-vectors", "-q"]) == 0
    rejects = {r["origin"]: r["reason"] for r in _rejects(index)}
    assert sorted(rejects) == sorted(expected)  # the symbolic link is not even looked at
    for origin, pattern in expected.items():
        assert re.search(pattern, rejects[origin]), (origin, rejects[origin])
    with Store(index / "records.sqlite", readonly=True) as store:
        assert store.count() == len(good) == 9
        for path in good:
            original = read_mathml_file(path)
            got = store.by_id(original.id).record
            assert got == original
            text = path.read_text(encoding="utf-8")
            assert got.answer in text and (got.question or "") in text
    assert secret.marker.encode() not in _index_bytes(index)
    assert not secret.was_read()
    assert network.calls == [] and network.connections() == 0


def test_a_lone_record_file_stays_byte_exact(tmp_path, sample_dir):
    # Beside the check above: the answer of a lone <math> file is the file, character for
    # character, whatever the entities, comments and spacing inside it.
    path = sample_dir / "mathml" / "derivative.mml"
    index = tmp_path / "idx"
    load_corpora(LoadConfig([path], index, workers=0, progress=False))
    with Store(index / "records.sqlite", readonly=True) as store:
        stored = store.by_id("derivative").record
    assert isinstance(stored, Record)
    assert stored.answer.encode("utf-8") == path.read_bytes().strip()
