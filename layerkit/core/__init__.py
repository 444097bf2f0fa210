"""Shared facts and tools every later step uses: the kit's version and errors, the targets (a Lambda runtime and
architecture, and the variants of a layer built for several), the cache on disk and its keys, the deterministic
zip, uv and the index settings it reads, interpreters, and child processes that die with the build.

Imports the standard library, the installer's traces (:mod:`layerkit.installed`) and third-party tools only.
"""
