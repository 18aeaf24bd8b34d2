"""What counts as a fact an agent may act on: identifiers, numbers and codes.

Used both to protect content from compression (a record naming one of the request's facts
is kept) and to measure it (``bench compress``: the facts of the agent's next turn that
earlier tool outputs held must survive).
"""

from __future__ import annotations

import re

from policies.text import words

# A word-ish token: letters, digits and the joiners identifiers use (ids, dates, e-mails).
TOKEN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.@:-]*[A-Za-z0-9])?")

STOPWORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "for",
        "on",
        "at",
        "by",
        "with",
        "as",
        "that",
        "this",
        "these",
        "those",
        "it",
        "its",
        "from",
        "not",
        "no",
        "but",
        "if",
        "then",
        "so",
        "do",
        "does",
        "did",
        "done",
        "have",
        "has",
        "had",
        "he",
        "she",
        "they",
        "we",
        "you",
        "i",
        "his",
        "her",
        "their",
        "our",
        "your",
        "them",
        "him",
        "me",
        "my",
        "what",
        "which",
        "who",
        "whom",
        "when",
        "where",
        "why",
        "how",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "than",
        "there",
        "here",
        "also",
        "into",
        "about",
        "over",
        "under",
        "up",
        "down",
        "out",
        "more",
        "most",
        "such",
        "only",
        "own",
        "same",
        "other",
        "some",
        "any",
        "each",
        "few",
        "all",
        "both",
        "very",
        "just",
        "please",
        "let",
        "know",
        "like",
        "want",
        "need",
        "get",
        "got",
        "make",
        "made",
        "one",
    }
)


def is_fact(token: str) -> bool:
    """An identifier, number or code: has a digit (ids, amounts, dates, flight numbers), an
    underscore (snake_case ids), or is an upper-case code (airports, booking codes)."""
    if any(ch.isdigit() for ch in token):
        return len(token) >= 2
    if "_" in token:
        return True
    return len(token) >= 3 and token.isupper()


def facts_in(text: str) -> set[str]:
    return {t for t in TOKEN.findall(text) if is_fact(t)}


def content_words(text: str) -> list[str]:
    """Lower-cased words minus stopwords: what lexical relevance is scored on."""
    return [w for w in words(text) if w not in STOPWORDS]
