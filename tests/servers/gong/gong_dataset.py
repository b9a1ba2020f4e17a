"""A generated, realistic Gong tenant: users, workspaces, calls with parties, content, CRM context and
multi-speaker transcripts. Deterministic for a seed; a few calls are "late" (still processing)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

SELLER_DOMAIN = "northwind-analytics.com"

ACCOUNTS = [
    ("Acme Corp", "acme.com"),
    ("Globex", "globex.io"),
    ("Initech", "initech.com"),
    ("Umbrella Health", "umbrella-health.org"),
    ("Hooli", "hooli.xyz"),
    ("Stark Industries", "starkindustries.com"),
    ("Wayne Enterprises", "wayne.co"),
    ("Soylent Foods", "soylent.com"),
    ("Cyberdyne Systems", "cyberdyne.ai"),
    ("Tyrell Corporation", "tyrell.com"),
    ("Vandelay Imports", "vandelay.net"),
    ("Wonka Industries", "wonka.com"),
]
COMPETITORS = ["Clari", "Chorus", "Salesloft", "Outreach"]
FIRST = [
    "Ana",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kara",
    "Liam",
    "Maya",
    "Noor",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Uma",
    "Victor",
    "Wen",
    "Yusuf",
]
LAST = [
    "Alvarez",
    "Brooks",
    "Chen",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ivanova",
    "Jensen",
    "Khan",
    "Lopez",
    "Moreau",
    "Novak",
    "Okafor",
    "Patel",
    "Rossi",
    "Silva",
    "Tanaka",
    "Weber",
]
TITLES_EXT = ["VP Finance", "Head of RevOps", "CTO", "Procurement Lead", "Sales Director", "CISO", "CFO"]
TITLES_INT = ["Account Executive", "Solutions Engineer", "Customer Success Manager", "Sales Manager", "SDR"]

TOPICS: dict[str, tuple[list[str], list[str]]] = {
    # topic: (what the customer says, what the seller says)
    "Pricing": (
        [
            "Honestly the per-seat price is higher than what {competitor} quoted us.",
            "Our budget for this quarter is capped at {budget}k, so the list price does not work for us.",
            "Could you do a multi-year discount if we commit to three years?",
            "Pricing is the main blocker for {account} right now, the rest looks fine.",
            "We would need the pricing to scale down for occasional users.",
        ],
        [
            "We can look at a volume discount above two hundred seats.",
            "A three-year term would bring the effective price down by about fifteen percent.",
            "Let me take the pricing question back to our deal desk.",
        ],
    ),
    "Security": (
        [
            "Our security team needs your SOC 2 Type II report before legal signs.",
            "Where is the data stored, and can we keep it in the EU region?",
            "We require single sign-on with SCIM provisioning for every vendor.",
        ],
        [
            "I can share the SOC 2 report under NDA today.",
            "Data residency in Frankfurt is available on the enterprise plan.",
        ],
    ),
    "Integration": (
        [
            "The Salesforce integration is the must-have for our reps.",
            "How long does the HubSpot sync take to set up?",
            "We tried connecting it to our warehouse and the export timed out.",
        ],
        [
            "The Salesforce connector syncs opportunities every five minutes.",
            "Most customers finish the integration within two weeks.",
        ],
    ),
    "Timeline": (
        [
            "We want to roll this out before the end of the fiscal year.",
            "Procurement usually takes six weeks at {account}.",
            "Legal review is the long pole, probably a month.",
        ],
        [
            "If we sign by the fifteenth we can start onboarding next month.",
            "I will send a mutual action plan with the dates.",
        ],
    ),
    "Competition": (
        [
            "We are also evaluating {competitor} and they were quite aggressive.",
            "{competitor} offered us a free pilot for ninety days.",
        ],
        [
            "Compared with {competitor}, our forecasting is built on the actual conversations.",
            "Happy to set up a side-by-side pilot against {competitor}.",
        ],
    ),
    "Onboarding": (
        [
            "Training two hundred reps is a big lift for our enablement team.",
            "Who will be our point of contact after the contract is signed?",
        ],
        [
            "Your customer success manager runs the onboarding sessions with your team.",
            "We provide a sandbox and recorded training for new hires.",
        ],
    ),
}
SMALL_TALK = [
    "Thanks everyone for joining.",
    "Can you all hear me okay?",
    "Let me share my screen.",
    "Great, that makes sense.",
    "Sounds good, let's keep going.",
]


@dataclass
class GongCall:
    """One call as the mock stores it: Gong's basic object plus what the extensive view adds."""

    meta: dict[str, Any]
    parties: list[dict[str, Any]]
    content: dict[str, Any]
    interaction: dict[str, Any]
    context: list[dict[str, Any]]
    transcript: list[dict[str, Any]]
    late: bool = False
    account: str = ""

    @property
    def id(self) -> str:
        return str(self.meta["id"])

    def filter_time(self) -> datetime:
        """Gong filters web-conference calls by their scheduled time, the others by the actual start."""
        key = "scheduled" if self.meta["system"] in ("Zoom", "Google Meet", "Teams") else "started"
        return datetime.fromisoformat(self.meta[key])


@dataclass
class GongDataset:
    users: list[dict[str, Any]]
    workspaces: list[dict[str, Any]]
    calls: list[GongCall]
    by_id: dict[str, GongCall] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {c.id: c for c in self.calls}


def _id(rng: random.Random, width: int = 19) -> str:
    # Gong ids are numeric strings up to 20 digits, far above 2^53: keep them as strings.
    return str(rng.randrange(10 ** (width - 1), 10**width))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def generate(
    *,
    calls: int = 300,
    users: int = 40,
    seed: int = 7,
    end: datetime | None = None,
    days: int = 20,
    turns: tuple[int, int] = (8, 16),
    late_fraction: float = 0.03,
) -> GongDataset:
    """Build a tenant of `calls` calls spread over the `days` before `end` (default: now)."""
    rng = random.Random(seed)
    end = (end or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    workspaces = [
        {"id": _id(rng), "name": "Sales", "description": "New business"},
        {"id": _id(rng), "name": "Customer Success", "description": "Renewals and expansion"},
    ]
    people: list[dict[str, Any]] = []
    for index in range(users):
        first, last = FIRST[index % len(FIRST)], LAST[(index * 7) % len(LAST)]
        created = end - timedelta(days=rng.randrange(60, 900))
        people.append(
            {
                "id": _id(rng),
                "emailAddress": f"{first.lower()}.{last.lower()}{index}@{SELLER_DOMAIN}",
                "emailAliases": [],
                "firstName": first,
                "lastName": last,
                "title": TITLES_INT[index % len(TITLES_INT)],
                "active": index % 13 != 12,
                "created": _iso(created),
                "managerId": None,
                "phoneNumber": f"+1-555-01{index:02d}",
                "settings": {"webConferencesRecorded": True, "telephonyCallsImported": index % 3 == 0},
                "spokenLanguages": [{"language": "en-US", "primary": True}],
            }
        )
    for person in people[1:]:
        person["managerId"] = people[0]["id"] if rng.random() < 0.5 else people[1]["id"]
    contacts = {
        account: [
            {
                "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                "title": rng.choice(TITLES_EXT),
                "domain": domain,
            }
            for _ in range(3)
        ]
        for account, domain in ACCOUNTS
    }
    for account, people_of in contacts.items():
        for person in people_of:
            local = person["name"].lower().replace(" ", ".")
            person["emailAddress"] = f"{local}@{person['domain']}"
            person["account"] = account

    items = [_call(rng, i, end, days, people, workspaces, contacts, turns) for i in range(calls)]
    late_count = round(calls * late_fraction)
    for call in items[-late_count:] if late_count else []:
        # Late calls happened in the last few hours but are still being processed.
        call.late = True
        start = end - timedelta(minutes=rng.randrange(60, 300))
        call.meta["started"] = _iso(start)
        call.meta["scheduled"] = _iso(start)
    items.sort(key=lambda c: (c.filter_time(), c.id))
    return GongDataset(users=people, workspaces=workspaces, calls=items)


def _call(
    rng: random.Random,
    index: int,
    end: datetime,
    days: int,
    people: list[dict[str, Any]],
    workspaces: list[dict[str, Any]],
    contacts: dict[str, list[dict[str, Any]]],
    turns: tuple[int, int],
) -> GongCall:
    account, _domain = ACCOUNTS[index % len(ACCOUNTS)]
    competitor = rng.choice(COMPETITORS)
    host = rng.choice(people)
    colleague = rng.choice([p for p in people if p is not host])
    externals = rng.sample(contacts[account], rng.randint(1, 2))
    scheduled = end - timedelta(seconds=rng.randrange(3600 * 6, days * 86400))
    scheduled = scheduled.replace(second=0, minute=(scheduled.minute // 15) * 15)
    started = scheduled + timedelta(seconds=rng.randrange(0, 300))
    conference = rng.random() < 0.8
    topics = rng.sample(sorted(TOPICS), rng.randint(1, 3))
    call_id = _id(rng)

    parties: list[dict[str, Any]] = []
    for user in (host, colleague):
        parties.append(
            {
                "id": _id(rng),
                "emailAddress": user["emailAddress"],
                "name": f"{user['firstName']} {user['lastName']}",
                "title": user["title"],
                "userId": user["id"],
                "speakerId": _id(rng),
                "affiliation": "Internal",
                "methods": ["Invitee"],
            }
        )
    for person in externals:
        parties.append(
            {
                "id": _id(rng),
                "emailAddress": person["emailAddress"],
                "name": person["name"],
                "title": person["title"],
                "speakerId": _id(rng),
                "affiliation": "External",
                "methods": ["Invitee"],
                "context": [{"system": "Salesforce", "objects": [{"objectType": "Contact", "objectId": _id(rng, 18)}]}],
            }
        )

    monologues: list[dict[str, Any]] = []
    clock_ms = rng.randrange(2_000, 15_000)
    turn_count = rng.randint(*turns)
    for turn in range(turn_count):
        # After the opening, each topic gets a customer turn and then a seller turn.
        topic = topics[((turn - 1) // 2) % len(topics)] if turn else "Small talk"
        external = turn % 2 == 1
        speaker = rng.choice(parties[2:] if external else parties[:2])
        if topic == "Small talk":
            lines = [rng.choice(SMALL_TALK)]
        else:
            said_by_customer, said_by_seller = TOPICS[topic]
            pool = said_by_customer if external else said_by_seller
            lines = rng.sample(pool, min(len(pool), rng.randint(1, 2)))
        sentences = []
        for line in lines:
            text = line.format(competitor=competitor, account=account, budget=rng.choice([40, 75, 120, 250]))
            length = 800 + 55 * len(text) + rng.randrange(0, 1500)
            sentences.append({"start": clock_ms, "end": clock_ms + length, "text": text})
            clock_ms += length + rng.randrange(100, 900)
        monologues.append({"speakerId": speaker["speakerId"], "topic": topic, "sentences": sentences})
    duration = max(clock_ms // 1000 + rng.randrange(30, 600), 300)

    system = rng.choice(["Zoom", "Google Meet", "Teams"]) if conference else "Dialer"
    meta = {
        "id": call_id,
        "url": f"https://app.gong.io/call?id={call_id}",
        "title": f"{account} <> Northwind: {' & '.join(topics)}",
        "scheduled": _iso(scheduled),
        "started": _iso(started),
        "duration": duration,
        "primaryUserId": host["id"],
        "direction": "Conference" if conference else rng.choice(["Inbound", "Outbound"]),
        "system": system,
        "scope": "External",
        "media": "Video" if conference else "Audio",
        "language": "eng",
        "workspaceId": workspaces[index % 7 == 0]["id"],
        "purpose": None,
        "meetingUrl": f"https://zoom.us/j/{rng.randrange(10**9, 10**10)}" if conference else None,
        "isPrivate": False,
        "calendarEventId": _id(rng, 12) if conference else None,
        "clientUniqueId": None,
        "customData": None,
        "sdrDisposition": None,
    }
    content = {
        "brief": f"{account} discussed {', '.join(t.lower() for t in topics)} with {host['firstName']}. "
        f"They mentioned {competitor} as an alternative.",
        "keyPoints": [{"text": f"{account} raised {t.lower()} concerns."} for t in topics],
        "topics": [{"name": t, "duration": rng.randrange(60, 900)} for t in topics],
        "trackers": [
            {
                "id": _id(rng),
                "name": "Competitors",
                "count": 1 + rng.randrange(3),
                "type": "KEYWORD",
                "occurrences": [],
            },
        ],
        "outline": [],
        "highlights": [],
        "callOutcome": {"id": _id(rng), "category": "Answered", "name": "Meeting held"},
    }
    interaction = {
        "speakers": [
            {"id": p["speakerId"], "userId": p.get("userId"), "talkTime": rng.randrange(60, 900)} for p in parties
        ],
        "interactionStats": [{"name": "Interactivity", "value": round(rng.random() * 10, 1)}],
        "questions": {"companyCount": rng.randrange(10), "nonCompanyCount": rng.randrange(10)},
    }
    context = [
        {
            "system": "Salesforce",
            "objects": [
                {
                    "objectType": "Account",
                    "objectId": _id(rng, 18),
                    "timing": "Now",
                    "fields": [{"name": "Name", "value": account}, {"name": "Industry", "value": "Technology"}],
                },
                {
                    "objectType": "Opportunity",
                    "objectId": _id(rng, 18),
                    "timing": "Now",
                    "fields": [
                        {"name": "Name", "value": f"{account} - New Business"},
                        {"name": "StageName", "value": rng.choice(["Discovery", "Proposal", "Negotiation"])},
                        {"name": "Amount", "value": rng.choice([48000, 96000, 150000])},
                    ],
                },
            ],
        }
    ]
    return GongCall(
        meta=meta,
        parties=parties,
        content=content,
        interaction=interaction,
        context=context,
        transcript=monologues,
        account=account,
    )
