"""Realistic bench items, written by us: a third bare headlines, a third headline + ~300-character summary, a
third 2-3 KB articles; about 40% carry escalation or negotiation signals; 5% are exact repeats of an
earlier item (same id) and 5% lightly edited syndicated copies (new id, url and outlet, a byline, a few
words changed). Stories are built from many independent slots (places, people, numbers, days, topics),
so unrelated items rarely look alike to the near-duplicate sketch.
"""

from __future__ import annotations

import random

PLACES = ["Kharkiv", "Odesa", "Zaporizhzhia", "Kherson", "Dnipro", "Sumy", "Pokrovsk", "Kyiv", "Lviv", "Mykolaiv",
          "Chernihiv", "Kramatorsk", "Poltava", "Vinnytsia", "Izium", "Kupiansk", "Nikopol", "Uman", "Lutsk",
          "Rivne", "Zhytomyr", "Cherkasy", "Kropyvnytskyi", "Ternopil", "Bila Tserkva", "Kremenchuk", "Sloviansk"]
CITIES = ["Istanbul", "Riyadh", "Geneva", "Doha", "Ankara", "Vienna", "Abu Dhabi", "Helsinki", "Jeddah", "Oslo"]
PEOPLE = ["the regional governor", "the mayor", "a military spokesman", "the foreign minister", "an energy official",
          "the defence ministry", "the general staff", "a local police chief", "the emergency service",
          "a presidential adviser", "the prime minister", "a parliament committee", "the central bank"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
OUTLETS = [f"outlet-{i}" for i in range(60)]

ESCALATION = [
    "Russian drones struck energy facilities in {p}, leaving {n} homes without power",
    "A missile strike hit an apartment block in {p}, killing {k} people",
    "Heavy shelling of {p} damaged a hospital and {k} houses",
    "Russian troops launched a ground offensive near {p}",
    "Moscow threatened a response after long-range strikes on its territory near {q}",
    "Air defence shot down {k} drones over {p} overnight",
    "The Kremlin announced the call-up of {n} more reservists",
]
NEGOTIATION = [
    "Envoys from Kyiv and Moscow met in {c} to discuss a ceasefire",
    "Ukraine and Russia agreed a prisoner exchange of {k} soldiers mediated by {c}",
    "The Kremlin rejected a proposal for peace talks in {c}",
    "Officials proposed a humanitarian corridor out of {p} during talks in {c}",
    "Negotiators in {c} discussed security guarantees for Ukraine",
]
NEUTRAL = [
    "{P} reopened the {t} in {p} after {k} months of repairs",
    "Farmers near {p} expect a {t} harvest of {n} tonnes this year",
    "A festival of {t} music drew {n} visitors to {p}",
    "{P} announced new bus routes linking {p} with its suburbs",
    "Prices of {t} in {p} rose by {k} percent in a month, {P} said",
    "Students in {p} won {k} medals at a national {t} olympiad",
    "The {t} museum in {p} opened an exhibition of {k} paintings",
    "Rain is expected in {p} on {d}, with temperatures near {k} degrees",
]
TOPICS = ["grain", "bread", "folk", "chess", "science", "football", "library", "theatre", "river port", "tram",
          "apple", "honey", "jazz", "railway", "bridge", "school", "clinic", "market", "textile", "robotics"]
FILLER = [
    "{P} said the work would take until {d}.", "Residents of {p} were told to follow official channels.",
    "The figures could not be independently verified.", "{P} promised an update on {d}.",
    "Volunteers in {p} collected {n} hryvnias for the project.", "A similar case was reported in {q} in {y}.",
    "The plan was discussed at a meeting that lasted {k} hours.", "Analysts in {c} expect a reply within days.",
    "Local media in {p} published photos of the site.", "The budget for the year is {n} million hryvnias.",
    "{P} thanked the crews who worked through the night.", "Schools in {p} moved lessons online until {d}.",
]


def _fill(rnd: random.Random, template: str) -> str:
    return template.format(
        p=rnd.choice(PLACES), q=rnd.choice(PLACES), c=rnd.choice(CITIES), P=rnd.choice(PEOPLE).capitalize(),
        n=rnd.randrange(100, 90000), k=rnd.randrange(2, 60), d=rnd.choice(DAYS), t=rnd.choice(TOPICS),
        y=rnd.randrange(2015, 2026))


_BODY = FILLER + NEUTRAL


def _sentences(rnd: random.Random, chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < chars:
        out.append(_fill(rnd, rnd.choice(_BODY)).rstrip(".") + ".")
        size += len(out[-1]) + 1
    return " ".join(out)


def story(rnd: random.Random, item_id: str, kind: int, signal: bool, published: str) -> dict:
    """One item: ``kind`` 0 headline only, 1 headline + summary, 2 article."""
    head = _fill(rnd, rnd.choice(rnd.choice([ESCALATION, NEGOTIATION]) if signal else NEUTRAL))
    item = {"id": item_id, "title": head, "source": rnd.choice(OUTLETS), "url": f"https://news.example.org/{item_id}",
            "published_at": published, "language": "en"}
    if kind == 1:
        item["text"] = _sentences(rnd, 300)
    elif kind == 2:
        item["text"] = _sentences(rnd, rnd.randrange(2000, 3000))
    return item


def syndicated(rnd: random.Random, original: dict, item_id: str) -> dict:
    """A lightly edited copy of ``original`` by another outlet."""
    copy = dict(original, id=item_id, source=rnd.choice(OUTLETS), url=f"https://wire.example.net/{item_id}")
    field = "text" if original.get("text") else "title"
    words = copy[field].split()
    for _ in range(2 if field == "text" else 1):
        i = rnd.randrange(len(words))
        words[i] = rnd.choice(["reportedly", "officials said", "on Monday", "late", "again"])
    copy[field] = ("By a staff reporter. " if field == "text" else "") + " ".join(words)
    return copy


def items(n: int, seed: int = 11, start: str = "2026-11-24T00:00:00Z") -> list[tuple[str, dict]]:
    """``n`` (Kafka key, item) pairs as described in the module docstring; event times one second apart."""
    rnd = random.Random(seed)
    out: list[tuple[str, dict]] = []
    base = 1_763_942_400  # 2026-11-24T00:00:00Z
    for i in range(n):
        published = _iso(base + i)
        r = rnd.random()
        if out and r < 0.05:
            key, item = rnd.choice(out)  # an exact repeat
            out.append((key, item))
            continue
        if out and r < 0.10:
            _, original = rnd.choice(out)
            item_id = f"s-{i}"
            out.append((item_id, syndicated(rnd, original, item_id)))
            continue
        item_id = f"b-{i}"
        out.append((item_id, story(rnd, item_id, i % 3, rnd.random() < 0.4, published)))
    return out


def escalation_item(rnd: random.Random, item_id: str, published: str) -> dict:
    """A distinct article with an escalation signal (latency probes: each raises an escalation alert)."""
    head = f"Missile strike on {rnd.choice(PLACES)} kills {rnd.randrange(2, 60)} in attack number {item_id}"
    return {"id": item_id, "title": head, "text": _sentences(rnd, 300), "source": rnd.choice(OUTLETS),
            "url": f"https://news.example.org/{item_id}", "published_at": published, "language": "en"}


def _iso(t: int) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
