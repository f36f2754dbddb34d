"""Conversational histories of any size, seeded, with no dataset: the input of ``realistic.py``.

Each user is one person talking with an assistant over many sessions (a session is a stream; its
turns share the session's date, sessions a few days apart). What they say is a mix of:

* facts that change: city, job, car, diet, commute and partner, each stated in the everyday
  phrasings the consolidator reads ("I signed a lease on a flat in Denver", "they hired me as a
  data analyst"), now and then restated, and changed every few sessions, so newer values
  supersede older ones across the whole history;
* hobbies the person keeps coming back to (camping, pottery, ...), with friends and places: what
  L2 insights gather;
* everyday chat with named people and places, and filler ("lol", "Perfect.", "See you!").

Users' sessions are interleaved in ingest order, as traffic from many users is. The questions are
real-length ones about each user's current facts, hobbies and people.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

NAMES = ("Maya Leo Nora Omar Ruth Ivan Lena Theo Aisha Pablo Greta Hugo Priya Sven Clara Tariq "
         "Elena Jonas Mei Rafael Zoe Malik Ingrid Kenji Amara Felix Sofia Dmitri Hana Bruno "
         "Lucia Anders Yara Mateo Freya Idris Chloe Emil Rosa Nikhil").split()
FRIENDS = ("Sam Alex Jordan Taylor Morgan Casey Riley Jamie Avery Quinn Rowan Sage Blake Drew "
           "Emery Finley Harper Kai Logan Parker").split()
CITIES = ("Denver Seattle Boston Austin Chicago Portland Toronto Montreal Dublin Lisbon Berlin "
          "Vienna Oslo Madrid Melbourne Edinburgh Copenhagen Prague").split()
JOBS = ("data analyst", "nurse", "teacher", "software engineer", "product designer",
        "project manager", "pharmacist", "architect", "barista", "research scientist",
        "accountant", "editor")
COMPANIES = "Acme Globex Initech Umbrella Hooli Vandelay Stark Wayne Wonka Cyberdyne".split()
CARS = "Tesla Civic Corolla Golf Outback Prius Mustang Leaf".split()
DIETS = ("vegetarian", "vegan", "pescatarian", "keto")
COMMUTES = ("bike", "walk", "drive", "take the train", "take the bus")
PLACES = ("the farmers market", "the old library", "Riverside Park", "the climbing gym",
          "Lakeview Cafe", "the science museum", "Harbor Street", "the community garden")
FILMS = ("Dune", "Past Lives", "Oppenheimer", "Paddington", "Arrival", "Amelie", "Heat")
HOBBIES = {
    "camping": ("We went camping at {place} with {friend}, the stars were unreal.",
                "Planning another camping trip with {friend} next month, maybe near {city}.",
                "I bought a new tent for camping, the old one leaked all night."),
    "pottery": ("My pottery class made bowls this week and mine finally did not crack.",
                "{friend} came to pottery with me and glazed a mug for her mum.",
                "I spent the whole evening at the pottery studio trimming vases."),
    "marathon": ("Training for the marathon is going well, 30 km on Sunday with {friend}.",
                 "My marathon plan says intervals today, my legs are not happy.",
                 "Signed up for the {city} marathon in the spring, wish me luck."),
    "guitar": ("I practised the guitar for an hour, finally nailed the barre chords.",
               "{friend} showed me a fingerpicking pattern on the guitar.",
               "Thinking about buying a second guitar, an acoustic this time."),
    "baking": ("I baked sourdough again, the crust came out perfect this time.",
               "Baking cinnamon rolls for {friend}'s birthday on Saturday.",
               "My baking experiment with rye flour was a disaster, very dense."),
    "chess": ("Played chess with {friend} at {place}, lost in thirty moves.",
              "I have been studying chess openings, the Sicilian is hard.",
              "Joined an online chess club and won three games this week."),
    "photography": ("Took photography walks around {place} at sunrise, great light.",
                    "My photography teacher liked the portraits I shot of {friend}.",
                    "I saved up for a new lens for photography, a 50mm prime."),
    "gardening": ("The tomatoes in my gardening beds are finally turning red.",
                  "Gardening with {friend} at {place}, we planted garlic and kale.",
                  "I spent Sunday gardening and pulled out all the weeds."),
}
EVERYDAY = ("We watched {film} on {day} and the ending was {adj}.",
            "My neighbour has been drilling all week, I can barely think.",
            "I had lunch with {friend} at {place} and we talked about work.",
            "{friend} is visiting next weekend, I need to clean the flat.",
            "The train was late again this morning, I missed my meeting.",
            "I finally finished the book {friend} lent me, it was {adj}.",
            "It rained all day on {day} so I stayed in and cooked soup.",
            "I called my sister on {day}, she is doing well in her new school.")
FILLER = ("ok", "lol", "Perfect.", "Thanks!", "Sounds good.", "See you tomorrow!", "haha yes",
          "Good morning!", "Sure.", "Great, thanks.", "Nice!", "Hi! How are you?")
ASSISTANT = ("That sounds lovely! How did it go?", "Got it, I will remember that.",
             "How long have you been doing that?", "What did {name} enjoy most about it?",
             "That must have been a big change. How are you settling in?",
             "Good luck! Tell me how it goes next time.", "Oh no, sorry to hear that.",
             "Anything else on your mind today?")
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
ADJS = "wonderful strange sad brilliant predictable hilarious slow beautiful".split()
SESSION_TURNS = (12, 28)
SESSION_GAP_DAYS = (1, 6)
START = 1_672_531_200.0  # 2023-01-01 UTC: session dates, not ingest times


@dataclass
class Persona:
    user_id: str
    name: str
    facts: dict[str, str]
    hobbies: list[str]
    friends: list[str]
    history: dict[str, list[str]] = field(default_factory=dict)  # attribute -> values said


def statement(attribute: str, value: str, rng: random.Random) -> str:
    """A first-person sentence stating one fact, in one of the phrasings people use."""
    if attribute == "city":
        return rng.choice((f"I just moved to {value}, still unpacking boxes.",
                           f"I signed a lease on a flat in {value} last week.",
                           f"We are living in {value} now and I love the neighbourhood."))
    if attribute == "job":
        company = rng.choice(COMPANIES)
        return rng.choice((f"They hired me as a {value} at {company}!",
                           f"I started as a {value} at {company} on Monday.",
                           f"I'm now a {value}, it is a lot of responsibility."))
    if attribute == "car":
        return rng.choice((f"I drive a {value} these days, way cheaper on fuel.",
                           f"I sold the old car and got a {value}."))
    if attribute == "diet":
        return rng.choice((f"I've gone {value} since the spring.", f"I'm {value} now, mostly."))
    if attribute == "commute":
        return f"I {value} to work most days now."
    return rng.choice((f"My partner {value} and I went hiking on the weekend.",
                       f"My girlfriend {value} cooked dinner for my parents."))


VALUES = {"city": CITIES, "job": JOBS, "car": CARS, "diet": DIETS, "commute": COMMUTES,
          "partner": FRIENDS}


class History:
    """``events`` events over ``users`` users; the same seed gives the same history."""

    def __init__(self, events: int, users: int, seed: int = 7):
        self.size = events
        self.rng = random.Random(seed)
        self.personas = [self._persona(i) for i in range(users)]

    def _persona(self, i: int) -> Persona:
        rng = self.rng
        name = NAMES[i % len(NAMES)] + ("" if i < len(NAMES) else str(i // len(NAMES)))
        facts = {a: rng.choice(v) for a, v in VALUES.items()}
        return Persona(f"user_{i:04d}", name, facts, rng.sample(sorted(HOBBIES), 3),
                       rng.sample(FRIENDS, 4), {a: [v] for a, v in facts.items()})

    def events(self) -> list[dict[str, Any]]:
        """Every event, in ingest order: sessions of all users interleaved."""
        out: list[dict[str, Any]] = []
        sessions = {p.user_id: self._sessions(p) for p in self.personas}
        while len(out) < self.size:
            for persona in self.personas:
                out.extend(next(sessions[persona.user_id]))
                if len(out) >= self.size:
                    break
        return out[:self.size]

    def _sessions(self, p: Persona) -> Iterator[list[dict[str, Any]]]:
        rng, number, day = self.rng, 0, 0
        while True:
            number += 1
            day += rng.randint(*SESSION_GAP_DAYS)
            when = START + day * 86_400 + rng.randint(8, 21) * 3600
            if number > 1 and rng.random() < 0.35:  # a fact changes this session
                attribute = rng.choice(sorted(VALUES))
                p.facts[attribute] = rng.choice([v for v in VALUES[attribute]
                                                 if v != p.facts[attribute]])
                p.history[attribute].append(p.facts[attribute])
                changed = attribute
            else:
                changed = ""
            turns = []
            for t in range(rng.randint(*SESSION_TURNS)):
                if t % 2:
                    turns.append("Assistant: " + rng.choice(ASSISTANT).format(name=p.name))
                    continue
                turns.append(f"{p.name}: {self._said(p, changed if t == 2 else '')}")
            yield [{"user_id": p.user_id, "stream_id": f"session_{number}", "content": text,
                    "timestamp": when + 30 * i, "metadata": {"session": number, "turn": i}}
                   for i, text in enumerate(turns)]

    def _said(self, p: Persona, changed: str) -> str:
        rng = self.rng
        if changed:
            return statement(changed, p.facts[changed], rng)
        roll = rng.random()
        slots = {"friend": rng.choice(p.friends), "place": rng.choice(PLACES),
                 "city": p.facts["city"], "film": rng.choice(FILMS), "day": rng.choice(DAYS),
                 "adj": rng.choice(ADJS)}
        if roll < 0.25:
            return rng.choice(FILLER)
        if roll < 0.6:
            return rng.choice(HOBBIES[rng.choice(p.hobbies)]).format(**slots)
        if roll < 0.7:  # a current fact, said again in passing
            attribute = rng.choice(sorted(VALUES))
            return statement(attribute, p.facts[attribute], rng)
        return rng.choice(EVERYDAY).format(**slots)

    def questions(self, n: int, seed: int = 11, asked: set[tuple[str, str]] | None = None,
                  user: int | None = None) -> list[tuple[str, str]]:
        """(user_id, question): ``n`` distinct real-length questions about facts, hobbies and
        people (of the ``user``-th user only, if given), none of them in ``asked`` (which they
        are added to)."""
        rng = random.Random(seed)
        asked = set() if asked is None else asked
        out: list[tuple[str, str]] = []
        tries = 0
        while len(out) < n:
            tries += 1
            if tries > 100 * (n + 100):  # the templates make a few thousand, not endless
                raise ValueError(f"only {len(out)} new distinct questions of {n} asked for")
            p = rng.choice(self.personas) if user is None else self.personas[user]
            friend, hobby = rng.choice(p.friends), rng.choice(p.hobbies)
            question = rng.choice(("", "Quick question: ", "Remind me, ", "Do you know ")) + \
                rng.choice((
                f"Where does {p.name} live now, and when did she move there?",
                f"What does {p.name} do for work these days and where?",
                f"What car is {p.name} driving at the moment?",
                f"What has {p.name} said about {hobby} over the last few months?",
                f"Who is {p.name}'s partner and what did they do together recently?",
                f"How does {p.name} usually get to work now?",
                f"Did {p.name} do anything with {friend} recently?",
                f"Is {p.name} still {p.facts['diet']} or did her diet change?",
            )) + rng.choice(("", " Thanks.", " Keep it short."))
            if (p.user_id, question) not in asked:
                asked.add((p.user_id, question))
                out.append((p.user_id, question))
        return out
