"""Rendering the dashboard's word cloud with the `wordcloud` package."""

from __future__ import annotations

import io


def stop_words() -> frozenset[str]:
    """English stop words the word cloud leaves out."""
    from wordcloud import STOPWORDS

    return frozenset(w.lower() for w in STOPWORDS) | {"amp", "http", "https", "rt"}


def render_wordcloud(frequencies: dict[str, int], width: int = 800, height: int = 360) -> bytes:
    """A PNG of the words sized by frequency (deterministic for the same input)."""
    from wordcloud import WordCloud

    cloud = WordCloud(
        width=width,
        height=height,
        background_color="white",
        colormap="viridis",
        max_words=120,
        prefer_horizontal=0.9,
        random_state=3,
    ).generate_from_frequencies(frequencies or {"waiting": 1})
    buffer = io.BytesIO()
    cloud.to_image().save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
