"""The facts a statement makes about its speaker: (attribute, value) pairs such as
("city", "denver") or ("job", "data analyst"), read from how people say them in conversation.

Local and deterministic: a few phrasings per attribute, each written for the way a change is
said in passing ("I signed a lease on a flat in Denver", "they hired me as a data analyst",
"Leo, the guy I'm seeing now"), not only the textbook one ("I moved to Denver"). A newer value
of the same (speaker, attribute) supersedes the older memory (see consolidate.py).
"""

from __future__ import annotations

import re

_NAME = r"([A-Z][\w'-]+(?: (?:of )?[A-Z][\w'-]+){0,3})"
_FIRST_PERSON = re.compile(r"\b(?:I|I'm|I've|we|We|we're|my|My|our|Our|me)\b")
_ROLE = (r"nurse|teacher|developer|engineer|manager|analyst|designer|lead|doctor|lawyer|chef|"
         r"writer|consultant|accountant|architect|barista|scientist|researcher|officer|director|"
         r"intern|programmer|editor|pharmacist|electrician|plumber|pilot|paramedic|librarian")
_IMPLICIT_I = re.compile(r"^(?:[\w ]{1,40}: )?(?:Just |Finally |Also |So )?[A-Z][a-z]+ed\b")
_ARTICLE = re.compile(r"^(?:the|a|an|my|our) ", re.IGNORECASE)

PATTERNS: dict[str, list[re.Pattern[str]]] = {
    "city": [
        re.compile(rf"\b(?:moved|moving|relocated|relocating|move|relocate) (?:back )?to {_NAME}"),
        re.compile(rf"\b(?:I|we)(?:'re|'m| am| are)? (?:now |still |currently )?(?:live|living|"
                   rf"based|settled|staying) (?:in|near) {_NAME}"),
        re.compile(rf"\b(?:lease|flat|apartment|house|place|home|studio|condo|loft)\b"
                   rf"(?: [\w'-]+){{0,4}}? in {_NAME}"),
    ],
    "job": [
        re.compile(r"\b(?:hired me|took me on|work(?:ing)?|started|starting|promoted|employed|"
                   r"job) as (?:an? |the )?([a-z][\w-]*(?: [a-z][\w-]*){0,2}?)"
                   r"(?= at\b| for\b| on\b| in\b|[,.!;]|$)"),
        re.compile(rf"\bI(?:'m| am) (?:now |currently )?(?:an? |the )?((?:[a-z-]+ ){{0,2}}?"
                   rf"(?:{_ROLE}))\b"),
        re.compile(r"\bpromoted to ([a-z][\w -]*?)(?=[,.!;]|$)"),
        re.compile(rf"\b(?:I|I'm) (?:now )?(?:work(?:ing)?|employed) (?:for|at) {_NAME}"),
        re.compile(rf"\b(?:[Ss]tarted|[Ss]tarting|[Jj]oined) (?:at|with) {_NAME}"),
        re.compile(r"\bI (teach)\b"),
    ],
    "partner": [
        re.compile(r"\b[Mm]y (?:new )?(?:boyfriend|girlfriend|partner|husband|wife|fianc[ée]e?)"
                   r"(?:'s name is|,| is)? ([A-Z][a-z]+)"),
        re.compile(r"\b([A-Z][a-z]+), the (?:guy|girl|man|woman|person) I'm (?:seeing|dating)"),
        re.compile(r"\b([A-Z][a-z]+) and I\b[^.!?]*\b(?:she|he|they)(?:'s|'re| is| are) "
                   r"(?:been )?my (?:girlfriend|boyfriend|partner|wife|husband|fianc)"),
        re.compile(r"\bI(?:'m| am) (?:now )?(?:seeing|dating|engaged to|married to) ([A-Z][a-z]+)"),
    ],
    "diet": [
        re.compile(r"\b(?:I|I'm|I am|I've|I have)(?: now| gone| went| become| been)*"
                   r"(?: fully| strictly| mostly| completely| now)* (vegetarian|vegan|"
                   r"pescatarian|keto|omnivore|gluten-free)\b"),
        re.compile(r"\bI eat (everything|anything)\b"),
    ],
    "car": [
        re.compile(rf"\bI drive (?:an? |the )?(?:old |new |used |little )?{_NAME}"),
        re.compile(rf"\bsold (?:the|my) [\w ]+? and (?:got|bought) (?:an? )?{_NAME}"),
    ],
    "commute": [
        re.compile(r"\bI (bike|cycle|walk|drive|run|take the (?:train|bus|tube|subway|metro|ferry))"
                   r" to work\b"),
    ],
    "school": [
        re.compile(r"\b(?:studying|student|sophomore|freshman|junior|senior|enrolled|transferred|"
                   r"attend|attending)\b[^.!?]*? (?:at|to) (?:the )?((?:University|College) of "
                   r"[A-Z][a-z]+|[A-Z][a-z]+ (?:University|College))"),
    ],
}


def facts(statement: str) -> dict[str, str]:
    """attribute -> value (lowercased) for what ``statement`` says about its speaker; the last
    phrasing found wins ("I sold the Civic and got a Tesla": car = tesla)."""
    if not _FIRST_PERSON.search(statement) and not _IMPLICIT_I.match(statement):
        return {}
    found: dict[str, tuple[int, str]] = {}
    for attribute, patterns in PATTERNS.items():
        for pattern in patterns:
            for match in pattern.finditer(statement):
                value = next((g for g in match.groups() if g), "").strip()
                value = _ARTICLE.sub("", value).lower()
                if value and match.start() >= found.get(attribute, (-1, ""))[0]:
                    found[attribute] = (match.start(), value)
    return {attribute: value for attribute, (_, value) in found.items()}


# How a question asks for an attribute's value ("where does she live now?": city). A memory that
# states a value of the attribute asked about answers it, whatever words it used ("I signed a
# lease on a flat in Denver").
ASKED: dict[str, re.Pattern[str]] = {
    "city": re.compile(r"\b(?:live[sd]?|living|based|city|town|move[sd]?|moving|reside)\b",
                       re.IGNORECASE),
    "job": re.compile(r"\b(?:work(?:s|ing)? (?:as|for|at)|do for (?:work|a living)|job|role|"
                      r"career|profession|employer|company does)\b", re.IGNORECASE),
    "partner": re.compile(r"\b(?:partner|dating|boyfriend|girlfriend|husband|wife|married|"
                          r"seeing|relationship|(?:who|whom) is \w+ with)\b", re.IGNORECASE),
    "diet": re.compile(r"\b(?:diet|eats?|eating|vegan|vegetarian)\b", re.IGNORECASE),
    "car": re.compile(r"\b(?:car|drives?|driving)\b", re.IGNORECASE),
    "commute": re.compile(r"\b(?:commute|get to work|get to the office)\b", re.IGNORECASE),
    "school": re.compile(r"\b(?:university|college|school|stud(?:y|ies|ying)|attend)\b",
                         re.IGNORECASE),
}


def asked(question: str) -> set[str]:
    """The attributes a question asks about."""
    return {attribute for attribute, pattern in ASKED.items() if pattern.search(question)}


# The words a change of each attribute is said with (the phrasings above): added to the BM25 query
# of a question about the attribute, so the statement of a new value matches it ("Where does
# Alice live now?" finds "I signed a lease on a flat in Denver").
SAID_WITH = {
    "city": "moved relocated lease flat apartment house living based",
    "job": "hired job promoted started working joined",
    "partner": "boyfriend girlfriend partner husband wife seeing dating",
    "diet": "vegetarian vegan pescatarian eat",
    "car": "drive car bought sold",
    "commute": "bike train bus walk drive",
    "school": "university college transferred studying",
}


def expanded(question: str) -> str:
    """The question with the words its asked attributes are said with."""
    extra = " ".join(SAID_WITH[a] for a in sorted(asked(question)))
    return f"{question} {extra}" if extra else question
