"""The index folder's layout: one name for each file and folder it holds.

An index folder is ``manifest.json`` (the commit point: what the other parts are), the record
store ``records.sqlite``, ``rejects.jsonl``, ``dense/`` (answer vectors, under rowids or,
built with passages, passage ids: :mod:`index.passages`), ``lexical/`` (BM25)
and, once duplicate search has run, ``questions/`` (question vectors).
"""

MANIFEST = "manifest.json"
STORE_FILE = "records.sqlite"
REJECTS_FILE = "rejects.jsonl"
DENSE_DIR = "dense"
LEXICAL_DIR = "lexical"
QUESTIONS_DIR = "questions"
# Chunks of vectors encoded but not yet in the vector index: an interrupted build resumes here.
PENDING_DIR = "pending"
