"""Conversation-turn feedback events for the `app.feedback` topic.

One event per assistant turn: `conversation_id, turn_id, customer_ref, ts, question,
answer, model_id, latency_ms, retrieved_ids, rating, comment`.

* conversations have 1–4 turns, with follow-up questions on the same topic;
* `customer_ref` is one of the customer's references as the app knows it — an e-mail address,
  a loyalty number or a CRM id written `crm:<id>` — or null for anonymous chats;
* `ts` is event time, ISO-8601 UTC with milliseconds and `Z`; a few events are *late* (their ts
  is tens of minutes in the past when they are published) and turns are published slightly out
  of order;
* `rating` is "up", "down", an integer 1–5 or null; `comment` is usually null and sometimes holds
  personal data (an e-mail address, a phone number, a booking reference) to exercise masking;
* `retrieved_ids` are `<document key>#<section number>` of the knowledge documents the answer
  would have used, or [] when the assistant found nothing.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from rag_assets.demo.documents import Document
from rag_assets.demo.people import Person, national_phone
from rag_assets.demo.source_systems import BOOKING, CRM, LOYALTY, SourceSnapshot

MODEL_IDS = (
    "anthropic.claude-3-5-haiku-20241022-v1:0",
    "anthropic.claude-3-5-sonnet-20241022-v2:0",
    "amazon.nova-lite-v1:0",
)
MODEL_WEIGHTS = (60, 25, 15)

# topic -> (document-key fragments, [(question, answer)], [(follow-up question, answer)])
TOPICS: dict[str, tuple[tuple[str, ...], list[tuple[str, str]], list[tuple[str, str]]]] = {
    "baggage": (("checked-baggage", "cabin-baggage"), [
        ("How much can my checked bag weigh?",
         "On a Standard fare you can check one bag; the weight limit depends on your fare and no single bag may exceed 32 kg."),
        ("Can I take a backpack and a cabin bag?",
         "Yes. You can bring one cabin bag plus one personal item, such as a backpack, that fits under the seat in front."),
        ("what's the cabin bag size limit",
         "Cabin bags must fit the size limit in our cabin baggage policy, including wheels and handles."),
    ], [
        ("And how much is an extra bag?", "An extra bag is cheaper online than at the airport; buy it in Manage Booking."),
        ("Does my Gold status give me more?", "Yes, Gold members get two extra checked bags."),
    ]),
    "lost_bag": (("delayed-lost-damaged-baggage",), [
        ("My suitcase didn't arrive at {destination}, what do I do?",
         "Report it at the baggage service desk and keep your PIR reference. We reimburse essential purchases while it is delayed."),
        ("My bag came back damaged", "Please report damage within 7 days with photos and your PIR reference."),
    ], [
        ("How long before it counts as lost?", "A bag still missing after 21 days is treated as lost."),
        ("Can I claim for toiletries I bought?", "Yes, keep the receipts; essential purchases are reimbursed up to a daily limit."),
    ]),
    "refund": (("refunds", "travel-credit"), [
        ("Can I get a refund for my flight {flight_no}?",
         "It depends on your fare: Flex and Business are fully refundable, Standard gets a travel credit less a fee."),
        ("My flight was cancelled, how do I get my money back?",
         "When we cancel a flight you can choose a full refund, free rebooking or a travel credit."),
    ], [
        ("How long does the refund take?", "Card refunds are processed within a few working days, then your bank may need a few more."),
        ("Can I turn my voucher into cash?", "Only vouchers issued for a flight we cancelled can be converted into a cash refund."),
    ]),
    "checkin": (("online-check-in", "airport-check-in"), [
        ("When can I check in for {flight_no} to {destination}?",
         "Online check-in opens before departure and closes earlier for long-haul flights; see our check-in guide."),
        ("why can't i check in online", "Passengers with infants, pets in the cabin or unverified passports must check in at the airport."),
    ], [
        ("What time does bag drop close?", "Bag drop closes shortly before departure; late bags cannot be accepted."),
    ]),
    "pets": (("pets",), [
        ("Can I bring my dog in the cabin?", "Small dogs and cats in a carrier may travel in the cabin on shorter flights, for a fee."),
        ("Is my assistance dog free?", "Yes, trained assistance dogs travel free in the cabin on all routes."),
    ], [
        ("What about flying into London?", "Pets are not allowed in the cabin on flights arriving in the UK, except assistance dogs."),
    ]),
    "assistance": (("special-assistance", "children-and-infants", "travelling-when-pregnant"), [
        ("I need a wheelchair at the airport", "Request assistance in Manage Booking at least two days before departure; it is free."),
        ("I'm 30 weeks pregnant, can I fly?", "Yes, with a letter confirming your due date and that you are fit to fly."),
        ("Can my 8 year old fly alone?", "Children can use our unaccompanied minor service for a fee."),
    ], [
        ("Do I need to bring a form?", "For medical conditions, a completed MEDIF form is needed seven days before travel."),
    ]),
    "loyalty": (("programme-overview", "tier-"), [
        ("How many points do I have?", "You have {points} points in your Skyward Club account."),
        ("How do I get Gold status?", "Gold needs a set number of tier points in a membership year, earned on flights."),
        ("my points from last trip are missing", "Points arrive within 72 hours of the flight; you can claim missing points for up to six months."),
    ], [
        ("When do my points expire?", "Points expire after a period without earning or spending activity."),
        ("Can I use points for an upgrade?", "Yes, upgrades with points confirm up to 48 hours before departure."),
    ]),
    "delay": (("delays-and-compensation", "missed-connections"), [
        ("My flight {flight_no} was delayed 4 hours, am I owed compensation?",
         "If you arrived more than three hours late for reasons within our control, fixed compensation applies on UK/EU flights."),
        ("I missed my connection because of a delay", "If both flights are on one booking we rebook you on the next available flight for free."),
    ], [
        ("How do I claim?", "Claim online with your booking reference; we reply within 28 days."),
        ("Do I get a hotel?", "If an overnight stay is needed we provide a hotel room and transport."),
    ]),
    "visa": (("visas/", "travel-documents"), [
        ("Do I need a visa for {destination}?", "Entry rules depend on your nationality; see our entry requirements page for your destination."),
        ("do i need an ESTA", "Most visitors to the United States need an approved ESTA before they fly."),
    ], [
        ("How long must my passport be valid?", "Many countries require six months of validity on arrival."),
    ]),
    "booking": (("changing-a-booking", "seats", "fare-types", "upgrades"), [
        ("Can I change my flight {flight_no} to another day?", "Flex fares change for free; Standard fares pay a change fee plus any fare difference."),
        ("How much is a seat with extra legroom?", "Extra-legroom seats are sold in Manage Booking; prices vary by route."),
        ("Is {flight_no} on time?", "I can't see live flight status yet; please check the flight status page."),
    ], [
        ("Can I sit with my kids?", "Families with children under 12 are seated together free of charge."),
    ]),
}
NO_ANSWER = "I'm sorry, I couldn't find information about that. Would you like to chat with an agent?"
OFF_TOPIC = ("Can you recommend a restaurant near the hotel?", "What's the weather in Lisbon tomorrow?",
             "I want to speak to a human")
POSITIVE_COMMENTS = ("Very helpful, thanks!", "Quick and clear answer.", "Great, that's exactly what I needed",
                     "Much easier than calling.")
NEGATIVE_COMMENTS = ("That didn't answer my question.", "Wrong information, the website says something else.",
                     "Useless, I still don't know what to do", "Too vague.", "It keeps repeating itself")
PII_COMMENTS = ("Please call me back on {phone}", "Contact me at {email}, nobody replied to my ticket",
                "My booking ref is {pnr} and my number is {phone_national}",
                "Send the refund confirmation to {email} please", "wrong answer. my email {email} phone {phone}")


def iso_z(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


@dataclass
class _Conversation:
    conversation_id: str
    person: Person | None
    customer_ref: str | None
    topic: str
    model_id: str
    context: dict[str, Any]
    turns_left: int
    turn: int = 0
    last_ts: datetime | None = None


@dataclass
class FeedbackGenerator:
    """Produces feedback events, deterministic for (snapshot, people, documents, seed, session,
    clock). `session` tells publishing sessions apart: a demo started again must not send the
    conversation and turn ids of an earlier one (they would be skipped as duplicates)."""

    snapshot: SourceSnapshot
    people: Sequence[Person]
    documents: Sequence[Document]
    seed: int = 7
    late_fraction: float = 0.05
    session: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _open: list[_Conversation] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"feedback:{self.seed}:{self.session}")
        self._people = {p.person_id: p for p in self.people}
        self._refs: dict[str, list[str]] = {}
        for (system, table, pk), person_id in sorted(self.snapshot.truth.items()):
            row = self.snapshot.tables[(system, table)].get(pk)
            if row is None:
                continue
            refs = self._refs.setdefault(person_id, [])
            if (system, table) == CRM:
                refs.append(f"crm:{pk}")
                if row.get("email"):
                    refs.append(row["email"])
            elif (system, table) == LOYALTY:
                refs.append(row["member_number"])
            elif (system, table) == BOOKING and row.get("customer_email") not in refs:
                refs.append(row["customer_email"])  # the login of a guest booking
        self._ref_people = sorted(pid for pid, refs in self._refs.items() if refs)

    # -------------------------------------------------------------- building blocks

    def _retrieved(self, topic: str) -> list[str]:
        fragments = TOPICS[topic][0]
        docs = [d for d in self.documents if any(f in d.key for f in fragments)]
        ids = []
        for doc in self._rng.sample(docs, k=min(len(docs), self._rng.randint(1, 2))):
            sections = list(range(len(doc.sections)))
            for s in self._rng.sample(sections, k=min(len(sections), self._rng.randint(1, 3))):
                ids.append(f"{doc.key}#{s}")
        return ids

    def _context(self, person: Person | None) -> dict[str, Any]:
        context = {"flight_no": f"SK{self._rng.randrange(1, 2999)}",
                   "destination": self._rng.choice(("JFK", "Dublin", "Paris", "Mumbai", "Tokyo")),
                   "points": f"{self._rng.randrange(100, 60000):,}"}
        if person is not None:
            bookings = [row for (s, t, pk), pid in self.snapshot.truth.items()
                        if pid == person.person_id and (s, t) == BOOKING
                        and (row := self.snapshot.tables[BOOKING].get(pk))]
            if bookings:
                booking = self._rng.choice(bookings)
                context.update(flight_no=booking["flight_no"], destination=booking["destination"])
        return context

    def _start(self, now: datetime) -> _Conversation:
        rng = self._rng
        person, ref = None, None
        if self._ref_people and rng.random() > 0.15:
            person_id = rng.choice(self._ref_people)
            person = self._people.get(person_id)
            ref = rng.choice(self._refs[person_id])
        return _Conversation(
            conversation_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            person=person, customer_ref=ref, topic=rng.choice(sorted(TOPICS)),
            model_id=rng.choices(MODEL_IDS, weights=MODEL_WEIGHTS)[0],
            context=self._context(person),
            turns_left=rng.choices((1, 2, 3, 4), weights=(40, 30, 20, 10))[0],
        )

    def _rating_and_comment(self, helpful: bool, conv: _Conversation) -> tuple[Any, str | None]:
        rng = self._rng
        r = rng.random()
        if r < 0.45:
            rating: Any = None
        elif r < 0.72:
            rating = ("up" if rng.random() < 0.8 else "down") if helpful else ("down" if rng.random() < 0.8 else "up")
        else:
            rating = rng.choices((1, 2, 3, 4, 5), weights=(5, 5, 10, 30, 50) if helpful else (45, 30, 15, 5, 5))[0]
        comment = None
        positive = rating in ("up", 4, 5) or (rating is None and helpful)
        if rng.random() < (0.25 if rating is not None else 0.05):
            if conv.person is not None and rng.random() < 0.3:
                person = conv.person
                comment = rng.choice(PII_COMMENTS).format(
                    email=person.email, phone=person.phone,
                    phone_national=national_phone(person.phone, person.country),
                    pnr="".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6)))
            else:
                comment = rng.choice(POSITIVE_COMMENTS if positive else NEGATIVE_COMMENTS)
        return rating, comment

    def _turn(self, conv: _Conversation, ts: datetime) -> dict[str, Any]:
        rng = self._rng
        conv.turn += 1
        conv.turns_left -= 1
        conv.last_ts = ts
        _, firsts, follow_ups = TOPICS[conv.topic]
        helpful = True
        if conv.turn > 1 and rng.random() < 0.1:
            question, answer, retrieved, helpful = rng.choice(OFF_TOPIC), NO_ANSWER, [], False
        else:
            question, answer = rng.choice(firsts if conv.turn == 1 else follow_ups)
            question, answer = question.format(**conv.context), answer.format(**conv.context)
            retrieved = self._retrieved(conv.topic)
            if rng.random() < 0.08:  # retrieval missed
                answer, retrieved, helpful = NO_ANSWER, [], False
            elif rng.random() < 0.1:  # an answer that users dislike
                helpful = False
        rating, comment = self._rating_and_comment(helpful, conv)
        return {
            "conversation_id": conv.conversation_id,
            "turn_id": conv.turn,
            "customer_ref": conv.customer_ref,
            "ts": iso_z(ts),
            "question": question,
            "answer": answer,
            "model_id": conv.model_id,
            "latency_ms": int(min(30_000, rng.lognormvariate(7.2, 0.45))),
            "retrieved_ids": retrieved,
            "rating": rating,
            "comment": comment,
        }

    # -------------------------------------------------------------- public

    def history(self, conversations: int, now: datetime, span: timedelta = timedelta(hours=24)) -> list[dict[str, Any]]:
        """A backlog of whole conversations spread over `span` before `now`.

        Returned in publication order: roughly by event time, with neighbours swapped and a few
        events held back (published well after later events) to make them late.
        """
        events: list[tuple[datetime, dict[str, Any]]] = []
        for _ in range(conversations):
            conv = self._start(now)
            ts = now - span + timedelta(seconds=self._rng.uniform(0, span.total_seconds() - 600))
            while conv.turns_left > 0:
                events.append((ts, self._turn(conv, ts)))
                ts += timedelta(seconds=self._rng.uniform(15, 150))
        events.sort(key=lambda pair: pair[0])
        ordered = [event for _, event in events]
        for i in range(0, len(ordered) - 1, 7):  # local disorder
            if self._rng.random() < 0.5:
                ordered[i], ordered[i + 1] = ordered[i + 1], ordered[i]
        late = [i for i in range(len(ordered)) if self._rng.random() < self.late_fraction]
        held = [ordered[i] for i in late]
        ordered = [e for i, e in enumerate(ordered) if i not in set(late)] + held
        return ordered

    def next_event(self, now: datetime) -> dict[str, Any]:
        """The next turn in a live stream: a follow-up of an open conversation or a new one.

        Usually stamped `now`; with probability `late_fraction` stamped 5–90 minutes earlier
        (a mobile client that was offline and flushed its queue late).
        """
        rng = self._rng
        self._open = [c for c in self._open if c.turns_left > 0]
        if self._open and rng.random() < 0.6:
            conv = rng.choice(self._open)
        else:
            conv = self._start(now)
            self._open.append(conv)
        ts = now
        if rng.random() < self.late_fraction:
            ts = now - timedelta(minutes=rng.uniform(5, 90))
        return self._turn(conv, ts)
