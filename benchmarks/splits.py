"""The even and odd halves of the dev match queries, and the table the benchmarks print of them.

Settings (a weight, a margin) are chosen on the even-numbered queries -- line order of
``queries.jsonl``, counting from 0 -- and the odd ones are held out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

SPLITS = ("even", "odd", "all")


def halves(queries: Sequence[tuple[str, str]]) -> dict[str, set[str]]:
    """``{"even", "odd", "all"}``: the ids of the even- and odd-numbered *queries*, and all."""
    ids = {q for q, _ in queries}
    even = {q for i, (q, _) in enumerate(queries) if i % 2 == 0}
    return {"even": even, "odd": ids - even, "all": ids}


def print_split_table(label: str, table: Mapping[Any, Mapping], names: Sequence,
                      width: int = 8, total: str | None = None) -> None:
    """Print MRR@10 and R@1 of every query group, a line per name of *table* and split.

    Args:
        label: heading of the first column (what *names* are: weights, systems).
        table: ``table[name][split][group][metric]``, as :func:`mathcore.evaluate.
            evaluate_splits` gives for each name.
        names: the rows, in order; the groups are those of the first.
        width: width of the first column.
        total: a metric printed last for the ``all`` group (e.g. ``recall@100``).
    """
    groups = sorted(table[names[0]]["all"])
    print(f"{label:<{width}}{'split':<6}"
          + "".join(f"{g + ' MRR@10':>16}{g + ' R@1':>12}" for g in groups)
          + (f"{'all ' + total:>16}" if total else ""))
    for name in names:
        for split in SPLITS:
            row = table[name][split]
            cells = [f"{row[g]['mrr@10']:16.4f}{row[g]['recall@1']:12.4f}" if g in row
                     else f"{'-':>16}{'-':>12}" for g in groups]  # no query of g in the split
            print(f"{name!s:<{width}}{split:<6}" + "".join(cells)
                  + (f"{row['all'][total]:16.4f}" if total else ""))


TASKS = ("match", "match_mse")


def dev_match(data: Path, stride: int = 1) -> tuple[list[tuple[str, str]], dict]:
    """The judged dev match queries of *data* (every *stride*-th, in file order) and their qrels."""
    return dev_task(data, "match", stride)


def dev_task(data: Path, name: str, stride: int = 1) -> tuple[list[tuple[str, str]], dict]:
    """The judged queries of the task folder *data*/tasks/*name* (``match``: the dev match
    queries; ``match_mse``: the Math StackExchange dev questions), every *stride*-th in file
    order, and their qrels."""
    from mathcore.runs import iter_queries, read_qrels

    if name not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {name!r}")
    task = data / "tasks" / name
    qrels = read_qrels(task / "qrels.tsv")
    queries = [(q, t) for q, t in iter_queries(task / "queries.jsonl") if q in qrels][::stride]
    return queries, {q: qrels[q] for q, _ in queries}
