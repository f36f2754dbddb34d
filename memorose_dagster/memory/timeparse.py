"""Relative time expressions resolved against the time an event was said.

"yesterday" said on 2023-05-08 is 2023-05-07; "last week" is the week before; "next month" the
month after. Deterministic and local: a small rule set, first match wins, nothing guessed beyond
what the words say.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
           "seven": 7, "eight": 8, "nine": 9, "ten": 10, "few": 3, "couple of": 2, "several": 3}
_NUM = r"(\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|few|couple of|several)"
_AGO = re.compile(rf"\b{_NUM} (day|week|fortnight|month|year)s? ago( today)?\b")
_REL = re.compile(r"\b(last|this|next|past) (week|weekend|month|year|summer|winter|spring|fall)\b")
_DAY = re.compile(r"\b(the day before yesterday|the day after tomorrow|yesterday|today|tonight|"
                  r"tomorrow|this morning|this evening)\b")
# "they come on Thursday", "the plumber comes on Tuesday": a weekday ahead, not behind
_FUTURE = re.compile(r"\b(will|'ll|going to|gonna|come|comes|coming|arrive|arrives|arriving|"
                     r"visit|visits|starts|is|are|plan|planning|due)\b[^.!?]*$")
_WEEKDAY = re.compile(r"\b(last|this|next|on) (" + "|".join(WEEKDAYS) + r")\b")


@dataclass(frozen=True, slots=True)
class Resolved:
    expression: str
    start: date
    end: date  # inclusive

    def label(self) -> str:
        if self.start == self.end:
            return self.start.strftime("%-d %B %Y")
        if self.start.day == 1 and self.end == _month_end(self.start):
            return self.start.strftime("%B %Y")
        if self.start.month == 1 and self.start.day == 1 and self.end.month == 12 \
                and self.end.day == 31:
            return str(self.start.year)
        return f"{self.start.strftime('%-d %B %Y')} - {self.end.strftime('%-d %B %Y')}"


def _month_end(day: date) -> date:
    first_next = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first_next - timedelta(days=1)


def _shift_month(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _week_of(day: date) -> tuple[date, date]:
    start = day - timedelta(days=day.weekday())
    return start, start + timedelta(days=6)


def resolve(text: str, said_at: float) -> Resolved | None:
    """The first relative time expression in ``text``, as an absolute date range."""
    now = datetime.fromtimestamp(said_at, UTC).date()
    lowered = text.lower()
    for finder in (_ago, _day, _weekday, _relative):
        found = finder(lowered, now)
        if found is not None:
            return found
    return None


def _day(text: str, now: date) -> Resolved | None:
    match = _DAY.search(text)
    if not match:
        return None
    offset = {"yesterday": -1, "tomorrow": 1, "the day before yesterday": -2,
              "the day after tomorrow": 2}.get(match.group(1), 0)
    day = now + timedelta(days=offset)
    return Resolved(match.group(0), day, day)


def _ago(text: str, now: date) -> Resolved | None:
    match = _AGO.search(text)
    if not match:
        return None
    raw = match.group(1)
    count = int(raw) if raw.isdigit() else NUMBERS[raw]
    unit = match.group(2)
    if unit == "fortnight":
        unit, count = "day", 14 * count
    if match.group(3) and unit in ("day", "week"):  # "six weeks ago today": that very day
        day = now - timedelta(days=count * (7 if unit == "week" else 1))
        return Resolved(match.group(0), day, day)
    if unit == "day":
        day = now - timedelta(days=count)
        return Resolved(match.group(0), day, day)
    if unit == "week":
        return Resolved(match.group(0), *_week_of(now - timedelta(weeks=count)))
    if unit == "month":
        start = _shift_month(now, -count)
        return Resolved(match.group(0), start, _month_end(start))
    return Resolved(match.group(0), date(now.year - count, 1, 1), date(now.year - count, 12, 31))


def _weekday(text: str, now: date) -> Resolved | None:
    match = _WEEKDAY.search(text)
    if not match:
        return None
    which, target = match.group(1), WEEKDAYS.index(match.group(2))
    delta = target - now.weekday()
    ahead = which == "on" and _FUTURE.search(text[:match.start()]) is not None
    if ahead and delta <= 0:
        delta += 7
    elif which == "last" or (which == "on" and not ahead and delta >= 0):
        delta -= 7 if delta >= 0 else 0
    elif which == "next" and delta <= 0:
        delta += 7
    day = now + timedelta(days=delta)
    return Resolved(match.group(0), day, day)


def _relative(text: str, now: date) -> Resolved | None:
    match = _REL.search(text)
    if not match:
        return None
    which, unit = match.groups()
    step = {"last": -1, "past": -1, "this": 0, "next": 1}[which]
    if unit in ("week", "weekend"):
        start, end = _week_of(now + timedelta(weeks=step))
        if unit == "weekend":
            start = end - timedelta(days=1)
        return Resolved(match.group(0), start, end)
    if unit == "month":
        start = _shift_month(now, step)
        return Resolved(match.group(0), start, _month_end(start))
    year = now.year + step
    if unit == "year":
        return Resolved(match.group(0), date(year, 1, 1), date(year, 12, 31))
    months = {"spring": (3, 5), "summer": (6, 8), "fall": (9, 11), "winter": (12, 2)}[unit]
    start = date(year, months[0], 1)
    end_year = year + 1 if unit == "winter" else year
    return Resolved(match.group(0), start, _month_end(date(end_year, months[1], 1)))


MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december"]
_MONTH = "(" + "|".join(MONTHS) + ")"
_DAY_MONTH_YEAR = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)? (?:of )?{_MONTH},? ((?:19|20)\d\d)\b")
_MONTH_DAY_YEAR = re.compile(rf"\b{_MONTH} (\d{{1,2}})(?:st|nd|rd|th)?,? ((?:19|20)\d\d)\b")
_MONTH_YEAR = re.compile(rf"\b{_MONTH},? ((?:19|20)\d\d)\b")
_YEAR = re.compile(r"\b(?:in|during|of|since) ((?:19|20)\d\d)\b")


def query_range(query: str, now: float) -> Resolved | None:
    """The time a question is about: an absolute date ("7 May 2023", "May 2023", "in 2023")
    or a relative one resolved against ``now`` ("last week"). None when it names no time."""
    lowered = query.lower()
    for pattern, day_group, month_group, year_group in (
            (_DAY_MONTH_YEAR, 1, 2, 3), (_MONTH_DAY_YEAR, 2, 1, 3)):
        match = pattern.search(lowered)
        if match:
            try:
                day = date(int(match.group(year_group)),
                           MONTHS.index(match.group(month_group)) + 1,
                           int(match.group(day_group)))
            except ValueError:  # "31 February 2023" names no day
                continue
            return Resolved(match.group(0), day, day)
    match = _MONTH_YEAR.search(lowered)
    if match:
        start = date(int(match.group(2)), MONTHS.index(match.group(1)) + 1, 1)
        return Resolved(match.group(0), start, _month_end(start))
    match = _YEAR.search(lowered)
    if match:
        year = int(match.group(1))
        return Resolved(match.group(0), date(year, 1, 1), date(year, 12, 31))
    return resolve(query, now)
