"""The search syntax shared by every engine.

Words are ANDed, `"..."` is a phrase, `OR` between two terms makes them alternatives:
`遵义 "成渝地区双城经济圈" 签约 OR 协议` means 遵义 AND phrase AND (签约 OR 协议).
A Chinese word is matched as a contiguous string (it is indexed as bigrams), so a
word and a one-word phrase behave the same for CJK text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Term:
    text: str
    phrase: bool = False


@dataclass
class Query:
    # AND of OR-groups: [[a], [b, c]] means a AND (b OR c). Empty means "everything".
    clauses: list[list[Term]] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.clauses

    def terms(self) -> list[Term]:
        return [t for group in self.clauses for t in group]


_TOKEN = re.compile(r'"([^"]*)"?|(\S+)')


def parse(text: str) -> Query:
    """Parse the user's query string; never raises (stray quotes close at the end)."""
    clauses: list[list[Term]] = []
    join_next = False
    for match in _TOKEN.finditer(text or ""):
        phrase, word = match.group(1), match.group(2)
        if word == "OR":
            join_next = bool(clauses)
            continue
        value = (phrase if phrase is not None else word).strip()
        if not value:
            continue
        term = Term(" ".join(value.split()), phrase=phrase is not None)
        if join_next:
            clauses[-1].append(term)
        else:
            clauses.append([term])
        join_next = False
    return Query(clauses)
