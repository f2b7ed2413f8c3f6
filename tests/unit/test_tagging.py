"""Unit tests of the tagging core on our own example sentences (no corpus text)."""

from __future__ import annotations

import threading

import pytest

from streams.tagging import ESCALATION_STANCES, load_tagger, severity_from_score


@pytest.fixture(scope="module")
def tagger():
    return load_tagger()


def sig(result: dict, category: str) -> dict | None:
    return next((s for s in result["signals"] if s["category"] == category), None)


def test_result_shape(tagger):
    r = tagger.tag("Drones hit a substation near Kharkiv", "Officials said repairs would take days.")
    assert set(r) == {"labels", "signals", "actors", "locations", "escalation_score", "negotiation_score",
                      "severity", "negotiation_stance", "lexicon_version"}
    assert r["labels"] == ["escalation"]
    assert r["lexicon_version"] == tagger.version and tagger.version.startswith("ukraine-")
    assert 0.0 < r["escalation_score"] <= 1.0 and r["negotiation_score"] == 0.0
    assert r["severity"] in {"low", "medium", "high", "critical"}
    assert "Kharkiv" in r["locations"]
    for s in r["signals"]:
        assert set(s) == {"kind", "category", "stance", "counts", "text", "start", "end", "actors"}


def test_nothing_found_is_low(tagger):
    r = tagger.tag("Bakery wins regional bread prize", "The jury praised the crust.")
    assert r["labels"] == [] and r["signals"] == [] and r["severity"] == "low"
    assert r["escalation_score"] == 0.0 and r["negotiation_score"] == 0.0


def test_offsets_index_title_newline_text(tagger):
    title, text = "Talks resume", "Moscow and Kyiv agreed to a ceasefire on Monday."
    r = tagger.tag(title, text)
    doc = f"{title}\n{text}"
    assert r["signals"]
    for s in r["signals"]:
        assert doc[s["start"]:s["end"]] == s["text"]
    c = sig(r, "ceasefire")
    assert c["start"] == doc.index("ceasefire")


def test_offsets_without_title_index_text(tagger):
    text = "A missile struck a depot outside Odesa."
    r = tagger.tag("", text)
    m = sig(r, "missile_strike")
    assert text[m["start"]:m["end"]] == m["text"] == "missile struck"  # the frame "missile strike", past tense


def test_labels_ordered_escalation_first(tagger):
    r = tagger.tag("", "Negotiators met in Geneva for peace talks while artillery shelling continued near Kherson.")
    assert r["labels"] == ["escalation", "negotiation"]


def test_inflection_without_regexes(tagger):
    for sentence in ("Russia fired missiles at Dnipro.", "Russia fired a missile at Dnipro."):
        assert sig(tagger.tag("", sentence), "missile_strike")
    for sentence in ("Kyiv is ready to negotiate.", "Russian and Ukrainian envoys are negotiating in Riyadh.",
                     "Negotiations with Russia stalled.", "Ukraine negotiated a deal with Russia."):
        assert sig(tagger.tag("", sentence), "peace_talks"), sentence


def test_word_boundaries(tagger):
    # "shell" inside "bombshell" and "eggshell" must not count, nor "truce" inside an unrelated word
    r = tagger.tag("", "The singer dropped a bombshell album with an eggshell cover.")
    assert r["signals"] == []


def test_case_insensitive(tagger):
    assert tagger.tag("", "CEASEFIRE AGREED BY RUSSIA AND UKRAINE")["labels"] == ["negotiation"]


def test_negation_denied(tagger):
    s = sig(tagger.tag("", "The Kremlin said there are no plans for a ceasefire."), "ceasefire")
    assert s["stance"] == "denied"


def test_ruled_out_talks_rejected(tagger):
    s = sig(tagger.tag("", "Moscow ruled out talks with Kyiv this year."), "peace_talks")
    assert s["stance"] == "rejected"


def test_rejects_concessions(tagger):
    r = tagger.tag("", "Zelensky rejects any territorial concessions to Russia.")
    s = sig(r, "territorial_concession")
    assert s["stance"] == "rejected"
    assert "Zelensky" in s["actors"] and "Russia" in s["actors"]
    assert r["negotiation_stance"] == "rejected"


def test_will_not_concede_rejected(tagger):
    r = tagger.tag("", "Putin said he will not concede on territorial issues in any deal.")
    s = sig(r, "territorial_concession")
    assert s and s["stance"] == "rejected" and s["actors"] == ["Putin"]


def test_hedging_open(tagger):
    s = sig(tagger.tag("", "Western officials say the stalemate could lead to a freeze of the war in Ukraine."),
            "freeze")
    assert s["stance"] == "open"


def test_conditional(tagger):
    r = tagger.tag("", "Kyiv says any ceasefire must come with security guarantees from its allies.")
    assert sig(r, "ceasefire")["stance"] == "conditional"
    assert sig(r, "security_guarantees")["stance"] == "conditional"


def test_proposed_and_agreed(tagger):
    assert sig(tagger.tag("", "Turkey proposed a ceasefire between Russia and Ukraine."), "ceasefire")["stance"] \
        == "proposed"
    assert sig(tagger.tag("", "Russia and Ukraine signed a prisoner exchange deal."), "prisoner_exchange")["stance"] \
        == "agreed"


def test_openness(tagger):
    s = sig(tagger.tag("", "Putin expressed readiness for ceasefire discussions with Trump."), "ceasefire")
    assert s["stance"] == "open"


def test_threat_is_not_a_strike(tagger):
    r = tagger.tag("", "A Kremlin official threatens nuclear escalation if Western missiles are used.")
    cats = {s["category"] for s in r["signals"]}
    assert "nuclear_threat" in cats
    nuc = sig(r, "nuclear_threat")
    assert nuc["stance"] == "threatened"
    missiles = sig(r, "missile_strike")  # under "if": hypothetical, kept as evidence, not counted
    assert missiles["stance"] == "hypothetical" and not missiles["counts"]


def test_actual_strike_reported(tagger):
    s = sig(tagger.tag("", "Russian drones attacked the port of Izmail overnight."), "drone_strike")
    assert s["stance"] == "reported" and "Russia" in s["actors"]


def test_denied_attack_negated_and_not_counted(tagger):
    r = tagger.tag("", "The ministry denied shelling the village.")
    assert "escalation" not in r["labels"] and r["escalation_score"] == 0.0
    s = sig(r, "shelling")
    assert s["stance"] == "negated" and s["counts"] is False


def test_actors_only_same_sentence(tagger):
    r = tagger.tag("", "Trump spoke on Tuesday about Ukraine. Later, a truce was announced in the region.")
    assert sig(r, "ceasefire")["actors"] == []
    assert r["actors"] == ["Trump", "Ukraine"]


@pytest.mark.parametrize("lead", [
    "Sen. Kowalski said on Dec. 3 that Mr. Putin had agreed to a truce in Ukraine.",
    "Сен. Sen. Kowalski said on Dec. 3 that Mr. Putin had agreed to a truce in Ukraine.",
])
def test_titles_and_months_do_not_end_a_sentence(tagger, lead):
    """A split after "Mr." would cut the clause: Putin would not be the actor of the truce."""
    starts = tagger._sentence_starts(lead)
    assert starts == [0] if lead.isascii() else starts == [0, 5]
    assert "Putin" in sig(tagger.tag("", lead), "ceasefire")["actors"]


def test_ukrainian_and_russian_aliases(tagger):
    r = tagger.tag("", "Росія завдала ракетного удару по Києву.")
    assert sig(r, "missile_strike") and "Russia" in r["actors"] and "Kyiv" in r["locations"]
    r = tagger.tag("", "Зеленський заявив про готовність до переговорів.")
    assert sig(r, "peace_talks") and r["actors"] == ["Zelensky"]
    r = tagger.tag("", "Кремль отверг предложение о перемирии.")
    s = sig(r, "ceasefire")
    assert s and s["stance"] == "rejected" and s["actors"] == ["Russia"]
    r = tagger.tag("", "Мобилизация в России продолжается, дроны атаковали Белгород.")
    assert sig(r, "mobilization") and sig(r, "drone_strike")


def test_case_sensitive_us_alias(tagger):
    assert "United States" in tagger.tag("", "The US sent more artillery shells to Ukraine.")["actors"]
    assert "United States" not in tagger.tag("", "Let us hope the truce holds.")["actors"]


def test_scores_and_severity(tagger):
    weak = tagger.tag("", "Officials discussed a possible humanitarian corridor.")
    strong = tagger.tag("", "Russia launched missiles and drones at the power grid and threatened a nuclear strike.")
    assert strong["escalation_score"] > weak["escalation_score"]
    assert strong["severity"] in {"high", "critical"}
    assert severity_from_score(0.0) == "low" and severity_from_score(1.0) == "critical"
    order = ["low", "medium", "high", "critical"]
    values = [order.index(severity_from_score(x / 20)) for x in range(21)]
    assert values == sorted(values)


def test_stance_values_in_vocabulary(tagger):
    r = tagger.tag("Peace efforts", "Kyiv proposed talks; Moscow rejected them, but both agreed to a prisoner swap.")
    for s in r["signals"]:
        if s["kind"] == "negotiation":
            assert s["stance"] in {"proposed", "open", "agreed", "conditional", "rejected", "denied"}
        else:
            assert s["stance"] in ESCALATION_STANCES


def test_thread_safe(tagger):
    text = "Ukrainian forces repelled an assault near Pokrovsk while talks on a ceasefire continued."
    expected = tagger.tag("", text)
    out: list[dict] = []

    def work() -> None:
        for _ in range(50):
            out.append(tagger.tag("", text))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == expected for r in out)


def test_load_tagger_cached():
    assert load_tagger() is load_tagger()


# ---------------------------------------------------------------- modality, word sense, frames, item stance
@pytest.mark.parametrize(("text", "category", "stance"), [
    ("Both sides agreed to halt strikes on energy sites for a month.", "air_strike", "negated"),
    ("Warsaw vows a response if Russian drones cross into Poland.", "drone_strike", "hypothetical"),
    ("New sanctions are meant to deter a missile attack on the Baltic states.", "missile_strike", "hypothetical"),
    ("Four years after the full-scale invasion, the city reopens its damaged theatre.", "infrastructure_attack",
     "historical"),
    ("Russian drones hit a fuel depot near Odesa overnight.", "drone_strike", "reported"),
    ("Envoys met in Vienna as fears of a Russian invasion of Ukraine grew.", "ground_offensive", "hypothetical"),
    ("Invasion fears rise as Russian envoys leave the talks in Geneva.", "ground_offensive", "hypothetical"),
    ("Beijing set out its position on the Russian attacks on Ukrainian cities.", "ground_offensive", "historical"),
    ("Kyiv says the US weapons supply pause leaves its cities exposed.", "military_aid", "negated"),
    # "halt" and "push" head frames ("halt ~3 strikes", "push ~2 into"): without their tail they are cues
    ("Russian drone attacks halt for the first night in months.", "drone_strike", "negated"),
])
def test_escalation_modality(tagger, text, category, stance):
    r = tagger.tag("", text)
    s = sig(r, category)
    assert s is not None and s["stance"] == stance, r["signals"]
    assert s["counts"] is (stance in {"reported", "threatened"})
    if stance != "reported":
        assert "escalation" not in r["labels"]


def test_forward_cue_does_not_reach_back(tagger):
    # "if" governs what follows it, not the strike reported before it
    r = tagger.tag("", "Russian missiles struck Dnipro, and Kyiv warned of more if air defence runs short.")
    assert sig(r, "missile_strike")["stance"] == "reported"


@pytest.mark.parametrize("text", [
    "Kyiv must strike a deal with its creditors this year.",
    "The reform faces an uphill battle in parliament.",
    "A businessman was shot dead in his car outside a restaurant.",
    "The minister called the new tariffs an attack on our farmers.",
    "Inmates of a Russian penal colony described beatings of prisoners by the guards.",
    "A Russian senator launched a scathing attack on the Ukrainian president during the debate.",
    "The new radar could be used to detect missile launches from Russia.",
])
def test_other_senses_raise_no_escalation(tagger, text):
    assert "escalation" not in tagger.tag("", text)["labels"]


@pytest.mark.parametrize("text", [
    "Israel and Hamas agreed a truce in Gaza.",
    "The Kremlin welcomed the truce in Gaza and offered to mediate.",  # this war's party, another war's truce
    "The foreign minister talks to reporters about the economy.",
    "Freezing temperatures are expected across the region this week.",
])
def test_negotiation_needs_this_war(tagger, text):
    assert "negotiation" not in tagger.tag("", text)["labels"]


@pytest.mark.parametrize(("text", "category"), [
    ("Russian forces took control of two villages near Pokrovsk.", "ground_offensive"),
    ("Russian forces are taking control of a village near Kupiansk.", "ground_offensive"),
    ("Russia amasses tens of thousands of troops near the border with Ukraine.", "ground_offensive"),
    ("Russia and Ukraine swap 300 prisoners after talks in Istanbul.", "prisoner_exchange"),
])
def test_frames_inflect_and_bridge_gaps(tagger, text, category):
    s = sig(tagger.tag("", text), category)
    assert s is not None and s["counts"]


def test_frame_gap_is_bounded(tagger):
    r = tagger.tag("", "Russia amasses grain in its silos, and farmers say troops of volunteers bring in the harvest.")
    assert sig(r, "ground_offensive") is None


@pytest.mark.parametrize(("title", "text", "stance"), [
    ("Zelensky turns down Moscow's peace plan", "Kyiv said the plan would reward the invasion.", "rejected"),
    ("Kyiv to accept a truce only after Russian troops leave", "", "conditional"),
    ("Hopes rise for a Putin-Zelensky summit", "", "open"),
    ("Russia walks out of peace talks with Ukraine", "", "rejected"),
    ("Moscow pulls out of the grain deal with Ukraine", "", "rejected"),
    ("Kyiv refuses to sign the peace deal drafted in Moscow", "", "rejected"),
    ("Kyiv will agree to talks with Russia only once a full ceasefire holds", "", "conditional"),
    ("There is no agreement yet on a venue for Ukraine peace talks", "", "open"),
    ("Trump promises a quick end to the war in Ukraine", "", "proposed"),
    ("Ending the war in Ukraine tops the agenda of the new cabinet", "", "proposed"),
    ("Kyiv is willing to look at the Chinese plan for talks with Russia", "", "open"),
    ("Second day of Ukraine peace talks in Istanbul", "Moscow proposes a truce for the Easter weekend.", "agreed"),
    ("US envoy brings a new peace plan for Ukraine to Moscow", "", "proposed"),
    ("Kyiv opposes any peace plan that freezes the front line in Ukraine", "", "rejected"),
    ("Kyiv sees merit in the Brazilian peace initiative for Ukraine", "", "open"),
    ("Trump pushes truce talks between Ukraine and Russia", "", "proposed"),
    ("Ministers say Moscow should sit down to negotiate peace with Ukraine", "", "proposed"),
    ("Ukraine and Russia agree an energy truce", "Kyiv and Moscow refused to discuss territory.", "agreed"),
])
def test_item_stance_headline_first(tagger, title, text, stance):
    assert tagger.tag(title, text)["negotiation_stance"] == stance


def test_item_stance_none_without_negotiation(tagger):
    assert tagger.tag("Drones hit Kharkiv", "")["negotiation_stance"] is None
