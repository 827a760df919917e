"""Calendar dates as people type them, for masking dates of birth (pure).

`DATE_SPAN` finds a date written as `1985-03-03`, `03/03/1985`, `3.3.85`, `19850303`,
`3 March 1985`, `3rd of March, 1985`, `03-Mar-1985`, `March 3rd, 1985` or `Mar 3 1985`
(month names in English, any case). `readings(match)` is every calendar date the span can
mean: a numeric `03/04/1985` is both the 3rd of April and the 4th of March, a two-digit year
both 19xx and 20xx; eight digits are a date only with a year 1900–2099. Every quantifier is bounded, so a search stays linear in the text.
"""

from __future__ import annotations

import re
from datetime import date

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
          r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?(?![a-z])")
_ORDINAL = r"(?:st|nd|rd|th)?"
_GAP = r"[^\S\n]{1,3}"
_NAMED_SEP = rf"(?:,?{_GAP}|-|{_GAP}-{_GAP})"

DATE_SPAN = re.compile(
    r"(?<![\w/.-])(?:"
    r"(?P<iy>\d{4})[-/.](?P<im>\d{1,2})[-/.](?P<id>\d{1,2})"
    r"|(?P<na>\d{1,2})(?P<sep>[-/.])(?P<nb>\d{1,2})(?P=sep)(?P<ny>\d{4}|\d{2})"
    r"|(?P<compact>\d{8})"
    rf"|(?P<dd>\d{{1,2}}){_ORDINAL}(?:{_GAP}of)?{_NAMED_SEP}(?P<dm>{_MONTH}){_NAMED_SEP}"
    r"(?P<dy>\d{4}|'?\d{2})"
    rf"|(?P<mm>{_MONTH}){_NAMED_SEP}(?P<md>\d{{1,2}}){_ORDINAL}{_NAMED_SEP}(?P<my>\d{{4}})"
    r")(?![\w/-]|\.\d)",
    re.IGNORECASE,
)


def readings(match: re.Match[str]) -> set[date]:
    """Every calendar date a `DATE_SPAN` match can stand for (empty when none is valid)."""
    group = match.group
    if group("iy"):
        candidates = [(group("iy"), group("im"), group("id"))]
    elif group("na"):
        candidates = [(y, group("nb"), group("na")) for y in _years(group("ny"))]
        candidates += [(y, group("na"), group("nb")) for y in _years(group("ny"))]
    elif group("compact"):
        digits = group("compact")
        candidates = [(y, m, d) for y, m, d in ((digits[:4], digits[4:6], digits[6:]),
                                                (digits[4:], digits[2:4], digits[:2]))
                      if y[:2] in ("19", "20")]
    elif group("dd"):
        candidates = [(y, _month(group("dm")), group("dd")) for y in _years(group("dy"))]
    else:
        candidates = [(group("my"), _month(group("mm")), group("md"))]
    return {day for y, m, d in candidates if (day := _date(y, m, d)) is not None}


def _years(text: str) -> list[str]:
    digits = text.lstrip("'")
    return [digits] if len(digits) == 4 else [f"19{digits}", f"20{digits}"]


def _month(name: str) -> str:
    return str(_MONTHS.index(name[:3].lower()) + 1)


def _date(year: str, month: str, day: str) -> date | None:
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None
