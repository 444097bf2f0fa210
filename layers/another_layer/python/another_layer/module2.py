"""Word statistics for short texts."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")


def word_stats(text: str, top: int = 3) -> dict[str, Any]:
    """Count words (case-insensitive) and return the ``top`` most frequent, ties broken alphabetically."""
    words = [w.lower() for w in WORD.findall(text)]
    counts = Counter(words)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    return {
        "words": len(words),
        "unique": len(counts),
        "top": [{"word": word, "count": count} for word, count in ranked],
    }
