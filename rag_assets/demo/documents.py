"""Policy and help documents of the fictional airline, as `.md`, `.txt` and `.html`.

`generate_documents(seed)` returns a few dozen documents built from templates with seeded
variation (allowances, fees, time limits, phrasing, file format). `modify_document` changes one
paragraph of a document the way a policy edit does (a new baggage weight, a new fee, a new time
limit, or an added sentence) and bumps its revision; `new_advisory` makes the short-lived travel
notices that the continuous demo adds and later deletes.
"""

from __future__ import annotations

import html
import random
import re
from dataclasses import dataclass, replace
from datetime import date, timedelta

from rag_assets.demo.people import AIRLINE_CODE, AIRLINE_NAME, TIERS
from rag_assets.demo.source_systems import AIRPORTS

FORMATS = ("md", "txt", "html")
CONTENT_TYPES = {"md": "text/markdown; charset=utf-8", "txt": "text/plain; charset=utf-8",
                 "html": "text/html; charset=utf-8"}


@dataclass(frozen=True)
class Document:
    key: str  # path below the knowledge prefix, e.g. "baggage/checked-baggage.md"
    title: str
    sections: tuple[tuple[str, tuple[str, ...]], ...]  # (heading, paragraphs)
    updated: date
    revision: int = 1

    @property
    def fmt(self) -> str:
        return self.key.rsplit(".", 1)[1]

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.fmt]

    def render(self) -> str:
        stamp = f"Last updated {self.updated.isoformat()} (revision {self.revision})"
        if self.fmt == "md":
            parts = [f"# {self.title}", f"_{stamp}_"]
            for heading, paragraphs in self.sections:
                parts.append(f"## {heading}")
                parts.extend(paragraphs)
            return "\n\n".join(parts) + "\n"
        if self.fmt == "txt":
            parts = [f"{self.title.upper()}\n{'=' * len(self.title)}", stamp]
            for heading, paragraphs in self.sections:
                parts.append(f"{heading}\n{'-' * len(heading)}")
                parts.extend(paragraphs)
            return "\n\n".join(parts) + "\n"
        body = [f"<h1>{html.escape(self.title)}</h1>", f'<p class="updated">{html.escape(stamp)}</p>']
        for heading, paragraphs in self.sections:
            body.append(f"<section>\n<h2>{html.escape(heading)}</h2>")
            body.extend(f"<p>{html.escape(p)}</p>" for p in paragraphs)
            body.append("</section>")
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                f"<title>{html.escape(self.title)} | {AIRLINE_NAME}</title>\n</head>\n<body>\n<main>\n"
                + "\n".join(body) + "\n</main>\n</body>\n</html>\n")

    def body(self) -> bytes:
        return self.render().encode("utf-8")

    @property
    def headings(self) -> list[str]:
        return [self.title] + [h for h, _ in self.sections]


# ------------------------------------------------------------------ templates
#
# Each template returns a list of (slug, title, sections); `v` holds the seeded variation.

A = AIRLINE_NAME


def _baggage(v: dict) -> list:
    cabin = (
        "cabin-baggage", "Cabin baggage allowance",
        [("What you can bring on board", (
            f"Every passenger may bring one cabin bag of up to {v['cabin_kg']} kg and "
            f"{v['cabin_dims']} cm, including handles and wheels, plus one personal item such as a "
            "handbag or laptop bag that fits under the seat in front.",
            f"Business and {TIERS[2]} or {TIERS[3]} members may bring a second cabin bag of the same size.")),
         ("At the gate", (
            "On busy flights we may ask you to check your cabin bag at the gate free of charge. "
            "Keep medicines, keys, valuables and power banks with you.",
            "Bags that do not fit the sizer at the gate are checked into the hold and the "
            f"excess baggage fee of {v['cur']}{v['gate_fee']} applies.")),
         ("Liquids and batteries", (
            "Liquids must be in containers of 100 ml or less inside one clear resealable bag of "
            "up to 1 litre. Spare lithium batteries and power banks must be in your cabin bag, "
            f"never in checked baggage; power banks above {v['wh']} Wh need our approval.",))],
    )
    checked = (
        "checked-baggage", "Checked baggage allowance",
        [("Allowance by fare", (
            f"Light fares include no checked bag. Standard fares include one bag of up to "
            f"{v['checked_kg']} kg. Flex and Business fares include two bags of up to "
            f"{v['checked_kg']} kg and {v['business_kg']} kg respectively.",
            f"No single bag may weigh more than 32 kg or measure more than {v['max_linear']} cm "
            "(length + width + height).")),
         ("Buying extra bags", (
            f"An extra bag costs {v['cur']}{v['extra_bag_online']} when bought online up to "
            f"{v['cutoff_h']} hours before departure, and {v['cur']}{v['extra_bag_airport']} at the airport.",
            f"Overweight bags between {v['checked_kg']} kg and 32 kg cost {v['cur']}{v['overweight_fee']} per bag, per flight.")),
         ("Loyalty members", (
            f"{TIERS[1]} members get one extra bag of {v['checked_kg']} kg; {TIERS[2]} and "
            f"{TIERS[3]} members get two. The extra allowance applies to everyone on the same booking "
            "when the member travels too.",))],
    )
    sports = (
        "sports-equipment", "Sports and musical equipment",
        [("Skis, golf clubs and bicycles", (
            f"One set of skis or golf clubs may replace a checked bag if it weighs no more than "
            f"{v['checked_kg']} kg. Bicycles must be boxed, with pedals removed and tyres deflated, "
            f"and cost {v['cur']}{v['bike_fee']} per flight.",)),
         ("Musical instruments", (
            "Instruments up to the cabin bag size travel as your cabin bag. Larger instruments may "
            "travel on their own seat, bought at the child fare, or in the hold in a hard case.",
            "Tell us about any instrument at least 48 hours before departure.")),
         ("Diving and fishing", (
            "Empty diving cylinders with the valve open are accepted as checked baggage. Fishing "
            "rods up to 2 metres in a rigid tube count as a checked bag.",))],
    )
    lost = (
        "delayed-lost-damaged-baggage", "Delayed, lost or damaged baggage",
        [("Report it at the airport", (
            "If your bag does not arrive, report it at the baggage service desk before you leave "
            "the arrivals hall and keep the Property Irregularity Report (PIR) reference.",
            f"Damage must be reported within {v['damage_days']} days of receiving the bag and a delay "
            f"within {v['delay_days']} days.")),
         ("Essential purchases", (
            f"While your bag is delayed we reimburse reasonable essential purchases up to "
            f"{v['cur']}{v['essentials']} per day for up to five days. Keep your receipts.",)),
         ("If the bag is lost", (
            f"A bag still missing after {v['lost_days']} days is treated as lost. Compensation follows "
            "the Montreal Convention, up to 1,288 Special Drawing Rights per passenger.",))],
    )
    return [cabin, checked, sports, lost]


def _refunds(v: dict) -> list:
    return [
        ("refunds", "Refunds and cancellations",
         [("Can I get a refund?", (
             "Flex and Business fares are fully refundable before departure. Standard fares can be "
             f"cancelled for a travel credit, less a fee of {v['cur']}{v['cancel_fee']}. Light fares are not refundable, "
             "but taxes and airport charges are always refunded on request.",
             "If we cancel your flight you can choose a full refund, a free rebooking or a travel credit.")),
          ("How long it takes", (
             f"Card refunds are processed within {v['refund_days']} working days; your bank may take "
             "a few more days to show the money. Travel agency bookings are refunded through the agent.",)),
          ("24-hour free cancellation", (
             "Bookings made directly with us at least seven days before departure can be cancelled "
             "free of charge within 24 hours of booking, whatever the fare.",))]),
        ("travel-credit", "Travel credit vouchers",
         [("Using a voucher", (
             f"Travel credit is valid for {v['voucher_months']} months from issue and can be used "
             "for any flight on our network, for anyone you choose.",
             "Enter the voucher code on the payment page. Any balance left stays on the voucher.")),
          ("Converting to a refund", (
             "Vouchers issued for a flight we cancelled can be converted to a cash refund at any "
             "time before they expire. Vouchers for voluntary cancellations cannot.",))]),
    ]


def _checkin(v: dict) -> list:
    return [
        ("online-check-in", "Online check-in",
         [("When check-in opens", (
             f"Online check-in opens {v['checkin_open_h']} hours before departure and closes "
             f"{v['checkin_close_min']} minutes before departure for short-haul flights and 90 minutes "
             "for long-haul flights.",
             "You can check in on our website or the app and download a mobile boarding pass.")),
          ("When online check-in is not available", (
             "Passengers travelling with an infant, with a pet in the cabin, who need special "
             "assistance or whose passport could not be verified must check in at the airport.",)),
          ("Advance passenger information", (
             "Flights to the United States, Canada and India need your passport details before "
             "check-in. Enter them in Manage Booking.",))]),
        ("airport-check-in", "Airport check-in and bag drop",
         [("Desk opening times", (
             "Check-in desks open three hours before departure (four hours at London Heathrow for "
             f"long-haul) and close {v['desk_close_min']} minutes before departure.",)),
          ("Bag drop", (
             f"If you checked in online, drop your bags at any bag drop desk no later than "
             f"{v['desk_close_min']} minutes before departure. Late bags cannot be accepted.",)),
          ("Boarding", (
             f"Boarding closes {v['gate_close_min']} minutes before departure. Be at the gate on time; "
             "we cannot hold the aircraft for late passengers.",))]),
    ]


def _pets(v: dict) -> list:
    return [
        ("pets", "Travelling with pets",
         [("Pets in the cabin", (
             f"Small dogs and cats up to {v['pet_cabin_kg']} kg including the carrier may travel in the "
             f"cabin on flights up to {v['pet_cabin_h']} hours. The fee is {v['cur']}{v['pet_fee']} per flight "
             "and only two pets are allowed per cabin, so book early.",)),
          ("Pets in the hold", (
             "Larger pets travel in a pressurised, temperature-controlled hold in an IATA-compliant "
             "crate. Snub-nosed breeds are not accepted in the hold for their safety.",)),
          ("Assistance dogs", (
             "Trained assistance dogs travel free in the cabin on all routes. Please bring the "
             "dog's documentation and tell us 48 hours before departure.",)),
          ("Entry rules", (
             "Many countries require a microchip, rabies vaccination and a pet passport or health "
             "certificate. The United Kingdom and Ireland do not allow pets in the cabin on "
             "arriving flights, except assistance dogs.",))]),
    ]


def _assistance(v: dict) -> list:
    return [
        ("special-assistance", "Special assistance",
         [("Requesting assistance", (
             f"Request assistance at least {v['assist_h']} hours before departure in Manage Booking or "
             "by calling us. It is free of charge.",
             "Airport staff will help you through security, to the gate and onto the aircraft.")),
          ("Wheelchairs and mobility aids", (
             "You can take two mobility aids free of charge in addition to your baggage "
             f"allowance. Tell us the type, size and weight; lithium battery wheelchairs over "
             f"{v['wh']} Wh need approval.",)),
          ("Medical conditions", (
             "If you have a medical condition that could be affected by the flight, or need "
             "oxygen, contact our medical desk with a completed MEDIF form at least seven days before travel.",))]),
        ("travelling-when-pregnant", "Travelling when pregnant",
         [("Until week 28", ("You can fly without a letter from your doctor or midwife.",)),
          ("From week 28", (
             f"Bring a letter confirming your due date and that you are fit to fly. Single "
             f"pregnancies may fly until the end of week {v['preg_weeks']}, multiple pregnancies until the end of week 32.",)),
          ("Comfort on board", (
             "Choose an aisle seat, walk around the cabin when it is safe to do so and drink plenty of water.",
             "Our crew can give you an extension seat belt if you need one.",))]),
        ("children-and-infants", "Children and infants",
         [("Infants under two", (
             f"Infants travel on an adult's lap for {v['infant_pct']}% of the adult fare plus taxes. "
             "Each adult may travel with one lap infant. Bassinets are available on long-haul flights.",)),
          ("Children travelling alone", (
             f"Children aged {v['umnr_min']} to 14 may use our unaccompanied minor service for "
             f"{v['cur']}{v['umnr_fee']} per flight. Children under {v['umnr_min']} must travel with someone aged 16 or over.",)),
          ("Pushchairs and car seats", (
             "A pushchair and a car seat travel free of charge and can be used up to the aircraft door.",))]),
    ]


def _loyalty(v: dict) -> list:
    docs = [
        ("loyalty/programme-overview", f"{A} Skyward Club: how it works",
         [("Earning points", (
             f"You earn {v['points_per_unit']} points for every {v['cur']}1 spent on flights with us, "
             "and more with our partner airlines, hotels and car hire.",
             "Points are credited within 72 hours of your flight. Missing points can be claimed for up to six months.")),
          ("Spending points", (
             "Use points for reward flights, upgrades, extra baggage and seats. Taxes and charges "
             "are paid in cash on reward flights.",)),
          ("Points expiry", (
             f"Points expire after {v['expiry_months']} months without earning or spending activity.",))]),
    ]
    thresholds = {"Blue": 0, "Silver": v["silver"], "Gold": v["gold"], "Platinum": v["platinum"]}
    perks = {
        "Blue": "member-only fares and points on every flight",
        "Silver": "priority check-in, one extra checked bag and free standard seat selection",
        "Gold": "lounge access, priority boarding, two extra checked bags and a 25% points bonus",
        "Platinum": "lounge access for you and a guest, guaranteed economy seat on full flights, "
                    "two complimentary upgrade vouchers a year and a 50% points bonus",
    }
    for tier in TIERS:
        docs.append((
            f"loyalty/tier-{tier.lower()}", f"{tier} tier benefits",
            [("Qualifying", (
                f"{tier} status needs {thresholds[tier]:,} tier points in a membership year." if thresholds[tier]
                else "Every member starts at Blue; no tier points are needed.",
                "Tier points are earned on flights only and reset at the end of each membership year.")),
             ("Benefits", (f"{tier} members enjoy {perks[tier]}.",)),
             ("Keeping your tier", (
                f"To keep {tier} for another year you need the same number of tier points again. "
                "If you fall short you move down one tier, never more.",))]))
    return docs


def _delays(v: dict) -> list:
    return [
        ("delays-and-compensation", "Flight delays and compensation",
         [("Care during a delay", (
             f"If your flight is delayed by more than {v['care_h']} hours we provide meal vouchers, and "
             "a hotel room and transport if an overnight stay is needed.",)),
          ("UK and EU compensation", (
             "On flights from the UK or EU, or to the UK or EU with us, you may be owed fixed "
             "compensation if you arrive more than three hours late for reasons within our control: "
             f"{v['cur']}220 for flights up to 1,500 km, {v['cur']}350 up to 3,500 km and {v['cur']}520 above 3,500 km.",
             "Extraordinary circumstances such as severe weather, air traffic control restrictions "
             "and security alerts do not qualify.")),
          ("How to claim", (
             "Claim online with your booking reference. We reply within 28 days. You do not need "
             "a claims company and we never charge for a claim.",))]),
        ("missed-connections", "Missed connections",
         [("Connections on one booking", (
             "If a delay on one flight makes you miss a connecting flight on the same booking, we "
             "rebook you on the next available flight at no cost and look after you while you wait.",)),
          ("Separate bookings", (
             f"Connections on separate bookings are your responsibility. We recommend at least "
             f"{v['min_connect_h']} hours between separately booked flights.",)),
          ("Checked bags on connections", (
             "On one booking your bags are checked through to your final destination. On separate "
             "bookings you must collect them and check them in again.",))]),
    ]


def _documents_and_visas(v: dict, rng: random.Random) -> list:
    docs = [
        ("travel-documents", "Passports and travel documents",
         [("Passport validity", (
             "Your passport must be valid for the whole trip; many countries require at least six "
             "months of validity left on arrival and two blank pages.",)),
          ("Identity on domestic flights", (
             "On UK domestic flights you need photo ID such as a passport or driving licence.",)),
          ("Names on bookings", (
             "The name on your booking must match your passport. We correct small spelling mistakes "
             f"free of charge; a change of traveller costs {v['cur']}{v['name_change_fee']}.",))]),
    ]
    countries = [
        ("usa", "United States", "an ESTA approved before you fly; apply at least 72 hours ahead",
         "Customs and Border Protection may ask for your return ticket and where you are staying."),
        ("canada", "Canada", "an eTA for most visa-exempt nationals; US citizens need only a passport",
         "Permanent residents of Canada must travel with their PR card."),
        ("india", "India", "an e-Visa for tourism and business trips, applied for online at least four days before travel",
         "Keep a printed copy of the e-Visa approval with your passport."),
        ("japan", "Japan", "no visa for stays of up to 90 days for UK, EU and US citizens",
         "You may be asked to show proof of onward travel."),
        ("uk", "the United Kingdom", "an Electronic Travel Authorisation (ETA) for most visa-exempt visitors",
         "Irish citizens do not need an ETA."),
        ("schengen", "the Schengen area", "no visa for UK and US citizens for up to 90 days in any 180-day period",
         "The Entry/Exit System registers your fingerprints and photo on your first entry."),
    ]
    for slug, name, rule, note in countries:
        docs.append((
            f"visas/{slug}", f"Entry requirements: {name}",
            [("Do I need a visa?", (f"Most visitors to {name} need {rule}.", note)),
             ("Transit", (
                 f"Passengers only changing planes in {name} may still need a transit visa or "
                 "authorisation depending on nationality. Check before you book.",)),
             ("Our responsibility", (
                 "You are responsible for holding the right documents. We must refuse boarding if "
                 "you do not, and the fare is not refundable in that case.",))]))
    return docs


def _other(v: dict) -> list:
    return [
        ("seats", "Choosing your seat",
         [("Seat selection", (
             f"Standard seats cost from {v['cur']}{v['seat_fee']} and extra-legroom seats from "
             f"{v['cur']}{v['xl_seat_fee']}. Free seats are allocated at check-in.",
             "Families with children under 12 are seated together free of charge.")),
          ("Exit rows", (
             "Passengers in exit rows must be over 16, able to help in an emergency and not "
             "travelling with an infant.",))]),
        ("meals-and-dietary", "Meals and dietary requirements",
         [("Meals on board", (
             "Long-haul flights include meals and drinks. On short-haul flights food is available "
             "to buy from our menu; Business passengers are served a complimentary meal.",)),
          ("Special meals", (
             f"Order vegetarian, vegan, gluten-free, halal, kosher or child meals at least "
             f"{v['meal_h']} hours before departure in Manage Booking.",)),
          ("Allergies", (
             "We cannot guarantee a nut-free environment. Please bring your own snacks and "
             "medication if you have a severe allergy.",))]),
        ("wifi-and-entertainment", "Wi-Fi and entertainment",
         [("Wi-Fi", (
             f"Messaging is free for all members. Streaming Wi-Fi costs {v['cur']}{v['wifi_fee']} for the whole flight.",
             "Wi-Fi is available above 10,000 feet and may be interrupted over some oceans and countries.")),
          ("Entertainment", (
             "Long-haul aircraft have seat-back screens with films, series and music; on short-haul "
             "flights stream our entertainment to your own device.",))]),
        ("changing-a-booking", "Changing a booking",
         [("Change fees", (
             f"Flex and Business fares change for free. Standard fares change for {v['cur']}{v['change_fee']} "
             "plus any fare difference. Light fares cannot be changed.",)),
          ("Same-day changes", (
             f"Move to an earlier flight on the day of travel for {v['cur']}{v['same_day_fee']} if seats are available.",)),
          ("Name corrections", (
             "Small spelling corrections are free. A change of traveller is treated as a new booking "
             "on Light and Standard fares.",))]),
        ("group-bookings", "Group bookings",
         [("Groups of ten or more", (
             "Groups of ten or more passengers travelling together can request a group quote with "
             "flexible name changes and a deposit scheme.",)),
          ("Payment schedule", (
             f"A deposit of {v['group_deposit_pct']}% is due within seven days of accepting the quote; "
             "the balance is due 45 days before departure.",)),
          ("Names", ("Passenger names can be given up to 14 days before departure at no extra cost.",))]),
        ("health-and-vaccinations", "Health and vaccinations",
         [("Vaccinations", (
             "Some destinations require proof of yellow fever vaccination. Check the advice of your "
             "travel clinic at least eight weeks before you travel.",)),
          ("Fit to fly", (
             "If you have had recent surgery or a serious illness, check with your doctor before flying.",)),
          ("Medicines", (
             "Carry essential medicines in your cabin bag in their original packaging, with a copy of "
             "your prescription. Liquid medicines over 100 ml are allowed with a prescription.",))]),
        ("fare-types", "Our fares explained",
         [("Light", ("Cabin bag and personal item only. No changes or refunds; seats are allocated free at check-in.",)),
          ("Standard", (
             f"Includes a checked bag, standard seat selection and changes for {v['cur']}{v['change_fee']} "
             "plus any fare difference.",)),
          ("Flex", ("Two checked bags, free changes, full refund before departure and priority boarding.",)),
          ("Business", (
             "Lounge access, fast track security, a flat bed on long-haul flights and the most "
             "generous baggage allowance.",))]),
        ("lounges", "Airport lounges",
         [("Who can use the lounge", (
             f"Business passengers and {TIERS[2]} and {TIERS[3]} members can use our lounges. Other "
             f"passengers can buy access from {v['cur']}{v['lounge_fee']} when space allows.",)),
          ("Opening hours", (
             "Lounges open three hours before the first departure of the day and close with the last one.",
             f"Entry is allowed up to {v['lounge_h']} hours before your flight.")),
          ("Guests", ("Platinum members may bring one guest free of charge.",))]),
        ("upgrades", "Upgrades",
         [("Paid upgrades", (
             f"Upgrade to Business from {v['cur']}{v['upgrade_fee']} on short-haul flights in Manage Booking "
             "or at the airport, subject to availability.",)),
          ("Upgrades with points", (
             f"Members can upgrade with points from {v['upgrade_points']:,} points per flight. Upgrades "
             "confirm up to 48 hours before departure.",)),
          ("Complimentary upgrades", (
             "Platinum members receive two upgrade vouchers a year. They can be used for a companion on the same booking.",))]),
        ("contact-us", "Contact us",
         [("Customer service", (
             "Our team is available 24 hours a day in the app chat. Call centres are open 7am to "
             "10pm local time.",)),
          ("Complaints", (
             f"We aim to reply to complaints within {v['complaint_days']} days. If you are not satisfied "
             "you can refer your complaint to an approved alternative dispute resolution body.",)),
          ("Data protection", (
             "To exercise your data protection rights, including access and erasure, use the privacy "
             "request form on our website. We never ask for your password by e-mail or phone.",))]),
    ]


def _variation(rng: random.Random) -> dict:
    return {
        "cur": "£",
        "cabin_kg": rng.choice((7, 8, 10)),
        "cabin_dims": rng.choice(("55 x 40 x 20", "56 x 45 x 25", "55 x 40 x 23")),
        "checked_kg": rng.choice((20, 23)),
        "business_kg": 32,
        "max_linear": rng.choice((158, 160)),
        "gate_fee": rng.choice((45, 50, 60)),
        "wh": 100,
        "extra_bag_online": rng.choice((35, 40, 45)),
        "extra_bag_airport": rng.choice((60, 65, 70)),
        "overweight_fee": rng.choice((55, 65, 75)),
        "cutoff_h": rng.choice((2, 3, 24)),
        "bike_fee": rng.choice((50, 60, 75)),
        "damage_days": 7,
        "delay_days": 21,
        "essentials": rng.choice((40, 50, 60)),
        "lost_days": 21,
        "cancel_fee": rng.choice((50, 60, 75)),
        "refund_days": rng.choice((7, 10, 14)),
        "voucher_months": rng.choice((12, 18, 24)),
        "checkin_open_h": rng.choice((24, 30, 48)),
        "checkin_close_min": rng.choice((45, 60)),
        "desk_close_min": rng.choice((40, 45, 60)),
        "gate_close_min": rng.choice((15, 20, 25)),
        "pet_cabin_kg": rng.choice((8, 10)),
        "pet_cabin_h": rng.choice((5, 6, 8)),
        "pet_fee": rng.choice((50, 60, 75)),
        "assist_h": rng.choice((48, 72)),
        "preg_weeks": 36,
        "infant_pct": rng.choice((10, 15)),
        "umnr_min": rng.choice((5, 6)),
        "umnr_fee": rng.choice((50, 60, 75)),
        "points_per_unit": rng.choice((3, 4, 5)),
        "expiry_months": rng.choice((24, 36)),
        "silver": rng.choice((300, 350)),
        "gold": rng.choice((700, 800)),
        "platinum": rng.choice((1500, 1800)),
        "care_h": rng.choice((2, 3)),
        "min_connect_h": rng.choice((3, 4)),
        "name_change_fee": rng.choice((60, 75)),
        "seat_fee": rng.choice((8, 10, 12)),
        "xl_seat_fee": rng.choice((25, 30, 35)),
        "meal_h": rng.choice((24, 48)),
        "wifi_fee": rng.choice((5, 8, 12)),
        "change_fee": rng.choice((45, 60, 75)),
        "same_day_fee": rng.choice((30, 40)),
        "group_deposit_pct": rng.choice((10, 20)),
        "complaint_days": rng.choice((14, 28)),
        "lounge_fee": rng.choice((30, 35, 40)),
        "lounge_h": rng.choice((3, 4)),
        "upgrade_fee": rng.choice((99, 129, 149)),
        "upgrade_points": rng.choice((8000, 10000, 12000)),
    }


def generate_documents(seed: int = 7, today: date = date(2025, 1, 15)) -> list[Document]:
    """The knowledge base: about 35 documents, deterministic for (seed, today)."""
    rng = random.Random(f"documents:{seed}")
    v = _variation(rng)
    specs = (_baggage(v) + _refunds(v) + _checkin(v) + _pets(v) + _assistance(v) + _loyalty(v)
             + _delays(v) + _documents_and_visas(v, rng) + _other(v))
    documents = []
    for slug, title, sections in specs:
        fmt = rng.choices(FORMATS, weights=(55, 20, 25))[0]
        folder = "" if "/" in slug else _folder(slug)
        documents.append(Document(
            key=f"{folder}{slug}.{fmt}",
            title=title,
            sections=tuple((heading, tuple(paragraphs)) for heading, paragraphs in sections),
            updated=today - timedelta(days=rng.randrange(1, 400)),
        ))
    return documents


def _folder(slug: str) -> str:
    if "baggage" in slug or slug == "sports-equipment":
        return "baggage/"
    if slug in ("refunds", "travel-credit", "changing-a-booking", "group-bookings", "seats",
                "fare-types", "upgrades"):
        return "bookings/"
    if "check-in" in slug:
        return "airport/"
    if slug in ("delays-and-compensation", "missed-connections"):
        return "disruption/"
    return "help/"


# ------------------------------------------------------------------ changes

_AMOUNT = re.compile(r"(?<![\w,.£€$-])([£€$]?)(\d{1,5})(?![\d,.]\d|\w)")
_NOTES = (
    "This rule also applies to codeshare flights operated by our partners.",
    "From next month this can also be arranged in the app.",
    "Exceptions may apply on flights to and from the United States.",
    "Members of the Skyward Club can manage this in their account.",
    "Please note that airport staff cannot make exceptions to this policy.",
)


def modify_document(document: Document, rng: random.Random, today: date) -> tuple[Document, str]:
    """One realistic edit to one paragraph; returns the new version and what changed.

    Prefers changing a quantity (a weight, fee, time limit); a paragraph without one gets an
    extra sentence.
    """
    candidates = [(s, p) for s, (_, paragraphs) in enumerate(document.sections)
                  for p, text in enumerate(paragraphs) if _AMOUNT.search(text)]
    sections = [list(paragraphs) for _, paragraphs in document.sections]
    if candidates and rng.random() < 0.8:
        s, p = rng.choice(candidates)
        text = sections[s][p]
        matches = list(_AMOUNT.finditer(text))
        match = rng.choice(matches)
        old = int(match.group(2))
        new = old
        while new == old:
            new = max(1, round(old * rng.choice((0.8, 0.9, 1.1, 1.2, 1.25, 1.5))))
        sections[s][p] = text[:match.start(2)] + str(new) + text[match.end(2):]
        what = f"{document.sections[s][0]}: {match.group(0).strip()} -> {match.group(1)}{new}"
    else:
        s = rng.randrange(len(sections))
        p = rng.randrange(len(sections[s]))
        note = rng.choice(_NOTES)
        if note in sections[s][p]:
            note = "Updated guidance: contact us before travel if you are unsure."
        sections[s][p] = f"{sections[s][p]} {note}"
        what = f"{document.sections[s][0]}: added a sentence"
    new_sections = tuple((heading, tuple(paras)) for (heading, _), paras
                         in zip(document.sections, sections))
    return replace(document, sections=new_sections, updated=today,
                   revision=document.revision + 1), what


def new_advisory(rng: random.Random, today: date, serial: int) -> Document:
    """A short-lived travel notice (strike, weather, schedule change) in `advisories/`."""
    airport = rng.choice(AIRPORTS)
    day = today + timedelta(days=rng.randrange(1, 20))
    kind = rng.choice(("strike", "weather", "schedule", "runway"))
    title, sections = {
        "strike": (f"Industrial action at {airport} on {day:%d %B}", [
            ("What is happening", (f"Ground handling staff at {airport} plan a strike on {day:%A %d %B}. "
                                   "Some flights may be delayed or cancelled.",)),
            ("Your options", ("If your flight is affected you can rebook free of charge to another date "
                              "within 14 days, or ask for a refund.",))]),
        "weather": (f"Weather warning for {airport}", [
            ("Forecast", (f"Strong winds and snow are forecast at {airport} on {day:%d %B}. "
                          "De-icing may cause delays.",)),
            ("What to do", ("Check your flight status before leaving for the airport. Free rebooking is "
                            "available for travel on that day.",))]),
        "schedule": (f"Schedule change on {AIRLINE_CODE}{rng.randrange(100, 2999)} to {airport}", [
            ("The change", (f"From {day:%d %B} this flight departs {rng.choice((35, 50, 65, 80))} minutes "
                            "earlier. Affected customers are notified by e-mail.",)),
            ("If the new time does not suit you", ("You may change to another flight free of charge or "
                                                    "cancel for a full refund.",))]),
        "runway": (f"Runway works at {airport}", [
            ("Works", (f"Night-time runway resurfacing at {airport} from {day:%d %B} for "
                       f"{rng.randrange(2, 8)} weeks may delay late arrivals.",)),
            ("Impact", ("Flights arriving after 23:00 may divert to a nearby airport; coaches will be provided.",))]),
    }[kind]
    fmt = rng.choice(FORMATS)
    return Document(key=f"advisories/{day:%Y%m%d}-{kind}-{airport.lower()}-{serial}.{fmt}",
                    title=title, sections=tuple((h, tuple(ps)) for h, ps in sections), updated=today)
