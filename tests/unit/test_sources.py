"""Source registry: schema, outlet matching, wire origin and corroboration by origin and camp."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml

from streams.settings import SCHEMA_DIR
from streams.sources import (
    CAMPS,
    DEFAULT_REGISTRY,
    RegistryError,
    bumped_severity,
    default_registry,
    load_registry,
    split_url,
)


@pytest.fixture(scope="module")
def registry():
    return default_registry()


def _raw() -> dict:
    return yaml.safe_load(DEFAULT_REGISTRY.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------- the file


def test_registry_validates_against_its_schema():
    schema = json.loads((SCHEMA_DIR / "source-registry.v1.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(_raw())


def test_registry_is_versioned_and_seeded_with_the_outlets_of_this_war(registry):
    assert re.fullmatch(r"sources-\d{4}\.\d{1,2}\.\d+", registry.version)
    assert 80 <= len(registry.outlets) <= 150
    assert {o.camp for o in registry.outlets.values()} == set(CAMPS) - {"other"}
    wires = {oid for oid, o in registry.outlets.items() if o.wire}
    assert {"reuters", "ap", "afp", "tass", "ria-novosti", "interfax", "interfax-ukraine", "ukrinform", "unian",
            "dpa", "xinhua", "anadolu", "bloomberg"} <= wires
    camp = {oid: o.camp for oid, o in registry.outlets.items()}
    assert camp["tass"] == camp["rt"] == camp["izvestia"] == "russia-state"
    assert camp["meduza"] == camp["mediazona"] == camp["tv-rain"] == "russia-independent"
    assert camp["ukrinform"] == camp["general-staff-ua"] == "ukraine-official"
    assert camp["kyiv-independent"] == camp["ukrainska-pravda"] == "ukraine-media"
    assert camp["bbc"] == camp["dw"] == camp["nytimes"] == "western"
    assert camp["reuters"] == camp["al-jazeera"] == "international"


def test_the_registry_passes_its_own_examples(registry):
    assert registry.check_examples() == []


def _write(tmp_path, data: dict):
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_a_bad_camp_is_reported_with_file_line_and_entry(tmp_path):
    data = _raw()
    data["outlets"][3]["camp"] = "neutral"
    path = _write(tmp_path, data)
    with pytest.raises(RegistryError, match=rf"^{re.escape(str(path))}:\d+: invalid source registry at outlets/3/camp"):
        load_registry(path)


@pytest.mark.parametrize("field, value, message", [
    ("domains", ["reuters.com"], r"outlet 'cnn': domain 'reuters.com' already belongs to outlet 'reuters'"),
    ("aliases", ["The Reuters"], r"outlet 'cnn': name 'reuters' already belongs to outlet 'reuters'"),
    ("id", "reuters", r"outlet id 'reuters' is used twice"),
])
def test_clashes_between_outlets_name_both(tmp_path, field, value, message):
    data = _raw()
    cnn = next(o for o in data["outlets"] if o["id"] == "cnn")
    cnn[field] = value
    path = _write(tmp_path, data)
    with pytest.raises(RegistryError) as exc:
        load_registry(path)
    assert re.search(message, str(exc.value)), str(exc.value)
    line = int(re.match(rf"{re.escape(str(path))}:(\d+): ", str(exc.value)).group(1))
    lines = path.read_text(encoding="utf-8").splitlines()
    entry = max(i for i, text in enumerate(lines[:line], 1) if text.startswith("- id:"))
    assert lines[entry - 1] == f"- id: {cnn['id']}"  # the line is inside the offending entry


def test_a_pattern_that_does_not_compile_is_named(tmp_path):
    data = _raw()
    data["wire_patterns"]["attribution"].append("{credit} (unclosed")
    with pytest.raises(RegistryError, match=r"wire_patterns: pattern '\{credit\} \(unclosed' does not compile"):
        load_registry(_write(tmp_path, data))


def test_a_wording_with_an_unknown_field_is_refused(tmp_path):
    data = _raw()
    data["corroboration"]["wording"]["one_camp"] = "claimed by {side} only"
    with pytest.raises(RegistryError, match=r"corroboration wording: unknown or malformed field 'side'"):
        load_registry(_write(tmp_path, data))


def test_a_non_wire_cannot_carry_credits(tmp_path):
    data = _raw()
    cnn = next(o for o in data["outlets"] if o["id"] == "cnn")
    cnn["credits"] = ["CNN"]
    with pytest.raises(RegistryError, match=r"invalid source registry at outlets/\d+"):
        load_registry(_write(tmp_path, data))


# ------------------------------------------------------------------------------------------- matching


@pytest.mark.parametrize("url, expected", [
    ("https://www.bbc.com/news/articles/abc", "bbc"),
    ("https://m.bbc.co.uk/news/world-europe-1", "bbc"),
    ("http://mobile.nytimes.com/2026/11/03/world/europe/x.html", "nytimes"),
    ("https://amp.dw.com/en/x/a-1", "dw"),
    ("https://edition.cnn.com/2026/11/03/europe/x", "cnn"),
    ("https://english.nv.ua/nation/x.html", "nv"),
    ("https://newsukraine.rbc.ua/news/x", "rbc-ukraine"),
    ("https://www.rbc.ru/politics/03/11/2026/x", "rbc"),
    ("https://en.interfax.com.ua/news/general/1.html", "interfax-ukraine"),
    ("https://www.interfax.ru/world/1", "interfax"),
    ("HTTPS://WWW.TASS.COM./world/1", "tass"),
    ("https://user@tass.ru:8443/politika/1", "tass"),
    ("//ria.ru/20261103/x.html", "ria-novosti"),
    ("https://www-kyivindependent-com.cdn.ampproject.org/c/s/kyivindependent.com/x", "kyiv-independent"),
    ("https://defence--ua-com.cdn.ampproject.org/c/s/defence-ua.com/x", "defense-express"),
    ("https://t.me/s/mod_russia/4100", "mod-ru"),
    ("https://t.me/kpszsu/9000", "air-force-ua"),  # an outlet known by its channel only
    ("https://abcnews.go.com/International/x", "abc-news"),
])
def test_urls_match_by_host_and_parent_domains(registry, url, expected):
    outlet, how = registry.match(url=url)
    assert (outlet.id if outlet else None, how) == (expected, "url")


@pytest.mark.parametrize("url", [
    "https://notreuters.com/world/x",            # a look-alike is not a subdomain
    "https://reuters.com.mirror.example/world",  # nor is a registered domain inside another
    "https://go.com/abc",                        # the parent of a registered host is not registered
    "https://www.pravda.ru/news/1",              # not pravda.com.ua
    "https://t.me/some_unlisted_channel/1",
    "https://t.me/",
    "not a url at all",
    "",
])
def test_unlisted_hosts_match_nothing(registry, url):
    assert registry.match(url=url) == (None, "unknown")


@pytest.mark.parametrize("source, expected", [
    ("Reuters", "reuters"),
    ("REUTERS", "reuters"),
    ("  the associated  press ", "ap"),
    ("Associated Press", "ap"),
    ("AP", "ap"),
    ("Kyiv Independent", "kyiv-independent"),
    ("The Kyiv Independent", "kyiv-independent"),
    ("Interfax-Ukraine", "interfax-ukraine"),
    ("interfax ukraine", "interfax-ukraine"),
    ("Interfax", "interfax"),
    ("ТАСС", "tass"),
    ("Українська правда", "ukrainska-pravda"),
    ("www.meduza.io", "meduza"),
    ("https://zona.media/news/x", "mediazona"),
    ("novaya-gazeta-europe", "novaya-gazeta-europe"),
])
def test_sources_match_by_name_alias_id_or_host(registry, source, expected):
    outlet, how = registry.match(source=source)
    assert (outlet.id, how) == (expected, "source")


def test_source_is_tried_before_url_and_url_is_the_fallback(registry):
    assert registry.match("TASS", "https://www.reuters.com/x")[0].id == "tass"
    assert registry.match("Reuters World Feed", "https://www.reuters.com/x") == (registry.outlets["reuters"], "url")


def test_an_unknown_source_is_camp_other_flagged_and_named(registry):
    a = registry.attribute({"source": "", "url": "https://m.regional-blog.example/p/1", "text": "Drones hit a depot."})
    assert (a.known, a.matched_by, a.camp, a.credited) == (False, "unknown", "other", False)
    assert a.outlet.id == "unknown:regional-blog.example"
    assert a.outlet.display == "regional-blog.example"
    b = registry.attribute({"source": "Regional  Blog", "text": "Drones hit a depot."})
    assert (b.outlet.id, b.outlet.display, b.known) == ("unknown:regional blog", "Regional Blog", False)
    known = registry.attribute({"source": "DW", "text": "Drones hit a depot."})
    assert (known.known, known.matched_by, known.camp) == (True, "source", "western")


def test_split_url():
    assert split_url("https://User@Sub.Example.ORG.:8080/a/b?q#f") == ("sub.example.org", "/a/b")
    assert split_url("example.org/x") == ("example.org", "/x")


# ------------------------------------------------------------------------------------------- wire origin

LONG_LEAD = (
    "The weekly review begins with the weather, which turned cold early this year and slowed movement on "
    "both banks of the river, then covers the rotation of brigades, the state of the roads after the rains, "
    "the new field hospitals near the front, and the debate in parliament about the next mobilisation law. "
    "A second section looks at how both armies now use cheap drones to spot artillery and how that changed "
    "the way crews hide their guns. "
)


@pytest.mark.parametrize("title, text, expected", [
    ("", "KHARKIV, Nov 4 (Reuters) - A guided bomb hit an industrial site on the city's edge, the governor said.", "reuters"),
    ("Blast at port", "IZMAIL, Ukraine (AP) — Drones struck grain silos at a Danube port overnight.", "ap"),
    ("", "(AFP) - The foreign ministers will meet in Geneva next week, two diplomats said.", "afp"),
    ("", "MOSCOW, November 4. /TASS/. The Russian defence ministry said it repelled an attack near Kupiansk.", "tass"),
    ("", "МОСКВА, 4 ноября. /ТАСС/. Минобороны сообщило об отражении атаки.", "tass"),
    ("", "МОСКВА, 4 ноя — РИА Новости. В Минобороны рассказали о ходе боев.", "ria-novosti"),
    ("", "КИЇВ, 4 листопада — Укрінформ. Сили оборони відбили дев'ять атак.", "ukrinform"),
    ("", "Moscow and Minsk will hold joint drills in the spring, Interfax reported, citing the defence ministry.", "interfax"),
    ("", "Moscow and Minsk will hold joint drills in the spring, Interfax-Ukraine reported, citing intelligence.", "interfax-ukraine"),
    ("", "A power line was cut in the Sumy region, according to the state news agency Ukrinform.", "ukrinform"),
    ("", "Russia's envoy told Reuters that the proposal was still being studied in Moscow.", "reuters"),
    ("", "Военные отчитались о новых ударах, передает ТАСС.", "tass"),
    ("", "Енергетики відновили живлення, повідомляє Укрінформ.", "ukrinform"),
    ("", "Three drones were shot down over the region, TASS reports, citing local authorities.", "tass"),
    ("", "The municipal council met to discuss repairs. " * 12 + "Repairs will start next month. — Interfax-Ukraine", "interfax-ukraine"),
    ("", "The talks ended without a statement. " * 12 + "(Reporting by A. Writer; Editing by B. Editor)", "reuters"),
    ("Wire headline", "BERLIN, Nov 4 (dpa) - Germany will send more air defence systems, the ministry said.", "dpa"),
])
def test_wire_credits_are_found(registry, title, text, expected):
    wire = registry.wire_of(title, text)
    assert wire is not None and wire.id == expected


@pytest.mark.parametrize("text", [
    "Reuters could not independently verify the footage, which showed smoke over the refinery.",
    "A study by the Reuters Institute found that fewer people trust news about the war.",
    "The ministry barred Reuters, AFP and several other agencies from the briefing.",
    "The mayor said the shelter was full (AP Photo/Staff photographer) and asked for patience.",
    "Firefighters worked through the night (AFP via Getty Images) to put out the blaze.",
    "He spent ten years at TASS before joining the opposition newspaper.",
    "The exhibition of old TASS posters opened in a Riga gallery.",
    "Interfax-Ukraine's editor-in-chief spoke at the media forum.",
    "An APC was hit near the village; the RIAs of the region were closed.",
    "The state agencies — TASS among them — have stopped publishing casualty figures",
    "The ceasefire line was drawn up according to Tassos Andreou, the mediator's deputy.",  # not "Tass"
    LONG_LEAD + "Only in the last paragraph does it note that TASS reported the capture of a village, which Kyiv denied.",
    LONG_LEAD + "Officials told Reuters later that the count was wrong.",
])
def test_a_wire_mentioned_in_passing_is_not_the_origin(registry, text):
    assert registry.wire_of("", text) is None


def test_the_attribution_that_counts_in_the_lead_does_not_count_further_down(registry):
    sentence = "TASS reported the capture of a village, which Kyiv denied."
    assert registry.wire_of("", sentence + " " + LONG_LEAD).id == "tass"
    assert registry.wire_of("", LONG_LEAD + sentence) is None


def test_a_credit_line_outranks_an_attribution(registry):
    text = "KYIV, Nov 4 (Reuters) - Russia claimed to have taken a village, TASS reported, which Kyiv denied."
    assert registry.wire_of("", text).id == "reuters"


def test_a_reprint_is_attributed_to_the_wire_and_keeps_its_outlet(registry):
    a = registry.attribute({"source": "Izvestia", "url": "https://iz.ru/1",
                            "text": "MOSCOW, November 4. /TASS/. The defence ministry reported strikes on depots."})
    assert (a.outlet.id, a.origin.id, a.camp, a.credited, a.known) == ("izvestia", "tass", "russia-state", True, True)
    reuters_reprint = registry.attribute({"source": "Some Local Paper", "text": "KYIV, Nov 4 (Reuters) - A drone hit a depot."})
    assert (reuters_reprint.known, reuters_reprint.origin.id, reuters_reprint.camp) == (False, "reuters", "international")
    own = registry.attribute({"source": "TASS", "text": "MOSCOW, November 4. /TASS/. A statement was issued."})
    assert own.origin is own.outlet and not own.credited


# ------------------------------------------------------------------------------------------- corroboration

TASS_WIRE = "MOSCOW, November 4. /TASS/. Ukraine attacked a military airfield in the Kursk region overnight, the defence ministry said."


def _copy(registry, i: int, item: dict) -> dict:
    return registry.attribute(item).copy(f"item-{i}", item.get("url", ""))


def test_corroboration_grows_from_one_origin_to_three_camps(registry):
    """The issue's progression: a TASS wire on three sites, then Ukrinform, then Reuters."""
    story = [
        {"url": "https://tass.com/defense/100", "text": TASS_WIRE},
        {"url": "https://reprint-one.example/news/a", "text": TASS_WIRE},
        {"url": "https://www.reprint-two.example/b", "text": TASS_WIRE},
    ]
    copies = [_copy(registry, i, item) for i, item in enumerate(story)]
    c = registry.corroborate(copies)
    assert (c["origins"], c["camps"]) == ({"count": 1, "names": ["TASS"]}, {"count": 1, "names": ["russia-state"]})
    assert c["outlets"] == {"count": 3, "names": ["TASS", "reprint-one.example", "reprint-two.example"]}
    assert (c["copies"], c["single_camp"], c["severity_bump"], c["rules"]) == (3, True, 0, [])
    assert c["summary"] == "claimed by Russian state media only (TASS)"
    assert bumped_severity("medium", c["severity_bump"]) == "medium"

    copies.append(_copy(registry, 3, {"source": "Ukrinform", "url": "https://www.ukrinform.net/rubric-ato/1",
                                      "text": "Ukrainian forces struck an airfield in the Kursk region, the General Staff said."}))
    c = registry.corroborate(copies)
    assert (c["origins"]["count"], c["camps"]["names"]) == (2, ["russia-state", "ukraine-official"])
    assert (c["single_camp"], c["rules"], c["severity_bump"]) == (False, ["second-camp"], 1)
    assert c["summary"] == "reported by Russian state media (TASS) and confirmed by Ukrainian officials (Ukrinform)"
    assert bumped_severity("medium", c["severity_bump"]) == "high"

    copies.append(_copy(registry, 4, {"url": "https://www.reuters.com/world/europe/x",
                                      "text": "KYIV, Nov 4 (Reuters) - Ukraine hit an airfield in Russia's Kursk region, officials said."}))
    c = registry.corroborate(copies)
    assert c["origins"] == {"count": 3, "names": ["TASS", "Ukrinform", "Reuters"]}
    assert c["camps"] == {"count": 3, "names": ["russia-state", "ukraine-official", "international"]}
    assert c["outlets"]["count"] == 5 and c["copies"] == 5
    assert (c["rules"], c["severity_bump"]) == (["second-camp", "across-camps"], 2)
    assert c["summary"] == ("confirmed across camps: Russian state media (TASS); Ukrainian officials (Ukrinform); "
                            "international media (Reuters)")
    assert bumped_severity("medium", c["severity_bump"]) == "critical"
    assert c["by_camp"] == {"russia-state": ["TASS"], "ukraine-official": ["Ukrinform"], "international": ["Reuters"]}
    assert c["camp_mix"] == "international+russia-state+ukraine-official"
    assert c["registry_version"] == registry.version


def test_state_media_echoing_each_other_is_still_one_camp_and_no_bump(registry):
    items = [{"source": "TASS", "text": "Moscow said the drills were defensive."},
             {"source": "RIA Novosti", "text": "The drills are defensive, the ministry said."},
             {"source": "RT", "text": "Moscow insists the drills are purely defensive."},
             {"source": "Interfax", "text": "The defence ministry called the drills defensive."}]
    c = registry.corroborate([_copy(registry, i, it) for i, it in enumerate(items)])
    assert (c["origins"]["count"], c["camps"]["count"], c["severity_bump"]) == (4, 1, 0)
    assert c["summary"] == "claimed by Russian state media only (TASS, RIA Novosti, RT +1 more)"


def test_three_independent_origins_in_one_camp_raise_once(registry):
    items = [{"source": s, "text": "Talks will resume next week, diplomats said."} for s in ("BBC", "DW", "Le Monde")]
    c = registry.corroborate([_copy(registry, i, it) for i, it in enumerate(items)])
    assert (c["camps"]["names"], c["rules"], c["severity_bump"]) == (["western"], ["independent-origins"], 1)
    assert c["summary"] == "reported by Western media only (BBC, DW, Le Monde)"


def test_unlisted_sites_count_as_origins_but_not_as_camps_for_the_rules(registry):
    items = [{"source": "TASS", "text": "A claim."}] + [
        {"url": f"https://blog-{i}.example/p", "text": "The same claim, in other words."} for i in range(3)]
    c = registry.corroborate([_copy(registry, i, it) for i, it in enumerate(items)])
    assert (c["origins"]["count"], c["camps"]["names"], c["severity_bump"]) == (4, ["russia-state", "other"], 0)
    assert c["summary"] == ("reported by Russian state media (TASS) and confirmed by unlisted sources "
                            "(blog-0.example, blog-1.example, blog-2.example)")


def test_repeated_copies_count_once_and_lists_are_capped(registry):
    copies = [registry.attribute({"url": f"https://site-{i}.example/x", "text": TASS_WIRE}).copy(f"id-{i}")
              for i in range(25)]
    c = registry.corroborate(copies + copies[:5])
    assert (c["copies"], c["outlets"]["count"], len(c["outlets"]["names"])) == (25, 25, registry.rules.max_listed)
    assert c["origins"] == {"count": 1, "names": ["TASS"]}
    with pytest.raises(ValueError, match="at least one copy"):
        registry.corroborate([])


def test_corroboration_takes_plain_records_that_survive_json(registry):
    """The stateful stage keeps copies in a changelog table: they must round-trip through JSON."""
    a = registry.attribute({"source": "Meduza", "url": "https://meduza.io/en/news/1", "text": "A report."})
    record = a.copy("m-1", "https://meduza.io/en/news/1")
    assert json.loads(json.dumps(record)) == record == {
        "id": "m-1", "url": "https://meduza.io/en/news/1", "outlet": "meduza", "outlet_name": "Meduza",
        "origin": "meduza", "origin_name": "Meduza", "camp": "russia-independent"}


def test_rules_and_wording_come_from_the_registry(tmp_path):
    data = _raw()
    data["corroboration"]["rules"] = [{"id": "any-second-origin", "description": "two origins", "min_origins": 2,
                                       "camps": ["russia-state"]}]
    data["corroboration"]["wording"]["one_camp"] = "only {camp}: {origins}"
    data["camps"]["russia-state"]["label"] = "Kremlin media"
    reg = load_registry(_write(tmp_path, data))
    items = [{"source": "TASS", "text": "A claim."}, {"source": "RIA Novosti", "text": "A claim."}]
    c = reg.corroborate([_copy(reg, i, it) for i, it in enumerate(items)])
    assert (c["rules"], c["severity_bump"], c["summary"]) == (["any-second-origin"], 1, "only Kremlin media: TASS, RIA Novosti")


@pytest.mark.parametrize("severity, bump, expected", [
    ("low", 0, "low"), ("low", 2, "high"), ("high", 1, "critical"), ("high", 5, "critical"), ("medium", -1, "medium")])
def test_bumped_severity_is_capped(severity, bump, expected):
    assert bumped_severity(severity, bump) == expected


def test_the_registry_is_loaded_once_per_process():
    assert default_registry() is default_registry()
