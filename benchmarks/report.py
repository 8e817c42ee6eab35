"""Generated documentation pages: the results page and the CLI reference.

    python -m benchmarks.report results [--out docs/results.md]
    python -m benchmarks.report cli [--out docs/cli.md]

``results`` renders, for every condition of the reproduction matrix
(``benchmarks/conditions/*.yaml``), its description, its commands and a table of figure /
expected / measured / verdict read from ``benchmarks/results/NAME.verdicts.json``, which
``python -m benchmarks.matrix`` writes after running the condition ("not rerun" where there is
none), plus a per-source table for each saved results file in the ``mathmatch bench`` format
(``systems -> metrics -> group -> metric``).  No figure is typed in by hand: a page is only
as current as the last matrix run.

``cli`` walks ``mathmatch.cli.build_parser()`` (subcommands at any depth) and writes each
command's usage, description and options.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
CONDITIONS = ROOT / "benchmarks" / "conditions"
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
NOT_RERUN = "not rerun"


# --- the results page ---------------------------------------------------------------------------

def expected_text(exp: dict) -> str:
    """An expected figure as the page shows it (``0.936 (±0.01)``, ``>= 5000``)."""
    tol = exp.get("tolerance")
    if "min" in exp:
        text = f">= {exp['min']}"
    elif "max" in exp:
        text = f"<= {exp['max']}"
    else:
        value = exp["value"]
        text = f"{value:.3f}" if isinstance(value, float) else f"{value}"
    if tol:
        text += f" (±{tol:g}" + (" as a fraction)" if "value" not in exp else ")")
    return text


def _matrix_expected(exp: dict) -> Any:
    """The expected value as ``benchmarks.matrix`` saves it in a verdicts row."""
    if "value" in exp:
        return exp["value"]
    return f">= {exp['min']}" if "min" in exp else f"<= {exp['max']}"


def _cell(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        text = f"{value:.{digits}f}" if abs(value) < 100 else f"{value:,.1f}"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _machine_text(machine: dict) -> str:
    parts = [str(machine.get(k)) for k in ("cpu", "processor") if machine.get(k)][:1]
    cores = machine.get("cores", machine.get("cpus"))
    if cores:
        parts.append(f"{cores} cores")
    if machine.get("memory_gib"):
        parts.append(f"{machine['memory_gib']} GiB")
    if "gpu" in machine:
        parts.append(machine["gpu"] or "no GPU")
    if machine.get("python"):
        parts.append(f"Python {machine['python']}")
    if machine.get("git"):
        parts.append(f"git {machine['git']}")
    return ", ".join(parts) or "not stated"


def _load_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def figure_rows(cond: dict, verdicts: dict | None) -> list[tuple[str, str, str, str]]:
    """(figure, expected, measured, verdict) for each expected figure of a condition.

    Measured values and verdicts come from the saved verdicts file; a figure it lacks is
    "not rerun".  Rows of the verdicts file that the condition no longer names (a failed
    command, a figure since removed) follow at the end.
    """
    saved = {row["figure"]: row for row in (verdicts or {}).get("rows", [])}
    rows = []
    for exp in cond.get("expected", []):
        row = saved.pop(exp["figure"], None)
        if row is None:
            rows.append((exp["figure"], expected_text(exp), "—", NOT_RERUN))
        else:
            want = expected_text(exp)
            if str(row["expected"]) != str(_matrix_expected(exp)):
                want += f" (the run checked {_cell(row['expected'])})"
            rows.append((exp["figure"], want, _cell(row["got"]), row["verdict"]))
    for fig, row in saved.items():
        rows.append((fig, _cell(row["expected"]), _cell(row["got"]), row["verdict"]))
    return rows


def bench_tables(results: dict) -> list[str]:
    """Markdown lines: one row per system and query group of a ``mathmatch bench`` results file."""
    systems = {name: s for name, s in results.get("systems", {}).items()
               if isinstance(s, dict) and isinstance(s.get("metrics"), dict)}
    if not systems:
        return []
    metrics = results.get("metrics")
    if not isinstance(metrics, list):
        metrics = sorted({m for s in systems.values() for g in s["metrics"].values() for m in g})
    counts = results.get("queries", {})
    head = " | ".join(m.replace("recall", "R").replace("mrr", "MRR").replace("ndcg", "nDCG")
                      for m in metrics)
    lines = [f"| system | queries | {head} |", "|---|---|" + "---|" * len(metrics)]
    for name, system in systems.items():
        groups = system["metrics"]
        for group in sorted(groups, key=lambda g: (g != "all", g)):
            label = f"`{name}`" if group == "all" else f"— {group}"
            values = " | ".join(_cell(groups[group].get(m, ""), 3) for m in metrics)
            lines.append(f"| {label} | {counts.get(group, '')} | {values} |")
    return lines


def iter_conditions(conditions: Path) -> Iterator[dict]:
    import yaml

    for path in sorted(conditions.glob("*.yaml")):
        cond = yaml.safe_load(path.read_text(encoding="utf-8"))
        cond["_file"] = path.name
        yield cond


def render_results(conditions: Path = CONDITIONS, results: Path = RESULTS) -> str:
    """The whole results page, from the condition files and the saved results."""
    conds = list(iter_conditions(conditions))
    out = ["# Results", "",
           "*Generated by `python -m benchmarks.report results` from "
           "`benchmarks/conditions/*.yaml` and the results that `python -m benchmarks.matrix` "
           "(`make bench`) saved in "
           "`benchmarks/results/`. Do not edit by hand: rerun the matrix, then this command.*", "",
           "Each figure is **OK** when it equals the expected value at three decimals (or "
           "passes its `>=` / `<=` bound), **OKish** within the tolerance, **FAIL** otherwise; "
           f"**{NOT_RERUN}** means no saved run of the matrix holds it. The commands run on the "
           "dev data: `{data}` is `../shared/data`, `{work}` is `build/bench` (not committed), "
           "`mathmatch` is `python -m mathmatch.cli`.", "",
           "| condition | last run | OK | OKish | FAIL | not rerun |", "|---|---|---|---|---|---|"]
    sections = []
    for cond in conds:
        name = cond["name"]
        verdicts = _load_json(results / f"{name}.verdicts.json")
        rows = figure_rows(cond, verdicts)
        tally = {v: sum(1 for r in rows if r[3] == v) for v in ("OK", "OKish", "FAIL", NOT_RERUN)}
        when = (verdicts.get("date") or "date not stated") if verdicts else NOT_RERUN
        out.append(f"| [{name}](#{name}) | {when} | " + " | ".join(str(tally[v]) for v in tally)
                   + " |")
        sec = [f"## {name}", "", " ".join(str(cond.get("description", "")).split()), "",
               f"Condition file: `benchmarks/conditions/{cond['_file']}`.", "", "```sh"]
        sec += [str(cmd) for cmd in cond.get("commands", [])]
        sec += ["```", ""]
        if verdicts:
            machine = verdicts.get("machine")
            sec.append(f"Last run: {verdicts.get('date') or 'date not stated'}; machine: "
                       + (_machine_text(machine) if isinstance(machine, dict) else "not stated")
                       + ".")
        else:
            sec.append(f"Not rerun: no saved verdicts (`benchmarks/results/{name}.verdicts.json`).")
        sec += ["", "| figure | expected | measured | verdict |", "|---|---|---|---|"]
        sec += [f"| `{fig}` | {want} | {got} | {verdict} |" for fig, want, got, verdict in rows]
        files = [f"{name}.json"] + [f"{name}.{extra}.json"
                                    for extra in cond.get("extra_results", {})]
        for file in files:
            saved = _load_json(results / file)
            table = bench_tables(saved) if saved else []
            if table:
                sec += ["", f"Per source, from `benchmarks/results/{file}`:", ""] + table
                if isinstance(saved.get("machine"), dict):
                    sec += ["", f"Machine: {_machine_text(saved['machine'])}; "
                                f"{saved['machine'].get('date', 'date not stated')}."]
        sections.append("\n".join(sec))
    return "\n".join(out) + "\n\n" + "\n\n".join(sections) + "\n"


# --- the CLI reference --------------------------------------------------------------------------

def walk_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
                 ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    """(command words, parser, one-line help) for a parser and every subparser below it."""
    yield path, parser, None
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help for a in action._choices_actions}
        seen: set[int] = set()
        for name, sub in action.choices.items():
            if id(sub) in seen:  # an alias
                continue
            seen.add(id(sub))
            for words, p, h in walk_parsers(sub, path + (name,)):
                yield words, p, h if words != path + (name,) else helps.get(name)


def _is_leaf(parser: argparse.ArgumentParser) -> bool:
    return not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


def _usage(parser: argparse.ArgumentParser) -> str:
    original = parser.formatter_class
    parser.formatter_class = lambda prog: original(prog, width=100)
    try:
        return parser.format_usage().strip()
    finally:
        parser.formatter_class = original


def _invocation(action: argparse.Action) -> str:
    if action.metavar is not None:
        metavar = action.metavar if isinstance(action.metavar, str) else " ".join(action.metavar)
    elif action.choices is not None:
        metavar = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        metavar = action.dest.upper() if action.option_strings else action.dest
    if action.nargs in ("+", "*"):
        metavar = f"{metavar} [{metavar} ...]" if action.nargs == "+" else f"[{metavar} ...]"
    elif action.nargs == "?":
        metavar = f"[{metavar}]"
    if not action.option_strings:
        return metavar
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    return ", ".join(f"{o} {metavar}" for o in action.option_strings)


def _help(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if "%" in text:
        params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
        params["prog"] = prog
        if params.get("choices") is not None:
            params["choices"] = ", ".join(map(str, params["choices"]))
        try:
            text = text % params
        except (KeyError, TypeError, ValueError):
            pass
    return " ".join(text.split())


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if a.help is not argparse.SUPPRESS and not isinstance(a, argparse._SubParsersAction)
            and not isinstance(a, argparse._HelpAction)]


def _option_line(action: argparse.Action, prog: str) -> str:
    line = f"- `{_invocation(action)}`"
    if action.required and action.option_strings:
        line += " (required)"
    text = _help(action, prog)
    return line + (f": {text}" if text else "")


def render_cli(parser: argparse.ArgumentParser | None = None) -> str:
    """The CLI reference page of a parser (default: ``mathmatch.cli.build_parser()``)."""
    if parser is None:
        from mathmatch.cli import build_parser

        parser = build_parser()
    entries = list(walk_parsers(parser))
    # Options that every command carries (same flags, same help) are listed once.
    keys = [{(tuple(a.option_strings), a.help) for a in _options(p) if a.option_strings}
            for _, p, _ in entries]
    everywhere = set.intersection(*keys) if keys else set()
    top = parser.prog
    out = ["# Command-line reference", "",
           "*Generated by `python -m benchmarks.report cli` from `mathmatch.cli.build_parser()`. "
           "Do not edit by hand: change the parser, then rerun the command.*", "",
           f"`{top}` is installed as a console script; `python -m mathmatch.cli` is the same. "
           "Input and output formats are described in [formats.md](formats.md).", "",
           "| command | what it does |", "|---|---|"]
    for words, p, helptext in entries:
        if words and _is_leaf(p):
            anchor = "-".join((top, *words))
            out.append(f"| [`{' '.join((top, *words))}`](#{anchor}) | {helptext or ''} |")
    shared = [a for a in _options(parser) if (tuple(a.option_strings), a.help) in everywhere]
    if shared:
        out += ["", "On every command:", ""]
        out += [_option_line(a, top) for a in shared]
    for words, p, helptext in entries:
        title = " ".join((top, *words))
        out += ["", f"## {title}" if words else f"## {title} (top level)", ""]
        if p.description:
            out += [" ".join(p.description.split()), ""]
        elif helptext:
            out += [helptext[0].upper() + helptext[1:] + ".", ""]
        out += ["```", _usage(p), "```"]
        own = [a for a in _options(p) if (tuple(a.option_strings), a.help) not in everywhere]
        positional = [a for a in own if not a.option_strings]
        optional = [a for a in own if a.option_strings]
        if positional:
            out += ["", "Arguments:", ""] + [_option_line(a, p.prog) for a in positional]
        if optional:
            out += ["", "Options:", ""] + [_option_line(a, p.prog) for a in optional]
        if not _is_leaf(p):
            subs = [" ".join((top, *w)) for w, _, _ in entries
                    if len(w) == len(words) + 1 and w[:len(words)] == words]
            out += ["", "Subcommands: " + ", ".join(f"`{s}`" for s in subs) + "."]
    return "\n".join(out) + "\n"


# --- the command --------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report",
                                description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="page", metavar="PAGE", required=True)
    res = sub.add_parser("results", help="write docs/results.md from the saved matrix results")
    res.add_argument("--conditions", type=Path, default=CONDITIONS, metavar="DIR")
    res.add_argument("--results", type=Path, default=RESULTS, metavar="DIR")
    res.add_argument("--out", type=Path, default=DOCS / "results.md", metavar="FILE")
    cli = sub.add_parser("cli", help="write docs/cli.md from mathmatch.cli.build_parser()")
    cli.add_argument("--out", type=Path, default=DOCS / "cli.md", metavar="FILE")
    args = p.parse_args(argv)
    if args.page == "results":
        text = render_results(args.conditions, args.results)
    else:
        text = render_cli()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
