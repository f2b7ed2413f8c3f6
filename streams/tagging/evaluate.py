"""Evaluate the tagger on labelled JSONL files.

Each row: ``title``, ``text``, ``labels`` (gold subset of escalation/negotiation), optional ``scored``
(the labels that count for the row; default both), optional ``stance`` (gold item-level negotiation
stance) and ``source``. Reports precision/recall/F1/support per label, overall, for news sources only
(``source`` starting with ``news``) and per source; the item-level stance accuracy and its confusion
matrix (gold x predicted); and, with ``keep_errors``, the false positives, misses and stance errors
(row id, source, the signals found).

    python -m streams.tagging.evaluate FILE... [--report out.json] [--pack PACK.yaml] [--errors N]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from . import Tagger, load_tagger

LABELS = ("escalation", "negotiation")


def _prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4), "support": tp + fn,
            "tp": tp, "fp": fp, "fn": fn}


def evaluate(path: str | Path, tagger: Tagger | None = None, *, keep_errors: bool = False) -> dict[str, Any]:
    """Score ``tagger`` (default pack) on the JSONL file at ``path``; returns the report dict."""
    tagger = tagger or load_tagger()
    counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: {lb: [0, 0, 0] for lb in LABELS})
    stance_total = stance_ok = 0
    confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    stance_by_source: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    errors: list[dict[str, Any]] = []
    rows = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            row = json.loads(line)
            rows += 1
            source = row.get("source") or "unknown"
            result = tagger.tag(row.get("title") or "", row.get("text") or "")
            pred = set(result["labels"])
            gold = set(row.get("labels") or [])
            scored = row.get("scored") or list(LABELS)
            for lb in LABELS:
                if lb not in scored:
                    continue
                idx = 0 if (lb in pred and lb in gold) else 1 if lb in pred else 2 if lb in gold else None
                if idx is None:
                    continue
                counts["overall"][lb][idx] += 1
                if source.startswith("news"):
                    counts["news"][lb][idx] += 1
                counts[source][lb][idx] += 1
                if idx and keep_errors:
                    errors.append({"id": row.get("id"), "source": source, "label": lb,
                                   "error": "fp" if idx == 1 else "fn", "signals": _brief(result)})
            gold_stance = row.get("stance")
            if gold_stance:
                got = result["negotiation_stance"]
                confusion[gold_stance][got or "none"] += 1
                stance_total += 1
                stance_by_source[source][1] += 1
                if got == gold_stance:
                    stance_ok += 1
                    stance_by_source[source][0] += 1
                elif keep_errors:
                    errors.append({"id": row.get("id"), "source": source, "label": "stance",
                                   "error": f"{got} != {gold_stance}", "signals": _brief(result)})
    report: dict[str, Any] = {
        "file": str(path),
        "rows": rows,
        "lexicon_version": tagger.version,
        "overall": {lb: _prf(*counts["overall"][lb]) for lb in LABELS},
        "news": {lb: _prf(*counts["news"][lb]) for lb in LABELS if sum(counts["news"][lb])},
        "by_source": {
            src: {lb: _prf(*c[lb]) for lb in LABELS if sum(c[lb])}
            for src, c in sorted(counts.items()) if src not in ("overall", "news")
        },
        "stance": {
            "accuracy": round(stance_ok / stance_total, 4) if stance_total else None,
            "count": stance_total,
            "correct": stance_ok,
            "by_source": {s: {"accuracy": round(v[0] / v[1], 4), "count": v[1]}
                          for s, v in sorted(stance_by_source.items())},
            "confusion": {g: dict(sorted(p.items())) for g, p in sorted(confusion.items())},
        },
    }
    if keep_errors:
        report["errors"] = {
            lb: {kind: [e for e in errors if e["label"] == lb and e["error"] == kind] for kind in ("fp", "fn")}
            for lb in LABELS
        }
        report["errors"]["stance"] = [e for e in errors if e["label"] == "stance"]
    return report


def _brief(result: dict[str, Any]) -> list[str]:
    """The signals of a tag result as short strings: ``category:stance:"span"`` (``(not counted)`` marks
    signals that raise no label)."""
    return [f"{s['category']}:{s['stance']}{'' if s['counts'] else ' (not counted)'}:{s['text']!r}"
            for s in result["signals"]]


def format_report(report: dict[str, Any]) -> str:
    """A readable table of an :func:`evaluate` report."""
    lines = [f"{report['file']}: {report['rows']} rows, lexicon {report['lexicon_version']}", ""]
    header = f"{'scope':<22} {'label':<12} {'prec':>6} {'rec':>6} {'f1':>6} {'support':>8}"
    lines += [header, "-" * len(header)]

    def add(scope: str, block: dict[str, Any]) -> None:
        for lb, m in block.items():
            lines.append(f"{scope:<22} {lb:<12} {m['precision']:>6.3f} {m['recall']:>6.3f} {m['f1']:>6.3f} "
                         f"{m['support']:>8}")

    add("overall", report["overall"])
    add("news only", report["news"])
    for src, block in report["by_source"].items():
        add(src, block)
    st = report["stance"]
    lines.append("")
    acc = "n/a" if st["accuracy"] is None else f"{st['accuracy']:.3f}"
    lines.append(f"stance accuracy: {acc} ({st['correct']}/{st['count']})")
    for src, v in st["by_source"].items():
        lines.append(f"  {src:<22} {v['accuracy']:.3f} ({v['count']})")
    if st["confusion"]:
        preds = sorted({p for row in st["confusion"].values() for p in row})
        lines += ["", "stance confusion (rows gold, columns predicted):",
                  f"  {'':<12}" + "".join(f"{p[:11]:>12}" for p in preds)]
        for gold, row in st["confusion"].items():
            lines.append(f"  {gold:<12}" + "".join(f"{row.get(p, 0):>12}" for p in preds))
    return "\n".join(lines)


def evaluate_files(paths: list[str], tagger: Tagger | None = None, *, keep_errors: bool = True) -> dict[str, Any]:
    """:func:`evaluate` on each file: ``{"lexicon_version", "files": {path: report}}``."""
    tagger = tagger or load_tagger()
    return {"lexicon_version": tagger.version,
            "files": {str(p): evaluate(p, tagger, keep_errors=keep_errors) for p in paths}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m streams.tagging.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", metavar="FILE", help="labelled JSONL file(s)")
    ap.add_argument("--report", help="write the JSON report (with false positives, misses, stance errors) here")
    ap.add_argument("--pack", help="rule pack YAML (default: the bundled pack)")
    ap.add_argument("--errors", type=int, default=0, metavar="N", help="print up to N errors of each kind")
    args = ap.parse_args(argv)
    tagger = load_tagger(args.pack) if args.pack else load_tagger()
    result = evaluate_files(args.files, tagger)
    for report in result["files"].values():
        print(format_report(report))
        print()
        if args.errors:
            for kind, rows in _error_lists(report):
                for err in rows[: args.errors]:
                    print(f"{kind:<16} {err['source']:<22} {err['id']}  [{'; '.join(err['signals'])}]")
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def _error_lists(report: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    errs = report["errors"]
    return [*((f"{lb} {kind}", errs[lb][kind]) for lb in LABELS for kind in ("fp", "fn")), ("stance", errs["stance"])]


if __name__ == "__main__":
    sys.exit(main())
