"""Evaluate the tagger on a labelled JSONL file.

Each row: ``title``, ``text``, ``labels`` (gold subset of escalation/negotiation), optional ``scored``
(the labels that count for the row; default both), optional ``stance`` (gold dominant negotiation
stance) and ``source``. Reports precision/recall/F1/support per label, overall and per source, and
stance accuracy on rows with a gold stance.

    python -m streams.tagging.evaluate FILE [--report out.json] [--pack PACK.yaml] [--errors N]
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
                counts[source][lb][idx] += 1
                if idx and keep_errors:
                    errors.append({"id": row.get("id"), "source": source, "label": lb,
                                   "error": "fp" if idx == 1 else "fn", "signals": result["signals"]})
            gold_stance = row.get("stance")
            if gold_stance:
                got = result["negotiation_stance"]
                stance_total += 1
                stance_by_source[source][1] += 1
                if got == gold_stance:
                    stance_ok += 1
                    stance_by_source[source][0] += 1
                elif keep_errors:
                    errors.append({"id": row.get("id"), "source": source, "label": "stance",
                                   "error": f"{got} != {gold_stance}", "signals": result["signals"]})
    report: dict[str, Any] = {
        "file": str(path),
        "rows": rows,
        "lexicon_version": tagger.version,
        "overall": {lb: _prf(*counts["overall"][lb]) for lb in LABELS},
        "by_source": {
            src: {lb: _prf(*c[lb]) for lb in LABELS if sum(c[lb])}
            for src, c in sorted(counts.items()) if src != "overall"
        },
        "stance": {
            "accuracy": round(stance_ok / stance_total, 4) if stance_total else None,
            "count": stance_total,
            "correct": stance_ok,
            "by_source": {s: {"accuracy": round(v[0] / v[1], 4), "count": v[1]}
                          for s, v in sorted(stance_by_source.items())},
        },
    }
    if keep_errors:
        report["errors"] = errors
    return report


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
    for src, block in report["by_source"].items():
        add(src, block)
    st = report["stance"]
    lines.append("")
    acc = "n/a" if st["accuracy"] is None else f"{st['accuracy']:.3f}"
    lines.append(f"stance accuracy: {acc} ({st['correct']}/{st['count']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m streams.tagging.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("file", help="labelled JSONL file")
    ap.add_argument("--report", help="write the JSON report here")
    ap.add_argument("--pack", help="rule pack YAML (default: the bundled pack)")
    ap.add_argument("--errors", type=int, default=0, metavar="N", help="print up to N misclassified row ids")
    args = ap.parse_args(argv)
    tagger = load_tagger(args.pack) if args.pack else load_tagger()
    report = evaluate(args.file, tagger, keep_errors=bool(args.errors))
    print(format_report(report))
    if args.errors:
        for err in report["errors"][: args.errors]:
            sig = "; ".join(f"{s['category']}:{s['stance']}:{s['text']!r}" for s in err["signals"])
            print(f"{err['error']:>4} {err['label']:<11} {err['source']:<18} {err['id']}  [{sig}]")
    if args.report:
        out = {k: v for k, v in report.items() if k != "errors"}
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
