"""The kit's version: part of every cache key (a new kit never reuses an older one's entries), never of an asset
hash (an unchanged folder is the same asset whichever kit built it)."""

__version__ = "0.5.0"
