"""Labelled questions over the demo airline's documents (rag_assets/demo/documents.py).

Written by this project, in a traveller's words rather than the documents' where we could; each
names the one document that answers it. Because we wrote both sides, these figures are a
regression check, not evidence of quality on documents nobody here wrote (see evaluation.py).
"""

from __future__ import annotations

from rag_assets.demo.documents import generate_documents
from rag_assets.retrieval.evaluation import LabelledCorpus, LabelledQuestion

DEMO_QUESTIONS: dict[str, str] = {
    "How big can the bag I take on the plane be?": "baggage/cabin-baggage.md",
    "Can I carry a power bank in my hand luggage?": "baggage/cabin-baggage.md",
    "How many kilos can my suitcase in the hold weigh?": "baggage/checked-baggage.md",
    "How much does it cost to add another suitcase?": "baggage/checked-baggage.md",
    "Can I bring my golf clubs?": "baggage/sports-equipment.html",
    "Can I fly with my cello?": "baggage/sports-equipment.html",
    "My suitcase did not arrive, what should I do?": "baggage/delayed-lost-damaged-baggage.txt",
    "Will you pay for toiletries while my bag is missing?": "baggage/delayed-lost-damaged-baggage.txt",
    "Can I get my money back if I cancel my ticket?": "bookings/refunds.md",
    "How long until the refund shows on my card?": "bookings/refunds.md",
    "How do I use my voucher to pay for a flight?": "bookings/travel-credit.md",
    "When can I check in on the app?": "airport/online-check-in.html",
    "Why can't I check in online?": "airport/online-check-in.html",
    "When does the check-in desk close before departure?": "airport/airport-check-in.html",
    "Can I take my cat in the cabin with me?": "help/pets.html",
    "Is my guide dog allowed on board?": "help/pets.html",
    "I need a wheelchair at the airport, how do I ask for one?": "help/special-assistance.md",
    "Can I fly when I am 30 weeks pregnant?": "help/travelling-when-pregnant.md",
    "Does my baby need its own seat?": "help/children-and-infants.html",
    "Can my 10 year old fly alone?": "help/children-and-infants.html",
    "How do I earn points on the loyalty programme?": "loyalty/programme-overview.md",
    "Do my points expire?": "loyalty/programme-overview.md",
    "What do Silver members get?": "loyalty/tier-silver.md",
    "How many tier points do I need for Gold?": "loyalty/tier-gold.txt",
    "What are the Platinum benefits?": "loyalty/tier-platinum.html",
    "My flight was five hours late, can I claim compensation?": "disruption/delays-and-compensation.txt",
    "Will you give me food vouchers if my flight is delayed?": "disruption/delays-and-compensation.txt",
    "I missed my connecting flight because the first one was late": "disruption/missed-connections.md",
    "How long must my passport be valid?": "help/travel-documents.html",
    "My name is misspelt on the ticket": "bookings/changing-a-booking.md",
    "Do I need a visa to visit the United States?": "visas/usa.md",
    "Do I need a visa for Japan?": "visas/japan.md",
    "Can I transit through Canada without a visa?": "visas/canada.md",
    "Entry rules for travelling to India": "visas/india.html",
    "How much does it cost to choose my seat?": "bookings/seats.html",
    "Can I order a vegetarian meal?": "help/meals-and-dietary.md",
    "Is there internet on the plane?": "help/wifi-and-entertainment.md",
    "How much is it to change my flight date?": "bookings/changing-a-booking.md",
    "We are twelve people travelling together, how do we book?": "bookings/group-bookings.md",
    "Which fare lets me change for free?": "bookings/fare-types.md",
    "Can I bring a friend into the lounge?": "help/lounges.html",
    "How can I upgrade to business class with points?": "bookings/upgrades.html",
    "How do I make a complaint?": "help/contact-us.md",
    "Do I need vaccinations before I fly?": "help/health-and-vaccinations.md",
}


def demo_corpus(seed: int = 7) -> LabelledCorpus:
    documents = {document.key: document.render() for document in generate_documents(seed)}
    missing = sorted(set(DEMO_QUESTIONS.values()) - documents.keys())
    if missing:
        raise ValueError(f"demo questions name documents the demo does not have: {missing}")
    return LabelledCorpus(
        name="demo",
        source="rag_assets/demo/documents.py (seed 7), questions written by this project",
        documents=documents,
        questions=tuple(LabelledQuestion(q, key) for q, key in DEMO_QUESTIONS.items()),
    )


def _profile(tier: str | None = None, destination: str | None = None) -> dict:
    """A unified profile of the shape customer_profiles builds, with only what matters here."""
    golden = {"loyalty": {"tier": tier}} if tier else {}
    bookings = [{"destination": destination, "departure_date": "2025-02-01"}] if destination else []
    return {"golden": golden, "upcoming_bookings": bookings, "open_tickets": []}


# Questions whose answering document depends on who asks: (question, profile, document).
PERSONAL_QUESTIONS: tuple[tuple[str, dict, str], ...] = (
    *((question, _profile(tier=tier), f"loyalty/tier-{tier.lower()}.{ext}")
      for tier, ext in (("Blue", "md"), ("Silver", "md"), ("Gold", "txt"), ("Platinum", "html"))
      for question in ("What benefits do I get with my status?",
                       "How many tier points do I need to keep my status next year?")),
    *((question, _profile(destination=airport), document)
      for airport, document in (("JFK", "visas/usa.md"), ("NRT", "visas/japan.md"),
                                ("YYZ", "visas/canada.md"), ("BOM", "visas/india.html"),
                                ("CDG", "visas/schengen.txt"), ("LHR", "visas/uk.md"))
      for question in ("Do I need a visa for my trip?", "Can I transit there without a visa?")),
)

# A customer with a tier, a trip and open tickets, asking the general questions.
BUSY_PROFILE = {
    "golden": {"loyalty": {"tier": "Gold"}},
    "upcoming_bookings": [{"destination": "JFK", "departure_date": "2025-02-01"}],
    "open_tickets": [{"subject": "Refund for cancelled flight"},
                     {"subject": "Travelling with a dog"}],
}
