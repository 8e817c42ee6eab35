"""``mathmatch serve``: the HTTP API over the sample index (FastAPI's TestClient, in-process).

The served index is a copy of the bundled sample with its question vectors; tests that write
an index (an ``index add`` while the server answers) take their own copy. FastAPI and httpx
come with the ``serve`` extra (``make setup`` installs it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from index.layout import STORE_FILE
from index.lock import WriteLock
from index.manifest import read_manifest, write_manifest
from mathcore.mathml import DEFAULT_LIMITS
from mathcore.records import Record, derive
from mathcore.store import Store
from mathmatch.display import display, prepare
from mathmatch.server import ServeConfig, create_app

LOCAL = "http://127.0.0.1"  # the server answers only requests naming a local host
CUPCAKES = ("Paul needs 63 cupcakes for a birthday party happening on Saturday. He already has "
            "8 chocolate cupcakes and 40 toffee cupcakes. How many more cupcakes should Paul "
            "buy?")
ZEBRA = {"id": "extra-zebra-0001", "source": "extra",
         "question": "A zebra named Quagga has 17 black stripes and 18 white stripes. How many "
                     "stripes does Quagga have?",
         "answer": "Quagga has <math><mn>17</mn><mo>+</mo><mn>18</mn><mo>=</mo><mn>35</mn></math>"
                   " stripes.",
         "final": "<math><mn>35</mn></math>"}
ZEBRA_QUERY = "How many stripes does the zebra Quagga have, 17 black and 18 white?"
BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
                  '<math><mi>&lol2;</mi></math>')


def _copy(index: Path, to: Path) -> Path:
    shutil.copytree(index, to)
    return to


@pytest.fixture(scope="module")
def served_dir(sample_index, tmp_path_factory) -> Path:
    """A copy of the sample index with current question vectors (built into the session's
    sample index, as the dedup tests do, so the suite encodes them once)."""
    from retriever.questions import QuestionIndex

    manifest = read_manifest(sample_index)
    if manifest.get("questions", {}).get("corpus_checksum") != manifest["store"]["checksum"]:
        QuestionIndex.open(sample_index, device="cpu").close()
    return _copy(sample_index, tmp_path_factory.mktemp("served") / "idx")


@pytest.fixture(scope="module")
def client(served_dir):
    with TestClient(create_app(served_dir, ServeConfig()), base_url=LOCAL) as c:
        yield c


def _stored(index: Path, record_id: str):
    with Store(index / STORE_FILE, readonly=True) as store:
        return store.by_id(record_id)


# --- /search ---------------------------------------------------------------------------------


def test_search_gives_records_as_stored_with_score_parts_that_add_up(client, served_dir):
    r = client.post("/search", json={"question": CUPCAKES, "k": 5})
    assert r.status_code == 200, r.text
    found = r.json()
    hits = found["hits"]
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5] and hits[0]["id"] == "gsm8k-test-00817"
    assert found["mode"] == "hybrid" and found["state"]["records"] == 306
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    for h in hits:
        rec = _stored(served_dir, h["id"]).record
        assert (h["question"], h["answer"], h["final"]) == (rec.question, rec.answer, rec.final)
        why = h["why"]
        # hybrid: z-scored dense + BM25 fusion, plus 3 x the givens coverage, is the score
        assert why["first_stage"] == pytest.approx(h["score"], abs=1e-9)
        total = why["dense"]["part"] + why["bm25"]["part"] + why["givens"]["part"]
        assert total == pytest.approx(h["score"], abs=1e-6)
        assert why["givens"]["part"] == pytest.approx(3.0 * why["givens"]["coverage"])
        assert set(why["givens"]["numbers"]) <= {"63", "8", "40"}
        assert why["givens"]["coverage"] == pytest.approx(len(why["givens"]["numbers"]) / 3)
        assert why["rerank"] is None and why["formulas"] is None
    top = hits[0]
    assert top["why"]["givens"]["numbers"] == ["8", "40", "63"]
    assert top["highlight"]["numbers"] == ["8", "40", "63"]
    assert 'class="given"' in top["display"]["answer"]


def test_the_written_body_is_the_search_response_of_the_schema(client):
    from mathmatch.server import _schemas

    got = client.post("/search", json={"question": CUPCAKES, "k": 4})
    assert got.status_code == 200 and got.headers["content-type"] == "application/json"
    schema = _schemas().SearchResponse
    assert schema.model_validate(got.json()).model_dump(mode="json") == got.json()
    service = client.app.state.service
    alone = service.executor.submit(service.search, CUPCAKES, 4, None).result()
    assert json.loads(json.dumps(alone)) == got.json()  # the sync path's response, the same


def test_the_parts_are_the_dense_and_bm25_scores_of_each_record(client):
    hybrid = client.post("/search", json={"question": CUPCAKES, "k": 10}).json()["hits"]
    for mode in ("dense", "bm25"):
        single = client.post("/search", json={"question": CUPCAKES, "k": 100, "mode": mode})
        assert single.status_code == 200 and single.json()["mode"] == mode
        ranked = {h["id"]: (h["rank"], h["score"]) for h in single.json()["hits"]}
        for h in hybrid:
            part = h["why"][mode]
            if part["rank"] is not None:  # within the fused depth of that ranking
                assert ranked[h["id"]][0] == part["rank"]
            if h["id"] in ranked:
                assert part["score"] == pytest.approx(ranked[h["id"]][1], abs=1e-5)
            else:  # past that mode's first 100
                assert part["rank"] is None
                assert part["score"] <= min(score for _, score in ranked.values()) + 1e-6


def test_latex_in_a_question_is_searched_as_its_mathml(client):
    from latex2mathml.converter import convert

    latex = client.post("/search", json={"question": "Solve $x^2 - 5x + 6 = 0$ for x.",
                                         "k": 5}).json()
    mathml = f"Solve {convert('x^2 - 5x + 6 = 0')} for x."
    assert latex["query"] == mathml
    direct = client.post("/search", json={"question": mathml, "k": 5}).json()
    assert [(h["id"], h["score"]) for h in latex["hits"]] == \
        [(h["id"], h["score"]) for h in direct["hits"]]
    money = prepare("Pens cost $5 and pads $3. What do 2 of each cost?")
    assert "<math" not in money  # dollars before numbers are money, not LaTeX


# --- hostile and malformed input ---------------------------------------------------------------


@pytest.mark.parametrize("question, problem", [
    (BILLION_LAUGHS, "DTD or entity declarations are not allowed"),
    ("What is <math><mi>&lol9;</mi></math>?", "undefined entity &lol9;"),
    ("<math>" + "<mrow>" * 200 + "<mi>x</mi>" + "</mrow>" * 200 + "</math>", "nested deeper"),
    ("Solve <math><mi>x</mi>", "has no closing </math>"),
    ("Solve $" + "{" * 3000 + "$", "nested too deeply"),
    ("   ", "question is empty"),
])
def test_refused_questions_are_422_naming_the_problem(client, question, problem):
    for path in ("/search", "/duplicates"):
        r = client.post(path, json={"question": question})
        assert r.status_code == 422 and problem in r.json()["detail"], r.text


@pytest.mark.parametrize("body, where", [
    ({"question": 5}, "question"),
    ({"question": "x", "k": "10"}, "k"),
    ({"question": "x", "k": 0}, "k"),
    ({"question": "x", "k": 101}, "k"),
    ({"question": "x", "mode": "fast"}, "mode"),
    ({"question": "x", "colour": "red"}, "colour"),
    ({}, "question"),
])
def test_wrong_fields_are_422_naming_the_field(client, body, where):
    r = client.post("/search", json=body)
    assert r.status_code == 422
    assert any(where in d["loc"] for d in r.json()["detail"]), r.text


def test_bodies_over_the_limit_are_413(client):
    big = {"question": "x" * (300 * 1024)}
    r = client.post("/search", json=big)
    assert r.status_code == 413 and "larger than the limit of 262144 bytes" in r.json()["detail"]
    chunked = client.post("/search", content=iter([json.dumps(big).encode()]),
                          headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    r = client.post("/search", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_a_bug_is_a_short_500_and_other_hosts_are_refused(client, caplog):
    service = client.app.state.service

    def broken(record_id):
        raise KeyError("a secret in the traceback")

    service.record = broken
    try:
        r = client.get("/records/gsm8k-test-00817")
    finally:
        del service.record
    assert r.status_code == 500 and "secret" not in r.text and "internal error" in r.text
    assert "a secret in the traceback" in caplog.text  # the log has it
    assert client.get("/healthz", headers={"host": "attacker.example"}).status_code == 400


def test_displayed_mathml_keeps_mathml_only():
    hostile = ('<img src=x onerror="alert(1)"> and '
               '<math onload="alert(2)" href="javascript:alert(3)" display="block"><mrow>'
               '<mi style="color:red" class="x" mathvariant="bold">a</mi><script>alert(4)</script>'
               '<mn>48</mn><mtext>&lt;b&gt;</mtext>'
               '<maction actiontype="toggle" xlink:href="javascript:alert(5)" '
               'xmlns:xlink="http://www.w3.org/1999/xlink"><mi>b</mi></maction>'
               '<svg:svg xmlns:svg="http://www.w3.org/2000/svg"><svg:a/></svg:svg>'
               '<annotation-xml encoding="text/html"><iframe/></annotation-xml></mrow></math>')
    html, _ = display(hostile, marked=frozenset({"48"}))
    assert html.startswith("&lt;img src=x onerror=\"alert(1)\"&gt; and <math ")
    for bad in ("alert", "<script", "onload", "href", "style", "svg", "iframe", "maction",
                "xmlns", 'class="x"', "<b>"):
        assert bad not in html.replace("&lt;img src=x onerror=\"alert(1)\"&gt;", ""), bad
    assert '<mi mathvariant="bold">a</mi>' in html and '<mn class="given">48</mn>' in html
    assert 'display="block"' in html


def test_a_text_shown_again_is_marked_for_its_own_question_only():
    from mathmatch import display as shown

    text = ZEBRA["answer"]
    first, _ = display(text, marked=frozenset({"17"}))
    again, _ = display(text)  # read once, kept: the first marks must not stay on it
    assert '<mn class="given">17</mn>' in first and 'class="given"' not in again
    shown._plan.cache_clear()
    shown._formula.cache_clear()
    assert display(text) == (again, [])  # read afresh: the same
    assert display(text, marked=frozenset({"17"}))[0] == first


def _marked_on_the_tree(mathml: str, marked: frozenset[str], restated: bool) -> str:
    """What marking a formula's parsed tree gives (how display marked before it kept HTML)."""
    from lxml import etree

    from mathcore.mathml import parse_math
    from mathmatch.display import _safe_math

    root = parse_math(mathml)
    _safe_math(root)
    for mn in root.iter("mn"):
        if (mn.text or "").strip().replace(",", "") in marked:
            mn.set("class", "given")
    etree.cleanup_namespaces(root)
    if restated:
        root.set("class", "given-formula")
    return etree.tostring(root, encoding="unicode", with_tail=False)


def test_a_formula_read_once_is_marked_as_its_tree_would_be(data_dir):
    from mathcore.mathml import MathMLError
    from mathmatch.display import _Formula

    marked_any = 0
    for path in sorted((data_dir / "fidelity").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            mathml = json.loads(line)["mathml"]
            try:
                formula = _Formula(mathml, DEFAULT_LIMITS)
            except MathMLError:
                continue
            numbers = sorted(formula.numbers)
            for marked in (frozenset(numbers), frozenset(numbers[:1]), frozenset()):
                for restated in (False, True):
                    want = _marked_on_the_tree(mathml, marked, restated)
                    assert formula.shown(marked, restated) == want, (path.name, mathml)
                    marked_any += 'class="given"' in want
    assert marked_any > 50


def test_formulas_are_looked_for_through_the_stored_linear_text_with_the_same_html(
        served_dir):
    from retriever.formulas import formulas
    from retriever.givens import numbers

    with Store(served_dir / STORE_FILE, readonly=True) as store:
        stored = store.get(store.rowids())
    restated = 0
    for rec, other in zip(stored, stored[1:] + stored[:1], strict=True):
        for question in (rec.record.question, other.record.question):
            asked = formulas(question)
            marked = frozenset(numbers(question) & numbers(rec.answer_text))
            want = display(rec.record.answer, marked, asked)
            assert display(rec.record.answer, marked, asked, linear=rec.answer_text) == want
            restated += bool(want[1])
    assert restated >= 5  # the sample's answers restate their questions' formulas


# --- /duplicates -------------------------------------------------------------------------------


def test_duplicates_give_the_verdict_and_what_differs(client):
    same = client.post("/duplicates", json={"question": CUPCAKES, "k": 2}).json()
    assert same["verdict"] == "duplicate" and same["questions"] == "current"
    first = same["candidates"][0]
    assert first["id"] == "gsm8k-test-00817" and first["duplicate"] and first["score"] == 1.0
    assert first["evidence"]["restated"] and first["evidence"]["answers"]["differ"] is None
    assert first["evidence"]["givens"]["shared"] == ["40", "63", "8"]

    other = client.post("/duplicates", json={"question": CUPCAKES.replace("63", "75")}).json()
    first = other["candidates"][0]
    assert other["verdict"] == "near-duplicate" and first["kind"] == "near-duplicate"
    assert not first["duplicate"] and first["score"] < other["threshold"]
    diff = first["evidence"]["givens"]
    assert (diff["only_query"], diff["only_candidate"]) == (["75"], ["63"])

    wrong = client.post("/duplicates", json={"question": CUPCAKES, "final": "$16$"}).json()
    first = wrong["candidates"][0]
    assert first["id"] == "gsm8k-test-00817" and not first["duplicate"]
    assert first["evidence"]["answers"]["differ"] is True


# --- /records, /healthz, /preview, the page -------------------------------------------------------


def test_records_and_health(client, served_dir):
    r = client.get("/records/gsm8k-test-00817")
    rec = _stored(served_dir, "gsm8k-test-00817").record
    assert r.status_code == 200
    assert (r.json()["question"], r.json()["answer"]) == (rec.question, rec.answer)
    missing = client.get("/records/no-such-record")
    assert missing.status_code == 404 and "no-such-record" in missing.json()["detail"]
    health = client.get("/healthz").json()
    manifest = read_manifest(served_dir)
    assert health["records"] == 306 and health["encoder"] == manifest["dense"]["encoder"]
    assert health["committed"]["checksum"] == manifest["store"]["checksum"]
    assert health["serving"] == health["committed"] and health["writer"] is None
    assert health["modes"] == ["dense", "bm25", "hybrid"] and health["questions"] == "current"


def test_preview_writes_latex_as_mathml(client):
    one = client.get("/preview", params={"latex": r"\frac{1}{2}"})
    assert one.status_code == 200 and "<mfrac>" in one.json()["mathml"]
    text = client.post("/preview", json={"text": "Solve $x^2 = 4$."}).json()
    assert text["html"].startswith("Solve <math display=\"inline\">") and "<msup>" in text["html"]
    assert client.get("/preview", params={"latex": "x", "text": "y"}).status_code == 422
    assert client.post("/preview", json={"text": BILLION_LAUGHS}).status_code == 422
    assert client.post("/preview", json={"latex": "x" * 300_000}).status_code == 413


def test_the_page_and_the_api_docs_are_served(client):
    page = client.get("/")
    assert page.status_code == 200
    for hook in ('id="q"', 'id="results"', 'id="preview"', 'id="duplicate-banner"',
                 'src="/static/app.js"'):
        assert hook in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.replace('content="width', "")  # nothing from elsewhere
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/search", "/duplicates", "/records/{record_id}", "/healthz", "/preview"} <= set(paths)


def test_serve_config_is_checked():
    assert ServeConfig().host == "127.0.0.1" and ServeConfig().max_body_bytes == 256 * 1024
    for bad in ({"k_max": 0}, {"k_max": 101}, {"port": 70000}, {"device": "tpu"}):
        with pytest.raises(ValueError):
            ServeConfig(**bad)


# --- while a writer works ------------------------------------------------------------------------


def _ids(client, question: str) -> list[str]:
    r = client.post("/search", json={"question": question, "k": 10})
    assert r.status_code == 200, r.text
    return [h["id"] for h in r.json()["hits"]]


def test_an_index_add_is_seen_once_committed_and_never_before(served_dir, tmp_path, run_cli):
    index = _copy(served_dir, tmp_path / "idx")
    committed = read_manifest(index)["store"]
    with TestClient(create_app(index, ServeConfig()), base_url=LOCAL) as client:
        assert ZEBRA["id"] not in _ids(client, ZEBRA_QUERY)
        # a writer mid-add: the lock held, the record in the store, the manifest not yet new
        rec = Record(id=ZEBRA["id"], question=ZEBRA["question"], answer=ZEBRA["answer"],
                     final=ZEBRA["final"], source="extra", origin="extra.jsonl:1")
        with WriteLock(index, purpose="test writer"), Store(index / STORE_FILE) as store:
            with store.transaction():
                store.insert([(rec, derive(rec))])
            assert store.count() == committed["records"] + 1
            assert ZEBRA["id"] not in _ids(client, ZEBRA_QUERY)
            assert client.get(f"/records/{ZEBRA['id']}").status_code == 404
            health = client.get("/healthz").json()
            assert "test writer" in health["writer"]
            assert health["committed"]["records"] == committed["records"]
            assert health["serving"]["checksum"] == committed["checksum"]
            # a server started now opens the committed state too
            with TestClient(create_app(index, ServeConfig()), base_url=LOCAL) as late:
                assert ZEBRA["id"] not in _ids(late, ZEBRA_QUERY)
                assert late.get(f"/records/{ZEBRA['id']}").status_code == 404
            with store.transaction():  # the writer gives up; a real add follows
                store.remove([ZEBRA["id"]])
        corpus = tmp_path / "extra.jsonl"
        corpus.write_text(json.dumps(ZEBRA) + "\n")
        assert run_cli(["-q", "index", "add", index, corpus, "--workers", "0",
                        "--device", "cpu"]) == 0
        assert _ids(client, ZEBRA_QUERY)[0] == ZEBRA["id"]
        assert client.get(f"/records/{ZEBRA['id']}").json()["answer"] == ZEBRA["answer"]
        health = client.get("/healthz").json()
        assert health["serving"] == health["committed"]
        assert health["records"] == committed["records"] + 1 and health["writer"] is None
        # the question vectors predate the add: used, and said to be
        dups = client.post("/duplicates", json={"question": CUPCAKES}).json()
        assert dups["questions"] == "stale" and "mathmatch dedup" in dups["note"]
        assert dups["verdict"] == "duplicate"
        # without question vectors, duplicate search is refused, saying what to run
        manifest = read_manifest(index)
        del manifest["questions"]
        write_manifest(index, manifest)
        refused = client.post("/duplicates", json={"question": CUPCAKES})
        assert refused.status_code == 503
        assert f"mathmatch dedup {index}" in refused.json()["detail"]
        # a committed state that cannot be opened: the last one that could keeps answering
        manifest["dense"]["dir"] = "dense.gone"
        write_manifest(index, manifest)
        assert _ids(client, ZEBRA_QUERY)[0] == ZEBRA["id"]
        assert client.get("/healthz").json()["committed"]["records"] == committed["records"] + 1


@pytest.mark.slow
def test_with_a_cross_scorer_each_hit_carries_its_score(served_dir, tiny_llama_path, tmp_path):
    from mathcore.runs import linear_query
    from reranker import load_reranker
    from tests.models import tiny_reranker

    ckpt = tmp_path / "rr"
    tiny_reranker(served_dir, tiny_llama_path, ckpt)
    app = create_app(served_dir, ServeConfig(rerank=str(ckpt), symbolic=True))
    with TestClient(app, base_url=LOCAL) as client:
        hits = client.post("/search", json={"question": CUPCAKES, "k": 5}).json()["hits"]
    rr = load_reranker(ckpt, device="cpu")
    answers = [_stored(served_dir, h["id"]).answer_text for h in hits]
    expected = rr.score([linear_query("q", CUPCAKES)] * len(hits), answers)
    assert [h["why"]["rerank"] for h in hits] == pytest.approx(list(expected), abs=1e-4)
