"""A source folder as the user edits it: its code, and the file that declares its dependencies, read in every
format Python projects use (``requirements.txt``, ``uv.lock``, ``poetry.lock``, ``Pipfile.lock``,
``pyproject.toml``). This step reads and fingerprints; it never installs anything.
"""

from layerkit.sources.folder import DECLARATIONS, DEPENDENCY_FILES, SourceFolder, copy_package, package_files

__all__ = ["DECLARATIONS", "DEPENDENCY_FILES", "SourceFolder", "copy_package", "package_files"]
