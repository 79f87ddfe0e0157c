"""Rendering the dashboard's word cloud with the `wordcloud` package, in a child process.

Drawing takes about a fifth of a second of CPU. In the web server's process it would
compete for the interpreter lock with the event loop that sends every update, so the
server keeps one drawing process beside it (`WordcloudRenderer`), started on first use and
run at a lower CPU priority.
"""

from __future__ import annotations

import io
import json
import logging
import os
import struct
import subprocess
import sys
import threading

log = logging.getLogger(__name__)
LENGTH = struct.Struct(">I")
# The words are laid out on a grid this many times coarser than the image and drawn at full
# size. The layout's cost grows with the grid's area: at 2 it costs a quarter, and a render
# half (0.16 s instead of 0.33 s for 150 words), for a fit on 2-pixel steps.
LAYOUT_SCALE = 2
# Longer words are left out. No reader looks for them, and the drawing fails outright when
# the most frequent word does not fit the grid even at the smallest size (about 150
# letters here): a post repeating one long word must not take the word cloud down.
MAX_WORD_CHARS = 40


def stop_words() -> frozenset[str]:
    """English stop words the word cloud leaves out."""
    from wordcloud import STOPWORDS

    return frozenset(w.lower() for w in STOPWORDS) | {"amp", "http", "https", "rt"}


def render_wordcloud(frequencies: dict[str, int], width: int = 800, height: int = 360) -> bytes:
    """A PNG of the words sized by frequency (deterministic for the same input), `width`
    × `height` pixels (both even). Words over `MAX_WORD_CHARS` characters are left out."""
    from wordcloud import WordCloud

    words = {word: n for word, n in frequencies.items() if len(word) <= MAX_WORD_CHARS}
    cloud = WordCloud(
        width=width // LAYOUT_SCALE,
        height=height // LAYOUT_SCALE,
        scale=LAYOUT_SCALE,
        background_color="white",
        colormap="viridis",
        max_words=120,
        prefer_horizontal=0.9,
        random_state=3,
    ).generate_from_frequencies(words or {"waiting": 1})
    buffer = io.BytesIO()
    cloud.to_image().save(buffer, format="PNG")  # `optimize` would triple the time for 2 %
    return buffer.getvalue()


class WordcloudRenderer:
    """Renders in a child process (`python -m app.wordcloud_image`): one JSON line of
    frequencies in, one length-prefixed PNG out. A child that died is started again."""

    def __init__(self) -> None:
        self._child: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the drawing process now: its start (a second or two of imports) is then
        paid before the stream gets busy, not during its first word cloud."""
        with self._lock:
            self._started()

    def _started(self) -> subprocess.Popen:
        if self._child is None or self._child.poll() is not None:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "app.wordcloud_image"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        return self._child

    def render(self, frequencies: dict[str, int]) -> bytes:
        with self._lock:
            child = self._started()
            assert child.stdin is not None and child.stdout is not None
            try:
                child.stdin.write(json.dumps(frequencies).encode() + b"\n")
                child.stdin.flush()
                header = child.stdout.read(LENGTH.size)
                if len(header) < LENGTH.size:
                    raise RuntimeError("the word-cloud process stopped")
                return child.stdout.read(LENGTH.unpack(header)[0])
            except (OSError, RuntimeError):
                self.close()
                raise

    def close(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child.wait()
            self._child = None


def _serve() -> None:
    """The child's loop: frequencies on stdin, PNGs on stdout, until stdin closes."""
    # Background work: on a busy machine the live updates go first, the word cloud waits.
    os.nice(10)
    # One drawing before the first request loads the font and the colour map (matplotlib's
    # pyplot): otherwise the first word cloud costs about 0.4 s of CPU more than the others.
    render_wordcloud({"warming": 1})

    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        png = render_wordcloud(json.loads(line))
        out.write(LENGTH.pack(len(png)) + png)
        out.flush()


if __name__ == "__main__":
    _serve()
