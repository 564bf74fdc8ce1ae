"""Blocked terms in one Aho-Corasick automaton (pyahocorasick), matched against folded text.

One pass over a message finds every term whatever the list's size (the automaton is built once per
list). A term is a whole word unless written with ``*`` at an end: ``fuck*`` also blocks words that
start with it (``fucking``), ``*fuck*`` blocks it anywhere in a word. Whole words by default is what
keeps ``Scunthorpe`` and ``classic`` out of the filter: the operator opts a term into substrings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import ahocorasick

from chatserver.wordfilter.fold import Folded, fold

WILDCARD = "*"
_SHORT_RUN = 2  # a letter twice ("good") is spelling; three times or more ("fuuuck") is stretching


@dataclass(frozen=True)
class Term:
    """One blocklist line, folded: its automaton key and, per key character, the run it needs."""

    line: str
    key: str
    runs: tuple[int, ...]
    open_start: bool
    open_end: bool


def parse_terms(line: str) -> list[Term]:
    """A blocklist line as terms: none for blank lines, ``#`` comments and lines with no letters; a phrase
    (``kill yourself``) also as its words run together, which is how spelled-apart letters fold."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return []
    open_start, open_end = stripped.startswith(WILDCARD), stripped.endswith(WILDCARD)
    folded = fold(stripped.strip(WILDCARD))
    if not folded.text.strip():
        return []
    key, runs = folded.text, folded.runs
    if open_start:
        key, runs = key[1:], runs[1:]
    if open_end:
        key, runs = key[:-1], runs[:-1]
    terms = [Term(stripped, key, runs, open_start, open_end)]
    inner_spaces = [i for i, char in enumerate(key) if char == " " and 0 < i < len(key) - 1]
    if inner_spaces:
        joined_key = "".join(char for i, char in enumerate(key) if i not in inner_spaces)
        joined_runs = tuple(run for i, run in enumerate(runs) if i not in inner_spaces)
        terms.append(Term(stripped, joined_key, joined_runs, open_start, open_end))
    return terms


class WordFilter:
    """Finds blocked terms in messages; immutable once built, so a reload swaps in a new one."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._automaton = ahocorasick.Automaton()
        count = 0
        for line in lines:
            terms = parse_terms(line)
            for term in terms:
                found = self._automaton.get(term.key, None)
                self._automaton.add_word(term.key, (*found, term) if found else (term,))
            count += bool(terms)
        self.size = count
        if count:
            self._automaton.make_automaton()

    def find(self, text: str) -> list[tuple[int, int]]:
        """Stretches ``[start, end)`` of ``text`` (in code points) that spell a blocked term, merged and sorted."""
        if not self.size:
            return []
        folded = fold(text)
        stretches: list[tuple[int, int]] = []
        for end, terms in self._automaton.iter(folded.text):
            for term in terms:
                start = end - len(term.key) + 1
                if _runs_match(term, folded, start):
                    stretches.append(_original_stretch(folded, start, end))
        return _merged(stretches)

    def mask(self, text: str) -> str:
        """``text`` with every blocked stretch replaced by ``*``, one per code point."""
        return masked(text, self.find(text))


def masked(text: str, stretches: list[tuple[int, int]]) -> str:
    """``text`` with each ``[start, end)`` stretch replaced by as many ``*``."""
    characters = list(text)
    for start, end in stretches:
        characters[start:end] = WILDCARD * (end - start)
    return "".join(characters)


def _runs_match(term: Term, folded: Folded, start: int) -> bool:
    """Each letter run of the text fits the term's: the same length, or stretched; open ends may run longer."""
    last = len(term.key) - 1
    for offset, needed in enumerate(term.runs):
        if term.key[offset] == " ":
            continue
        found = folded.runs[start + offset]
        at_open_end = (offset == 0 and term.open_start) or (offset == last and term.open_end)
        if found == needed or (found > needed and (at_open_end or found > _SHORT_RUN)):
            continue
        return False
    return True


def _original_stretch(folded: Folded, start: int, end: int) -> tuple[int, int]:
    letters = [i for i in range(start, end + 1) if folded.starts[i] >= 0]
    return folded.starts[letters[0]], folded.ends[letters[-1]]


def _merged(stretches: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(stretches):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
