"""The registry of published plugins: reading, searching and validating its index.

The index (``registry/index.json`` in the repository, a copy shipped inside the core as
``condgen/_registry/index.json``) lists plugins by name with their distribution, summary,
domains, plugin-API range, repository, licence, weights source and licence, and GPU need;
``registry/schema.json`` is its JSON Schema. ``CONDGEN_REGISTRY`` (a path or URL) points
`core plugins search` and `core install` at another index. Every index is checked against
the schema shipped with the core wherever it is read, so an entry's distribution is only
ever a distribution name (never a pip option, path, URL or marker).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import tomllib
import urllib.parse
import urllib.request
from importlib import metadata
from pathlib import Path

from condgen.errors import CondgenError, UsageError

ENV = "CONDGEN_REGISTRY"
PACKAGED = Path(__file__).parent / "_registry"


def default_source() -> str:
    """``$CONDGEN_REGISTRY``, else the index shipped with condgen (in a checkout: registry/)."""
    return os.environ.get(ENV) or str(PACKAGED / "index.json")


def is_url(source: str) -> bool:
    return urllib.parse.urlparse(str(source)).scheme in ("http", "https", "file")


def _load(source: str) -> dict:
    """The parsed index at ``source`` (path or URL), unchecked beyond its top-level shape."""
    try:
        if is_url(source):
            with urllib.request.urlopen(source, timeout=30) as response:
                text = response.read().decode("utf-8")
        else:
            text = Path(source).read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else (getattr(exc, "strerror", None) or str(exc))
        raise CondgenError(f"cannot read the plugin registry {source}: {reason}; point {ENV} at an index file or URL") from None
    if not isinstance(data, dict) or not isinstance(data.get("plugins"), list):
        raise CondgenError(f"plugin registry {source} has no list 'plugins'; see registry/schema.json")
    return data


def read_index(source: str | os.PathLike | None = None) -> dict:
    """The parsed and checked index at ``source`` (path or URL), or a one-line error that
    names the index, the entry and the field. The schema is the one shipped with the core,
    never one beside the index: an index cannot loosen its own checks."""
    source = str(source or default_source())
    data = _load(source)
    problems = index_problems(data, PACKAGED / "schema.json")
    problems += [(("plugins", i), message) for i, message in duplicates(data)]
    if problems:
        (path, message), more = problems[0], len(problems) - 1
        also = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise CondgenError(
            f"plugin registry {source} is not valid: {_where(path, data)}: {message}{also}; "
            f"fix the index (`core registry validate {shlex.quote(source)}` lists every problem) or point --index / {ENV} at another"
        )
    return data


def entries(source=None) -> list[dict]:
    return [e for e in read_index(source)["plugins"] if isinstance(e, dict)]


def normalize(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


# PEP 508 names: letters and digits, with '.', '_' and '-' inside (schema.json says the same)
_DISTRIBUTION_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


def is_distribution_name(name) -> bool:
    """Whether ``name`` is a distribution name and nothing else (no option, path, URL, marker)."""
    return isinstance(name, str) and _DISTRIBUTION_NAME.fullmatch(name) is not None


def install_hint(name: str) -> str:
    """What to run to get plugin ``name``: a pip command only for a name that is a plain
    distribution name (a name from a manifest or the command line is never echoed into one)."""
    if is_distribution_name(f"condgen-{name}"):
        return f"install one with `pip install {shlex.quote(f'condgen-{name}')}` (see `core plugins`)"
    return "plugin names are letters, digits, '-' and '_' (see `core plugins` and `core plugins search`)"


def find(name: str, source=None) -> dict:
    """The entry whose plugin name or distribution is ``name``; a one-line error if none."""
    known = entries(source)
    for entry in known:
        if entry.get("name") == name or normalize(entry.get("distribution", "")) == normalize(name):
            return entry
    names = sorted(str(e.get("name")) for e in known)
    hint = difflib.get_close_matches(name, names, n=1)
    extra = f"; did you mean {hint[0]!r}?" if hint else ""
    raise UsageError(
        f"no plugin {name!r} in the registry{extra} (`core plugins search` lists {len(names)}); "
        "install a distribution outside the registry with `core install ./path` or pip"
    )


def api_compatible(entry: dict) -> bool:
    """Whether this condgen's ``PLUGIN_API`` is inside the entry's ``condgen_api`` range."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    import condgen

    try:
        return SpecifierSet(entry.get("condgen_api", "")).contains(condgen.PLUGIN_API, prereleases=True)
    except InvalidSpecifier:
        return False


def search(term: str, source=None) -> list[dict]:
    """Entries whose name, distribution, summary or domains contain ``term`` (any case)."""
    needle = term.lower().strip()
    found = []
    for entry in entries(source):
        haystack = " ".join([str(entry.get(k, "")) for k in ("name", "distribution", "summary")] + [str(d) for d in entry.get("domains", [])])
        if needle in haystack.lower():
            found.append(entry)
    return found


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


# -- validation -------------------------------------------------------------------------


def checkout_root(source: str) -> Path | None:
    """The repository an index file lies in (its ``plugins/`` beside the index's folder),
    or None: a URL, or an index outside a checkout (the one shipped in site-packages)."""
    if is_url(source):
        return None
    root = Path(source).resolve().parent.parent
    return root if (root / "plugins").is_dir() else None


def validate(source=None, online: bool = False) -> tuple[list[str], list[dict], list[str]]:
    """(problems, entries, what was not checked) of an index: JSON Schema, duplicate names
    and distributions, the API range, and that each distribution is reachable: installed
    here or built from this repository (``plugins/*``, ``examples/third_party/*``) and
    registering the plugin name; with ``online``, published on PyPI. Outside a checkout
    there is no repository: relative repository folders and distributions that are not
    installed are only listed as unchecked (``online`` still asks PyPI about the latter)."""
    source = str(source or default_source())
    data = _load(source)
    root = checkout_root(source)
    beside = None if is_url(source) else Path(source).resolve().parent / "schema.json"
    schema = beside if beside is not None and beside.is_file() else PACKAGED / "schema.json"
    problems = [f"{_where(path, data, entry_names=False)}: {message}" for path, message in index_problems(data, schema)]
    problems += [f"plugins[{i}] ({data['plugins'][i].get('name', '?')}): {message}" for i, message in duplicates(data)]
    local = {} if root is None else _repository_distributions(root)
    unchecked = []
    for i, entry in enumerate(data["plugins"]):
        if not isinstance(entry, dict):
            continue
        where = f"plugins[{i}] ({entry.get('name', '?')})"
        name, dist = entry.get("name"), entry.get("distribution")
        if isinstance(name, str) and is_distribution_name(dist):
            problem = _reachable(name, dist, local, online, in_checkout=root is not None)
            if problem == _UNCHECKED:
                unchecked.append(dist)
            elif problem:
                problems.append(f"{where}: {problem}")
        if isinstance(name, str) and is_distribution_name(dist) and isinstance(entry.get("condgen_api"), str) and _valid_specifier(entry["condgen_api"]):
            problem = _range_problem(entry["condgen_api"], _declared_api(name, dist, root))
            if problem:
                problems.append(f"{where}: {problem}")
        repository = entry.get("repository")
        if isinstance(repository, str) and not is_url(repository):
            if root is None:
                unchecked.append(repository)
            elif not (root / repository).is_dir():
                problems.append(f"{where}: repository path {repository!r} is not a folder of this repository")
    return problems, [e for e in data["plugins"] if isinstance(e, dict)], unchecked


def index_problems(data: dict, schema: Path) -> list[tuple[tuple, str]]:
    """(path in the index, message) for each field that is wrong: the JSON Schema
    ``schema``, distribution names (whatever the schema says) and API ranges."""
    problems = _schema_problems(data, schema)
    for i, entry in enumerate(data["plugins"]):
        if not isinstance(entry, dict):
            continue
        dist = entry.get("distribution")
        if isinstance(dist, str) and not is_distribution_name(dist) and ("plugins", i, "distribution") not in [p for p, _ in problems]:
            problems.append((("plugins", i, "distribution"), _not_a_name(dist)))
        if isinstance(entry.get("condgen_api"), str) and not _valid_specifier(entry["condgen_api"]):
            problems.append((("plugins", i, "condgen_api"), f"{entry['condgen_api']!r} is not a version range such as '>=1.0,<2'"))
    return problems


def duplicates(data: dict) -> list[tuple[int, str]]:
    """(entry number, message) for each entry whose name or distribution an earlier one has."""
    problems, seen_names, seen_dists = [], {}, {}
    for i, entry in enumerate(data["plugins"]):
        if not isinstance(entry, dict):
            continue
        name, dist = entry.get("name"), entry.get("distribution")
        if isinstance(name, str):
            if name in seen_names:
                problems.append((i, f"duplicate name {name!r} (also plugins[{seen_names[name]}])"))
            seen_names.setdefault(name, i)
        if isinstance(dist, str):
            if normalize(dist) in seen_dists:
                problems.append((i, f"duplicate distribution {dist!r} (also plugins[{seen_dists[normalize(dist)]}])"))
            seen_dists.setdefault(normalize(dist), i)
    return problems


def _not_a_name(dist) -> str:
    return f"{dist!r} is not a distribution name (letters, digits and '.', '_', '-' inside; no option, path, URL or marker)"


def _where(path: tuple, data: dict, entry_names: bool = True) -> str:
    """``entry plugins[3] ('evil'), field 'distribution'`` (or ``plugins[3].distribution``) for a path."""
    if not path:
        return "index"
    if entry_names and (path[0] != "plugins" or len(path) < 2):
        return f"field {'.'.join(str(p) for p in path)!r}"
    if not entry_names:
        return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    entry = data["plugins"][path[1]]
    name = entry.get("name") if isinstance(entry, dict) else None
    where = f"entry plugins[{path[1]}]" + (f" ({name!r})" if isinstance(name, str) else "")
    field = ".".join(str(p) for p in path[2:])
    return where + (f", field {field!r}" if field else "")


def _schema_problems(data: dict, schema_path: Path) -> list[tuple[tuple, str]]:
    import jsonschema

    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    problems = []
    for error in sorted(validator.iter_errors(data), key=lambda e: [(0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in e.absolute_path]):
        path = tuple(error.absolute_path)
        if len(path) == 3 and path[2] == "distribution" and error.validator == "pattern":
            problems.append((path, _not_a_name(error.instance)))
        else:
            problems.append((path, error.message))
    return problems


def _valid_specifier(text: str) -> bool:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        SpecifierSet(text)
    except InvalidSpecifier:
        return False
    return bool(text.strip())


def _repository_distributions(root: Path) -> dict[str, set[str]]:
    """Distributions built from this repository: normalised name -> plugin names they register."""
    found = {}
    for pyproject in [*root.glob("plugins/*/pyproject.toml"), *root.glob("examples/third_party/*/pyproject.toml")]:
        try:
            project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        except (OSError, tomllib.TOMLDecodeError):
            continue
        if "name" in project:
            found[normalize(project["name"])] = set(project.get("entry-points", {}).get("condgen", {}))
    return found


def _declared_api(name: str, dist: str, root: Path | None) -> str | None:
    """The ``__condgen_api__`` that plugin ``name`` of ``dist`` declares, read from its
    plugin module's source (nothing is imported): built from this repository, or else
    installed here; None where neither has it or the module does not say."""
    import ast
    import importlib.util

    source = None
    for pyproject in [] if root is None else [*root.glob("plugins/*/pyproject.toml"), *root.glob("examples/third_party/*/pyproject.toml")]:
        try:
            project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        except (OSError, tomllib.TOMLDecodeError):
            continue
        module = project.get("entry-points", {}).get("condgen", {}).get(name)
        if normalize(project.get("name", "")) == normalize(dist) and isinstance(module, str):
            relative = module.split(":")[0].replace(".", "/") + ".py"
            found = [f for f in (pyproject.parent / "src" / relative, pyproject.parent / relative) if f.is_file()]
            source = found[0] if found else None
            break
    else:
        try:
            module = next(ep.value for ep in metadata.distribution(dist).entry_points if ep.group == "condgen" and ep.name == name)
            spec = importlib.util.find_spec(module.split(":")[0])
            source = Path(spec.origin) if spec is not None and spec.origin else None
        except (metadata.PackageNotFoundError, StopIteration, ImportError, ValueError):
            return None
    try:
        tree = ast.parse(source.read_text(encoding="utf-8")) if source is not None else None
    except (OSError, SyntaxError, ValueError):
        return None
    for node in [] if tree is None else tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__condgen_api__" for t in node.targets) \
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return node.value.value
    return None


def _range_problem(api_range: str, declared: str | None) -> str | None:
    """What is wrong with an entry's ``condgen_api`` for a plugin declaring ``declared``:
    the range must hold the plugin's own API and no older minor version of it (a core
    that old lacks something the plugin uses, so install would pass and loading fail)."""
    from packaging.specifiers import SpecifierSet

    try:
        major, minor = (int(p) for p in str(declared).split("."))
    except ValueError:
        return None  # not declared, or not major.minor: loading the plugin says so
    allowed = SpecifierSet(api_range)
    if not allowed.contains(declared, prereleases=True):
        return f"condgen_api {api_range!r} leaves out plugin API {declared}, which the plugin declares; make it '>={declared},<{major + 1}'"
    older = [f"{major}.{m}" for m in range(minor) if allowed.contains(f"{major}.{m}", prereleases=True)]
    if older:
        return (f"condgen_api {api_range!r} admits plugin API {older[0]}, but the plugin declares __condgen_api__ = {declared!r} "
                f"and needs a core that offers it; make it '>={declared},<{major + 1}'")
    return None


_UNCHECKED = "unchecked"


def _reachable(name: str, dist: str, local: dict[str, set[str]], online: bool, in_checkout: bool = True) -> str | None:
    registered = local.get(normalize(dist))
    if registered is None:
        try:
            registered = {ep.name for ep in metadata.distribution(dist).entry_points if ep.group == "condgen"}
        except metadata.PackageNotFoundError:
            pass
    if registered is not None and name not in registered:
        return f"distribution {dist!r} does not register plugin {name!r} (its condgen entry points: {', '.join(sorted(registered)) or 'none'})"
    if online:
        try:
            with urllib.request.urlopen(f"https://pypi.org/pypi/{normalize(dist)}/json", timeout=30):
                return None
        except OSError as exc:
            return f"distribution {dist!r} is not published on PyPI ({exc})"
    if registered is None:
        if not in_checkout:
            return _UNCHECKED
        return f"distribution {dist!r} is neither installed here nor built from this repository (check PyPI with --online)"
    return None
