"""A deterministic generator of realistic posts, with engagement from a known function.

Topics have hashtag pools and vocabularies; authors have interests and follower counts;
tone varies with emoji, capitals and "!!!". Engagement is drawn from
`expected_log_engagement` plus noise, so models can learn it and tests can check them.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Topic:
    name: str
    hashtags: tuple[str, ...]
    subjects: tuple[str, ...]
    things: tuple[str, ...]
    effect: float  # how much this topic lifts engagement (log scale)


TOPICS: tuple[Topic, ...] = (
    Topic(
        "basketball",
        ("nba", "lakers", "celtics", "playoffs", "hoops"),
        ("the Lakers", "the Celtics", "LeBron", "the refs", "our bench", "the rookie"),
        ("game", "dunk", "fourth quarter", "trade", "draft pick", "buzzer beater"),
        0.35,
    ),
    Topic(
        "ai",
        ("ai", "machinelearning", "llm", "datascience", "deeplearning"),
        ("this new model", "the chatbot", "our ML team", "the benchmark", "the GPU cluster"),
        ("training run", "inference cost", "dataset", "paper", "demo", "prompt"),
        0.25,
    ),
    Topic(
        "movies",
        ("movies", "cinema", "oscars", "boxoffice", "filmtwitter"),
        ("the director", "the sequel", "that trailer", "the lead actor", "the soundtrack"),
        ("premiere", "plot twist", "ending", "screenplay", "cast"),
        0.2,
    ),
    Topic(
        "music",
        ("music", "newmusic", "concert", "spotify", "livemusic"),
        ("the band", "her new album", "the opener", "the drummer", "this playlist"),
        ("tour", "single", "setlist", "encore", "chorus"),
        0.15,
    ),
    Topic(
        "travel",
        ("travel", "wanderlust", "airport", "vacation", "roadtrip"),
        ("the airline", "my flight", "the hotel", "the gate agent", "our guide"),
        ("delay", "layover", "upgrade", "view", "itinerary", "lost luggage"),
        0.0,
    ),
    Topic(
        "food",
        ("foodie", "recipe", "brunch", "vegan", "coffee"),
        ("this cafe", "the chef", "my sourdough", "the new menu", "grandma's recipe"),
        ("pasta", "espresso", "tacos", "dessert", "ramen", "brunch spot"),
        0.1,
    ),
    Topic(
        "gaming",
        ("gaming", "esports", "nintendo", "playstation", "twitch"),
        ("the patch", "this boss fight", "our squad", "the streamer", "the new DLC"),
        ("ranked match", "speedrun", "frame rate", "loot", "server"),
        0.3,
    ),
    Topic(
        "climate",
        ("climate", "sustainability", "renewables", "climateaction", "solar"),
        ("the council", "the new policy", "our city", "the report", "this heatwave"),
        ("emissions", "solar farm", "wildfire", "bike lane", "carbon tax"),
        -0.1,
    ),
    Topic(
        "finance",
        ("stocks", "investing", "crypto", "bitcoin", "markets"),
        ("the Fed", "my portfolio", "the market", "this startup", "the earnings call"),
        ("rally", "rate hike", "IPO", "dividend", "crash", "bull run"),
        0.05,
    ),
    Topic(
        "fitness",
        ("fitness", "running", "gym", "marathon", "yoga"),
        ("my coach", "the new gym", "my training plan", "this trail", "the class"),
        ("personal best", "5k", "leg day", "recovery", "workout"),
        -0.05,
    ),
)

POSITIVE = (
    "amazing",
    "brilliant",
    "great",
    "awesome",
    "fantastic",
    "love",
    "incredible",
    "wonderful",
    "best",
    "excellent",
    "happy",
    "beautiful",
)
NEGATIVE = (
    "terrible",
    "awful",
    "worst",
    "hate",
    "disappointing",
    "broken",
    "ridiculous",
    "horrible",
    "sad",
    "annoying",
    "useless",
    "angry",
)
NEUTRAL = ("new", "scheduled", "announced", "updated", "reported", "listed", "planned")
EMOJI = {
    1: ("😍", "🔥", "🎉", "👏", "😂", "❤️", "🙌", "😊"),
    -1: ("😡", "😤", "👎", "💔", "😢", "🙄", "😠"),
    0: ("🤔", "👀", "📊", "📅", "ℹ️"),
}
TEMPLATES = {
    1: (
        "{subject} was {adj} today, what a {thing}",
        "Honestly {adj} {thing} from {subject}",
        "Can't stop thinking about that {thing}. {subject} is {adj}",
        "{adj} {thing}! {subject} delivered",
        "So {adj}: {subject} and the {thing}",
    ),
    -1: (
        "{subject} is {adj}, that {thing} was a joke",
        "Another {adj} {thing} from {subject}",
        "Why is {subject} so {adj} about the {thing}",
        "{adj} {thing}. {subject} let us down again",
        "Not happy: {subject} made the {thing} {adj}",
    ),
    0: (
        "{subject} {adj} the {thing} for next week",
        "Reading about the {thing} and {subject}",
        "Has anyone seen what {subject} said about the {thing}?",
        "{subject}: {thing} {adj}, details soon",
        "Thread on the {thing} and {subject}",
    ),
}
_SYLLABLES = ("ka", "lo", "mi", "ra", "ten", "jo", "vi", "san", "el", "po", "dar", "ny", "qu", "ze")


@dataclass(frozen=True)
class Author:
    handle: str
    followers: int
    interests: tuple[int, ...]  # topic indexes
    weights: tuple[float, ...]
    segment: str | None = None  # the planted audience segment, when there are any
    activity: float = 1.0  # relative posting rate (planted segments only)


@dataclass(frozen=True)
class AudienceSegment:
    """A planted audience: what its authors post about, when, how, and what it earns.

    Attributes:
        name: the segment's name (posts carry it as `_segment`).
        topics: names of the topics its authors post about.
        peak_hour: the hour of day (UTC) its authors post most.
        activity: relative posting rate of its authors.
        engagement: added to the mean log engagement of its posts.
        replies: share of its posts that are replies (start with a mention).
        links: share of its posts with a link.
    """

    name: str
    topics: tuple[str, ...]
    peak_hour: int
    activity: float
    engagement: float
    replies: float
    links: float


# Four audiences that differ in interests, rhythm and engagement (see `planted`).
PLANTED_SEGMENTS: tuple[AudienceSegment, ...] = (
    AudienceSegment("sports fans", ("basketball", "gaming"), 20, 2.0, 0.5, 0.3, 0.05),
    AudienceSegment("tech crowd", ("ai", "finance"), 11, 1.0, 0.2, 0.05, 0.5),
    AudienceSegment("culture lovers", ("movies", "music", "food"), 15, 1.0, 0.0, 0.1, 0.15),
    AudienceSegment("early risers", ("fitness", "travel", "climate"), 7, 0.6, -0.3, 0.15, 0.1),
)
# Harder: pairs of audiences with the same interests, told apart only by when and how they
# post and what they earn.
OVERLAPPING_SEGMENTS: tuple[AudienceSegment, ...] = (
    AudienceSegment("evening fans", ("basketball", "gaming"), 20, 1.5, 0.4, 0.3, 0.05),
    AudienceSegment("daytime fans", ("basketball", "gaming"), 10, 1.0, -0.2, 0.05, 0.3),
    AudienceSegment("tech at work", ("ai", "finance"), 13, 1.0, 0.2, 0.05, 0.5),
    AudienceSegment("tech night owls", ("ai", "finance"), 2, 0.8, -0.3, 0.3, 0.05),
)
_TOPIC_INDEX = {topic.name: i for i, topic in enumerate(TOPICS)}


def expected_log_engagement(
    followers: int,
    n_hashtags: int,
    has_url: bool,
    n_emoji: int,
    tone: int,
    tone_strength: float,
    topic_effect: float,
    created_at: datetime,
) -> float:
    """The known mean of log(1 + engagement) that synthetic posts are drawn around."""
    hour = created_at.hour
    evening = 1.0 if 17 <= hour <= 22 else 0.0
    night = 1.0 if 1 <= hour <= 6 else 0.0
    return (
        0.3
        + 0.45 * math.log1p(followers)
        + 0.25 * min(n_hashtags, 3)
        - 0.2 * max(n_hashtags - 3, 0)
        + 0.4 * has_url
        + 0.2 * min(n_emoji, 2)
        + 0.8 * tone_strength * (1.0 if tone != 0 else 0.3)
        + 0.15 * (tone < 0)
        + topic_effect
        + 0.45 * evening
        - 0.35 * night
        + 0.15 * (created_at.weekday() >= 5)
    )


class SyntheticPostGenerator:
    """Deterministic stream of raw posts (dicts as a client would send them).

    Args:
        seed: the same seed gives the same posts.
        n_authors: size of the author population.
        start: event time of the first post when simulating time; None uses the wall clock.
        rate: posts per second of simulated time (sets the gaps between timestamps).
        segments: planted audience segments (e.g. `PLANTED_SEGMENTS`); authors are spread
            over them in turn and post as their segment does, and posts carry `_segment`.
            None (the default) generates the stream exactly as before segments existed.
    """

    def __init__(
        self,
        seed: int = 7,
        n_authors: int = 400,
        start: datetime | None = None,
        rate: float = 20.0,
        segments: tuple[AudienceSegment, ...] | None = None,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.segments = {s.name: s for s in segments} if segments else None
        if segments:
            self.authors = [
                self._make_planted_author(i, segments[i % len(segments)]) for i in range(n_authors)
            ]
            self._hour_weights = [
                list(
                    itertools.accumulate(
                        a.activity * _hour_weight(self.segments[a.segment].peak_hour, h)
                        for a in self.authors
                        if a.segment is not None
                    )
                )
                for h in range(24)
            ]
        else:
            self.authors = [self._make_author(i) for i in range(n_authors)]
        self.clock = start
        self.rate = rate
        self.count = 0

    def _make_planted_author(self, index: int, segment: AudienceSegment) -> Author:
        rng = self.rng
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        followers = int(min(5e6, math.exp(rng.gauss(5.8, 1.9))))
        interests = tuple(_TOPIC_INDEX[t] for t in segment.topics)
        weights = tuple(rng.uniform(0.5, 1.0) for _ in interests)
        # A little of everything else: real audiences are never pure.
        others = tuple(i for i in range(len(TOPICS)) if i not in interests)
        stray = rng.choice(others)
        activity = segment.activity * rng.uniform(0.6, 1.4)
        return Author(
            f"{name}{index}",
            followers,
            (*interests, stray),
            (*weights, 0.08),
            segment.name,
            activity,
        )

    def _make_author(self, index: int) -> Author:
        rng = self.rng
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        followers = int(min(5e6, math.exp(rng.gauss(5.8, 1.9))))
        k = rng.choice((1, 1, 2, 2, 3))
        interests = tuple(rng.sample(range(len(TOPICS)), k))
        weights = tuple(rng.uniform(0.3, 1.0) for _ in interests)
        return Author(f"{name}{index}", followers, interests, weights)

    def _next_time(self) -> datetime:
        if self.clock is None:
            return datetime.now(UTC)
        # Fewer posts at night: stretch the gap by the inverse of the hour's activity.
        hour = self.clock.hour
        activity = 0.35 + 0.65 * (0.5 - 0.5 * math.cos(2 * math.pi * (hour - 4) / 24))
        gap = self.rng.expovariate(self.rate * activity)
        self.clock = self.clock + timedelta(seconds=gap)
        return self.clock

    def next_post(self) -> dict[str, Any]:
        """One raw post with its observed engagement and the generator's topic."""
        rng = self.rng
        planted: AudienceSegment | None = None
        if self.segments is None:
            author = rng.choice(self.authors)
            when = None
        else:
            # Time first: who posts depends on the hour (each segment's rhythm).
            when = self._next_time()
            author = rng.choices(self.authors, cum_weights=self._hour_weights[when.hour])[0]
            planted = self.segments[author.segment or ""]
        topic_index = rng.choices(author.interests, author.weights)[0]
        topic = TOPICS[topic_index]
        tone = rng.choices((1, -1, 0), (0.42, 0.3, 0.28))[0]
        adj = rng.choice(POSITIVE if tone > 0 else NEGATIVE if tone < 0 else NEUTRAL)
        text = rng.choice(TEMPLATES[tone]).format(
            subject=rng.choice(topic.subjects), thing=rng.choice(topic.things), adj=adj
        )
        text = text[0].upper() + text[1:]
        strength = 0.0
        if tone != 0:
            strength = 0.4
            if rng.random() < 0.3:
                text = text.replace(adj, adj.upper()) if adj in text else text.upper()
                strength += 0.3
            if rng.random() < 0.35:
                text += "!!!"
                strength += 0.3
            elif rng.random() < 0.5:
                text += "!"
        n_emoji = rng.choices((0, 1, 2, 3), (0.45, 0.3, 0.17, 0.08))[0]
        if n_emoji:
            text += " " + "".join(rng.choice(EMOJI[tone]) for _ in range(n_emoji))
        if rng.random() < (0.12 if planted is None else planted.replies):
            text = f"@{rng.choice(self.authors).handle} " + text
        has_url = rng.random() < (0.18 if planted is None else planted.links)
        if has_url:
            text += f" https://sp.example/{rng.getrandbits(32):08x}"
        n_tags = rng.choices((0, 1, 2, 3, 4, 6), (0.15, 0.3, 0.25, 0.15, 0.1, 0.05))[0]
        tags = rng.sample(topic.hashtags, min(n_tags, len(topic.hashtags)))
        if n_tags > len(tags):
            tags += ["trending", "news"][: n_tags - len(tags)]
        if tags:
            text += " " + " ".join("#" + t for t in tags)
        created_at = self._next_time() if when is None else when
        mean = expected_log_engagement(
            author.followers, len(tags), has_url, n_emoji, tone, strength, topic.effect, created_at
        )
        if planted is not None:
            mean += planted.engagement
        total = max(0, round(math.expm1(max(0.0, rng.gauss(mean, 0.35)))))
        likes = round(total * 0.7)
        shares = round(total * 0.2)
        self.count += 1
        raw = {
            "id": f"syn-{self.seed}-{self.count}",
            "text": text,
            "author": author.handle,
            "created_at": created_at.isoformat(),
            "author_followers": author.followers,
            "lang": "en",
            "source": "synthetic",
            "engagement": {"likes": likes, "shares": shares, "replies": total - likes - shares},
            "_topic": topic.name,
            "_expected_log_engagement": mean,
        }
        if planted is not None:
            raw["_segment"] = planted.name
        return raw

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            yield self.next_post()

    def take(self, n: int) -> list[dict[str, Any]]:
        return [self.next_post() for _ in range(n)]


def _hour_weight(peak: int, hour: int) -> float:
    """How much more an author posts at `hour` than on average, peaking at `peak`."""
    return math.exp(1.5 * math.cos(2 * math.pi * (hour - peak) / 24))


def strip_private(raw: dict[str, Any]) -> dict[str, Any]:
    """A generated post as a client would send it (without the generator's answers)."""
    return {k: v for k, v in raw.items() if not k.startswith("_")}


TRAINING_START = datetime(2024, 3, 4, tzinfo=UTC)
