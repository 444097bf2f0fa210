"""Installing a declaration for a target: pinning it with uv (or taking a lock's pins), the package cache (each
distribution compiled and compressed once per target), ``.pyc`` that Lambda uses as they are, and the index's
answer to which release a runtime accepts.
"""
