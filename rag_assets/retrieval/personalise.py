"""Profile-aware ranking: prefer the passages that apply to this customer.

A question such as "What do I get with my status?" or "Do I need a visa for my trip?" has as
many equally relevant passages as there are tiers or countries; the customer's profile says
which one applies. `profile_preferences` turns a unified profile into short phrases (the loyalty
tier, the countries of upcoming trips, the subjects of open tickets) and `prefer` re-ranks the
first stage's candidates: each candidate's score, scaled to the best candidate's, gains
`PREFERENCE_WEIGHT` for every phrase its heading path and text contain. Relevance still leads: a
bonus reorders passages of similar score, it does not lift an unrelated one past a clear answer.

The phrases come from the profile only in memory; they are never logged or returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from rag_assets.knowledge.lexical import analyse
from rag_assets.knowledge.search import SearchHit

# 0.1-0.3 measured in docs/benchmarks.md: 0.2 lifts the questions that depend on the customer
# without costing the general questions anything.
PREFERENCE_WEIGHT = 0.2
PREFERENCE_CANDIDATES = 20

# Country (as policy documents name it) of each airport the airline flies to. Extend it with
# the network; an airport missing here simply gives no preference.
AIRPORT_COUNTRIES: Mapping[str, str] = {
    **dict.fromkeys(("LHR", "LGW", "MAN", "EDI"), "United Kingdom"),
    **dict.fromkeys(("JFK", "BOS", "ORD", "SEA", "AUS"), "United States"),
    **dict.fromkeys(("CDG", "FRA", "MUC", "MAD", "BCN", "AMS", "LIS", "ATH"), "Schengen"),
    "DUB": "Ireland", "BOM": "India", "BLR": "India", "LOS": "Nigeria", "NRT": "Japan",
    "DXB": "United Arab Emirates", "YYZ": "Canada",
}


def profile_preferences(profile: Mapping[str, Any] | None) -> list[str]:
    """Phrases naming what applies to the customer: tier, trip countries, open ticket subjects."""
    if not profile:
        return []
    phrases: list[str] = []
    loyalty = (profile.get("golden") or {}).get("loyalty") or {}
    if loyalty.get("tier"):
        phrases.append(str(loyalty["tier"]))
    for booking in profile.get("upcoming_bookings") or []:
        country = AIRPORT_COUNTRIES.get(str(booking.get("destination") or "").upper())
        if country:
            phrases.append(country)
    for ticket in profile.get("open_tickets") or []:
        if ticket.get("subject"):
            phrases.append(str(ticket["subject"]))
    return list(dict.fromkeys(phrases))


def _applies(phrase_terms: set[str], passage_terms: set[str]) -> float:
    """Share of the phrase's terms the passage contains (1 for a tier or country named)."""
    return len(phrase_terms & passage_terms) / len(phrase_terms) if phrase_terms else 0.0


def prefer(hits: Sequence[SearchHit], phrases: Sequence[str], k: int,
           weight: float = PREFERENCE_WEIGHT) -> list[SearchHit]:
    """The top k of `hits` after the profile bonus; unchanged order without phrases."""
    if not phrases or not hits:
        return list(hits[:k])
    best = max(hit.score for hit in hits) or 1.0
    phrase_terms = [set(analyse(phrase)) for phrase in phrases]
    rescored = []
    for hit in hits:
        passage = set(analyse(f"{hit.heading}\n{hit.text}"))
        bonus = weight * sum(_applies(terms, passage) for terms in phrase_terms)
        rescored.append(replace(hit, score=hit.score / best + bonus))
    rescored.sort(key=lambda hit: (-hit.score, hit.chunk_id))
    return rescored[:k]
