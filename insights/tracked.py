"""Tracked topics: named saved searches (a brand, its competitors) matched on every post.

A tracked topic is a set of keywords (words or phrases, matched as whole words, case
folded) and hashtags. A post belongs to every topic one of whose keywords is in its text or
one of whose hashtags it carries. All topics' keywords are found in one regular expression
pass over the text, so matching costs about the same for one topic as for fifty.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streaming.records import ScoredPost

MAX_TOPICS = 50
MAX_TERMS = 20  # keywords and hashtags of one topic, together
MAX_NAME_CHARS = 60
MAX_TERM_CHARS = 60
_NAME_RE = re.compile(r"^[\w][\w .&'+-]*$")
_HASHTAG_RE = re.compile(r"^\w+$")
_SPACES_RE = re.compile(r"\s+")


class TrackedTopicError(ValueError):
    """A tracked topic that cannot be saved; the message says what to change."""


@dataclass(frozen=True)
class TrackedTopic:
    """A named set of keywords and hashtags (lower case, hashtags without `#`)."""

    name: str
    keywords: tuple[str, ...] = ()
    hashtags: tuple[str, ...] = ()

    @classmethod
    def parse(cls, name: str, keywords: Iterable[str], hashtags: Iterable[str]) -> TrackedTopic:
        """A topic from what a person typed, checked; raises TrackedTopicError."""
        name = _SPACES_RE.sub(" ", str(name)).strip()
        if not name:
            raise TrackedTopicError("a tracked topic needs a name")
        if len(name) > MAX_NAME_CHARS or not _NAME_RE.match(name):
            raise TrackedTopicError(
                f"the name must be 1–{MAX_NAME_CHARS} letters, digits, spaces or . & ' + -"
            )
        words = _unique(_SPACES_RE.sub(" ", str(k)).strip().lower() for k in keywords)
        tags = _unique(str(h).strip().lstrip("#").lower() for h in hashtags)
        if not words and not tags:
            raise TrackedTopicError(f"{name}: give at least one keyword or hashtag")
        if len(words) + len(tags) > MAX_TERMS:
            raise TrackedTopicError(f"{name}: at most {MAX_TERMS} keywords and hashtags")
        for word in words:
            if len(word) > MAX_TERM_CHARS or not re.search(r"\w", word):
                raise TrackedTopicError(
                    f"{name}: keyword {word[:MAX_TERM_CHARS]!r} must be 1–{MAX_TERM_CHARS} "
                    "characters with a letter or digit"
                )
        for tag in tags:
            if len(tag) > MAX_TERM_CHARS or not _HASHTAG_RE.match(tag):
                raise TrackedTopicError(
                    f"{name}: hashtag {tag[:MAX_TERM_CHARS]!r} must be letters, digits or _"
                )
        return cls(name, tuple(words), tuple(tags))

    @classmethod
    def from_text(cls, name: str, keywords: str, hashtags: str) -> TrackedTopic:
        """A topic from a form: comma-separated keywords, hashtags by commas or spaces."""
        return cls.parse(name, keywords.split(","), re.split(r"[,\s]+", hashtags))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "keywords": list(self.keywords), "hashtags": list(self.hashtags)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrackedTopic:
        if not isinstance(data, Mapping):
            raise TrackedTopicError("a tracked topic is an object with name, keywords, hashtags")
        keywords, hashtags = data.get("keywords", []), data.get("hashtags", [])
        if not isinstance(keywords, list) or not isinstance(hashtags, list):
            raise TrackedTopicError("keywords and hashtags must be lists of strings")
        return cls.parse(data.get("name", ""), keywords, hashtags)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(item for item in items if item))


class TopicMatcher:
    """Which tracked topics each post belongs to."""

    def __init__(self, topics: Sequence[TrackedTopic]) -> None:
        if len(topics) > MAX_TOPICS:
            raise TrackedTopicError(f"at most {MAX_TOPICS} tracked topics")
        self.topics = tuple(sorted(topics, key=lambda t: t.name.lower()))
        self.names = tuple(t.name for t in self.topics)
        self._by_keyword: dict[str, list[str]] = {}
        self._by_hashtag: dict[str, list[str]] = {}
        for topic in self.topics:
            for word in topic.keywords:
                self._by_keyword.setdefault(word, []).append(topic.name)
            for tag in topic.hashtags:
                self._by_hashtag.setdefault(tag, []).append(topic.name)
        # Longest first, so "new york" wins over "new" where both are keywords; spaces in a
        # phrase match any run of whitespace.
        alternatives = sorted(self._by_keyword, key=len, reverse=True)
        self._pattern = (
            re.compile(
                r"(?<!\w)(?:"
                + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in alternatives)
                + r")(?!\w)",
                re.IGNORECASE,
            )
            if alternatives
            else None
        )

    def __bool__(self) -> bool:
        return bool(self.topics)

    def match(self, scored: ScoredPost) -> list[str]:
        """The names of the topics `scored` belongs to, each once, in name order."""
        found: set[str] = set()
        if self._pattern is not None:
            for hit in self._pattern.findall(scored.post.text):
                found.update(self._by_keyword.get(_SPACES_RE.sub(" ", hit.lower()), ()))
        for tag in scored.post.hashtags:
            found.update(self._by_hashtag.get(tag.lower(), ()))
        return [name for name in self.names if name in found] if found else []


NO_TOPICS = TopicMatcher(())
