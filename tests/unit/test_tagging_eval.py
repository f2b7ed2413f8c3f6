"""streams.tagging.evaluate on a tiny labelled file of our own sentences."""

from __future__ import annotations

import json

from streams.tagging.evaluate import evaluate, format_report, main

ROWS = [
    {"id": "a", "title": "", "text": "Russian artillery shelled a village near Sumy.", "labels": ["escalation"],
     "scored": ["escalation", "negotiation"], "stance": None, "source": "wire"},
    {"id": "b", "title": "Kyiv rejects talks", "text": "Officials ruled out negotiations this winter.",
     "labels": ["negotiation"], "scored": ["escalation", "negotiation"], "stance": "rejected", "source": "wire"},
    {"id": "c", "title": "", "text": "A bakery opened in Lviv.", "labels": [], "scored": ["escalation"],
     "stance": None, "source": "local"},
    {"id": "d", "title": "", "text": "Nothing about the war here.", "labels": ["negotiation"],
     "scored": ["negotiation"], "stance": None, "source": "local"},
]


def test_evaluate_report(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n", encoding="utf-8")
    rep = evaluate(path)
    esc, neg = rep["overall"]["escalation"], rep["overall"]["negotiation"]
    assert (esc["tp"], esc["fp"], esc["fn"]) == (1, 0, 0) and esc["f1"] == 1.0
    assert (neg["tp"], neg["fp"], neg["fn"]) == (1, 0, 1) and neg["recall"] == 0.5
    assert rep["by_source"]["local"]["negotiation"]["support"] == 1
    assert "escalation" not in rep["by_source"]["local"] or rep["by_source"]["local"]["escalation"]["support"] == 0
    assert rep["stance"] == {"accuracy": 1.0, "count": 1, "correct": 1,
                             "by_source": {"wire": {"accuracy": 1.0, "count": 1}},
                             "confusion": {"rejected": {"rejected": 1}}}
    text = format_report(rep)
    assert "stance accuracy: 1.000 (1/1)" in text and "negotiation" in text
    assert "stance confusion" in text

    out = tmp_path / "report.json"
    assert main([str(path), str(path), "--report", str(out)]) == 0
    written = json.loads(out.read_text())["files"][str(path)]
    assert written["overall"]["escalation"]["f1"] == 1.0
    # the miss of row d is listed with its id and source, the rest of the error lists are empty
    assert [(e["id"], e["source"]) for e in written["errors"]["negotiation"]["fn"]] == [("d", "local")]
    assert written["errors"]["negotiation"]["fp"] == [] and written["errors"]["stance"] == []


def test_news_scope_and_stance_confusion(tmp_path):
    rows = [
        {"id": "n1", "title": "Kremlin rejects truce in Ukraine", "text": "", "labels": ["negotiation"],
         "stance": "rejected", "source": "news-x"},
        {"id": "n2", "title": "Ukraine and Russia agree a prisoner swap", "text": "", "labels": ["negotiation"],
         "stance": "proposed", "source": "news-x"},
        {"id": "m1", "title": "", "text": "Russian drones hit Sumy.", "labels": ["escalation"], "source": "monitor"},
    ]
    path = tmp_path / "gold.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    rep = evaluate(path, keep_errors=True)
    assert rep["news"]["negotiation"]["support"] == 2 and "escalation" not in rep["news"]
    assert rep["stance"]["confusion"] == {"proposed": {"agreed": 1}, "rejected": {"rejected": 1}}
    assert [e["id"] for e in rep["errors"]["stance"]] == ["n2"]
