"""``requirements.txt`` as pip reads it.

The encoding pip accepts (UTF-8 with or without a BOM, UTF-16 with a BOM, which Windows PowerShell writes),
continuation lines, comments, ``-r``/``-c`` includes (relative to the including file), index options
(``--index-url``, ``--extra-index-url``, ``--find-links``, ``--no-index``), ``--hash``, extras, markers, and
direct references to local wheels and local path packages. A line the kit cannot honour stops the build with
the file, the line and the fix; it is never skipped.

``${VAR}`` references are kept as written (the installer expands them), so a token in an index URL never
reaches the asset hash, a message or a file.
"""

from __future__ import annotations

import codecs
import os
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path

from layerkit.core.errors import DeclarationError
from layerkit.core.spelling import in_use
from layerkit.sources.declaration import (
    Declaration,
    Requirement,
    file_url_path,
    local_requirement,
    parse_pep508,
    refuse_vcs,
)

FILE_NAME = "requirements.txt"

_COMMENT = re.compile(r"(^|\s+)#.*$")
_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))

#: Options that take a value, by every spelling pip accepts, -> the canonical name.
_VALUE_OPTIONS = {
    "-r": "requirement", "--requirement": "requirement", "-c": "constraint", "--constraint": "constraint",
    "-i": "index-url", "--index-url": "index-url", "--extra-index-url": "extra-index-url",
    "-f": "find-links", "--find-links": "find-links", "--trusted-host": "trusted-host",
    "--only-binary": "only-binary", "--no-binary": "no-binary", "-e": "editable", "--editable": "editable",
    "--use-feature": "use-feature",
}
_FLAG_OPTIONS = {"--no-index": "no-index", "--pre": "pre", "--prefer-binary": "prefer-binary",
                 "--require-hashes": "require-hashes"}


def decode(data: bytes, path: Path) -> str:
    """The text of a requirements file in the encodings pip accepts."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DeclarationError(
            f"{path}: not UTF-8 text (nor UTF-16 with a byte order mark); save it as UTF-8"
        ) from None


def logical_lines(text: str) -> list[tuple[int, str]]:
    """``(first line number, line)`` with continuations joined and comments removed, as pip does."""
    result: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.endswith("\\") and not _COMMENT.match(raw):
            pending += raw[:-1] + " "
            continue
        line = _COMMENT.sub("", pending + raw).strip()
        pending = ""
        if line:
            result.append((start, line))
    if pending.strip():
        result.append((start, _COMMENT.sub("", pending).strip()))
    return result


def _expand(value: str) -> str:
    """``${VAR}`` from the environment, as pip does, for paths only (URLs keep their references)."""
    return _ENV_VAR.sub(lambda m: os.environ.get(m.group(1), m.group(0)), value)


@dataclass
class _Reading:
    requirements: list[Requirement] = field(default_factory=list)
    constraints: list[Requirement] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    require_hashes: bool = False


def _split_options(tokens: list[str], origin: str) -> list[tuple[str, str | None]]:
    """``[(canonical option, value or None)]`` from the tokens of an option line."""
    found = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        spelled, _, inline = token.partition("=") if token.startswith("--") else (token[:2], "", token[2:])
        if spelled in _FLAG_OPTIONS and not inline:
            found.append((_FLAG_OPTIONS[spelled], None))
        elif spelled in _VALUE_OPTIONS:
            if not inline:
                index += 1
                if index >= len(tokens):
                    raise DeclarationError(f"{origin}: {spelled} needs a value; e.g. '{spelled} base.txt'")
                inline = tokens[index]
            found.append((_VALUE_OPTIONS[spelled], inline))
        else:
            raise DeclarationError(
                f"{origin}: unknown option {token!r}; the kit reads requirement lines and -r, -c, --index-url, "
                "--extra-index-url, --find-links, --no-index, --pre, --only-binary, --require-hashes and "
                "--hash: remove it, or put its setting in the environment (e.g. PIP_INDEX_URL)"
            )
        index += 1
    return found


def _read_file(path: Path, reading: _Reading, *, constraint: bool, chain: tuple[Path, ...]) -> None:
    if path in chain:
        raise DeclarationError(f"{chain[-1]}: includes {path.name}, which includes it back; remove one of the -r")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        where = f"{chain[-1]}: " if chain else ""
        raise DeclarationError(f"{where}{path} does not exist; fix the -r/-c path (relative to the including "
                               "file) or create the file") from None
    reading.files.append(path)
    base = path.parent
    for number, line in logical_lines(decode(data, path)):
        origin = f"{path.name}:{number}" if not chain else f"{path}:{number}"
        if line.startswith("-"):
            _read_option_line(line, origin, base, path, reading, constraint=constraint, chain=chain)
            continue
        requirement = _read_requirement_line(line, origin, base)
        (reading.constraints if constraint else reading.requirements).append(requirement)


def _read_option_line(line: str, origin: str, base: Path, path: Path, reading: _Reading, *, constraint: bool,
                      chain: tuple[Path, ...]) -> None:
    try:
        tokens = shlex.split(line)
    except ValueError as exc:
        raise DeclarationError(f"{origin}: cannot read {line!r} ({exc})") from None
    for option, value in _split_options(tokens, origin):
        if option in ("requirement", "constraint") and value is not None:
            _read_file((base / _expand(value)).resolve(), reading, constraint=constraint or option == "constraint",
                       chain=(*chain, path))
        elif option == "editable":
            raise DeclarationError(
                f"{origin}: an editable install (-e {value}) cannot ship in a Lambda package, which has no "
                "source tree to point at; drop the -e so that the package is built into a wheel"
            )
        elif option == "no-binary":
            raise DeclarationError(
                f"{origin}: --no-binary asks to build from source, and the Docker-free build installs wheels "
                f"only; remove it, or build with Docker, where sources compile in the Lambda build image: "
                f"{in_use().docker}"
            )
        elif option == "use-feature":
            raise DeclarationError(f"{origin}: --use-feature is a pip setting, not a dependency; remove it")
        elif option == "require-hashes":
            reading.require_hashes = True
        elif option in ("prefer-binary", "only-binary"):
            continue  # the Docker-free build installs wheels only, which satisfies both
        elif option == "find-links" and value is not None and "://" not in value:
            reading.options.append(f"--find-links {(base / _expand(value)).resolve()}")
        else:
            reading.options.append(f"--{option}" + (f" {value}" if value is not None else ""))


def _read_requirement_line(line: str, origin: str, base: Path) -> Requirement:
    args, _, rest = _break_args_options(line)
    hashes: list[str] = []
    if rest:
        try:
            tokens = shlex.split(rest)
        except ValueError as exc:
            raise DeclarationError(f"{origin}: cannot read {line!r} ({exc})") from None
        index = 0
        while index < len(tokens):
            spelled, _, value = tokens[index].partition("=")
            if spelled == "--hash":
                if not value and index + 1 < len(tokens):
                    index += 1
                    value = tokens[index]
                algorithm, _, digest = value.partition(":")
                if algorithm != "sha256" or len(digest) != 64:
                    raise DeclarationError(f"{origin}: --hash={value} is not 'sha256:<64 hex digits>'; "
                                           "regenerate the hashes (uv pip compile --generate-hashes)")
                hashes.append(f"sha256:{digest.lower()}")
            else:
                raise DeclarationError(
                    f"{origin}: {spelled} is not an option the kit honours on a requirement (only --hash is); "
                    "remove it"
                )
            index += 1
    requirement = _requirement(args, origin, base)
    if hashes:
        requirement = replace(requirement, hashes=tuple(hashes))
    return requirement


def _break_args_options(line: str) -> tuple[str, str, str]:
    """The requirement, then its options (from the first token that starts with '-'), as pip splits them."""
    tokens = line.split(" ")
    for index, token in enumerate(tokens):
        if token.startswith("-") and index > 0:
            return " ".join(tokens[:index]).strip(), " ", " ".join(tokens[index:])
    return line, "", ""


def _looks_like_path(text: str) -> bool:
    """A local file or folder, as pip tells one from a requirement: a path separator, or an archive name."""
    if "://" in text or " @ " in text:
        return False
    return text.startswith((".", "/", "~")) or text.endswith((".whl", ".tar.gz", ".zip")) or "/" in text \
        or os.sep in text


def _requirement(text: str, origin: str, base: Path) -> Requirement:
    location, _, marker_text = (part.strip() for part in text.partition(";"))
    marker = None
    if marker_text:
        from packaging.markers import (  # lazy: packaging: ~10 ms that a pinned declaration's cache hit never spends
            InvalidMarker,
            Marker,
        )

        try:
            marker = str(Marker(marker_text))
        except InvalidMarker as exc:
            raise DeclarationError(f"{origin}: cannot read the marker {marker_text!r} ({exc})") from None
    refuse_vcs(location, origin)
    if location.startswith("file:"):
        return local_requirement(file_url_path(_expand(location), base), origin, marker)
    if _looks_like_path(location) and "@" not in location:
        return local_requirement((base / Path(_expand(location)).expanduser()).resolve(), origin, marker)
    if re.match(r"^[a-z]+://", location):
        raise DeclarationError(f"{origin}: {location} is a URL without a name; write it as 'name @ {location}'")
    return parse_pep508(text, origin, base)


def read_requirements(path: Path) -> Declaration:
    """Read ``path`` and everything it includes."""
    reading = _Reading()
    _read_file(path.resolve(), reading, constraint=False, chain=())
    return Declaration(
        kind=FILE_NAME, path=path, requirements=tuple(reading.requirements),
        constraints=tuple(reading.constraints), options=tuple(dict.fromkeys(reading.options)),
        files=tuple(dict.fromkeys(reading.files)), require_hashes=reading.require_hashes,
    )


def read_requirements_text(text: str, path: Path, *, locked: bool) -> Declaration:
    """Requirements exported by a tool (e.g. ``uv export``) as if they were in ``path``'s folder."""
    reading = _Reading()
    base = path.parent
    for number, line in logical_lines(text):
        origin = f"{path.name} (line {number} of its export)"
        if line.startswith("-"):
            _read_option_line(line, origin, base, path, reading, constraint=False, chain=(path,))
        else:
            reading.requirements.append(_read_requirement_line(line, origin, base))
    return Declaration(kind=path.name, path=path, requirements=tuple(reading.requirements),
                       options=tuple(dict.fromkeys(reading.options)), locked=locked, files=(path,))
