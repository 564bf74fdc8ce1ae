"""Folding text for the word filter: the evasions a blocked word hides behind, undone.

A message and every blocklist term go through the same ``fold``: case, Unicode compatibility forms,
zero-width and combining characters, look-alike letters, digits and symbols, and letters spelled
apart (``f u c k``) are all folded away, and each run of one letter becomes one letter with a count.
Every folded letter remembers the stretch of the original text it came from, so a match can be
masked in the original.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Look-alikes of Latin letters from other scripts (what NFKD leaves alone).
_HOMOGLYPHS = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
        "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ɡ": "g", "α": "a", "β": "b", "ε": "e",
        "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
    }
)  # fmt: skip
# Digits and symbols that stand for letters, read so in every word that is not a number.
_LOOKALIKES = {
    "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
    "@": "a", "$": "s", "!": "i", "|": "i", "+": "t", "€": "e",
}  # fmt: skip
# Look-alikes that also end sentences: at the end of a word they are punctuation ("hello!").
_TRAILING_PUNCTUATION = frozenset("!|")
_DROPPED_CATEGORIES = frozenset({"Mn", "Me", "Cf"})  # combining marks; zero-width and other format characters
_SPACED_SEPARATOR_MAX = 3  # "f . u . c . k": letters spelled apart by at most this many separator characters


@dataclass(frozen=True)
class Folded:
    """Folded text: words of folded letters, one space between words and one at each end.

    ``runs[i]`` is how many times ``text[i]`` stood in a row before the run was folded to one letter;
    ``starts[i]``/``ends[i]`` bound the original code points it came from (``-1`` for the spaces).
    """

    text: str
    runs: tuple[int, ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]


@dataclass
class _Word:
    chars: list[tuple[str, int]]  # folded character, index of the original code point
    gap_before: str  # the separators between this word and the previous one
    spelled_apart: bool = False  # made only of one-letter words so far


def fold(text: str) -> Folded:
    """Fold ``text``; linear in its length."""
    words = _join_spaced_letters(_words(_fold_chars(text)))
    folded, runs, starts, ends = [" "], [1], [-1], [-1]
    for word in words:
        for char, run, start, end in _collapse(_read_lookalikes(word.chars)):
            folded.append(char)
            runs.append(run)
            starts.append(start)
            ends.append(end)
        folded.append(" ")
        runs.append(1)
        starts.append(-1)
        ends.append(-1)
    return Folded("".join(folded), tuple(runs), tuple(starts), tuple(ends))


def _fold_chars(text: str) -> list[tuple[str, int]]:
    """Each code point as the folded characters it stands for, with its index; marks and format characters dropped."""
    chars: list[tuple[str, int]] = []
    for index, char in enumerate(text):
        if char.isascii():
            chars.append((char.lower(), index))
            continue
        for part in unicodedata.normalize("NFKD", char):
            if unicodedata.category(part) in _DROPPED_CATEGORIES:
                continue
            for folded in part.casefold().translate(_HOMOGLYPHS):
                chars.append((folded, index))
    return chars


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char in _LOOKALIKES


def _words(chars: list[tuple[str, int]]) -> list[_Word]:
    """Maximal runs of letters, digits and look-alike symbols, each with the separators before it."""
    words: list[_Word] = []
    gap: list[str] = []
    current: list[tuple[str, int]] = []
    for char, index in chars:
        if _is_word_char(char):
            current.append((char, index))
            continue
        if current:
            words.append(_Word(current, "".join(gap)))
            current, gap = [], []
        gap.append(char)
    if current:
        words.append(_Word(current, "".join(gap)))
    for word in words:
        while len(word.chars) > 1 and word.chars[-1][0] in _TRAILING_PUNCTUATION:
            word.chars.pop()
    return words


def _join_spaced_letters(words: list[_Word]) -> list[_Word]:
    """``f u c k`` / ``f.u.c.k``: neighbouring one-letter words with a short gap on one line are one word."""
    joined: list[_Word] = []
    for word in words:
        previous = joined[-1] if joined else None
        if (
            previous is not None
            and previous.spelled_apart
            and len(word.chars) == 1
            and len(word.gap_before) <= _SPACED_SEPARATOR_MAX
            and "\n" not in word.gap_before
        ):
            previous.chars.extend(word.chars)
            continue
        joined.append(_Word(list(word.chars), word.gap_before, spelled_apart=len(word.chars) == 1))
    return joined


def _read_lookalikes(chars: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Digits and symbols read as the letters they look like (``sh1t``, ``@$$``), except in numbers (``455``)."""
    if all(char.isdigit() for char, _ in chars):
        return chars
    return [(_LOOKALIKES.get(char, char), index) for char, index in chars]


def _collapse(chars: list[tuple[str, int]]) -> list[tuple[str, int, int, int]]:
    """Runs of one character as ``(character, run length, first original index, last original index + 1)``."""
    collapsed: list[tuple[str, int, int, int]] = []
    for char, index in chars:
        if collapsed and collapsed[-1][0] == char:
            last_char, run, start, _ = collapsed[-1]
            collapsed[-1] = (last_char, run + 1, start, index + 1)
        else:
            collapsed.append((char, 1, index, index + 1))
    return collapsed
