"""Installing and removing plugins with pip, in the environment condgen runs in.

`core install NAME` resolves a registry name to its distribution (refusing plugins made
for another plugin API before pip runs); paths, wheels and ``-e PATH`` go to pip as
they are. pip's options come first, then ``--``, then the requirements: a requirement is
only ever a distribution name with extras and a version range (no URL, marker or option),
so neither a user nor a registry index can hand pip an option.
pip runs as ``sys.executable -m pip``, so the plugin lands beside this core.
`core plugins --requirements` writes the pins that rebuild the environment.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import urllib.parse
from importlib import metadata
from pathlib import Path

from condgen import index
from condgen.errors import CondgenError, PluginError, UsageError

_ARCHIVES = (".whl", ".tar.gz", ".zip", ".tar.bz2")


def pip_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", *args]


def is_local(target: str) -> bool:
    """A path (``./waves``, ``dist/x.whl``) rather than a name: pip's rule, minus guessing."""
    return target.endswith(_ARCHIVES) or "/" in target or "\\" in target or target.startswith(".")


def requirement(distribution: str, extras=(), specifier="") -> str:
    """``NAME[EXTRAS]RANGE`` for pip, built only from a checked distribution name, extras
    and a version range; anything else is refused rather than passed on."""
    from packaging.requirements import InvalidRequirement, Requirement

    if not index.is_distribution_name(distribution):
        raise PluginError(f"registry distribution {distribution!r} is not a distribution name; check the index with `core registry validate`")
    listed = f"[{','.join(sorted(extras))}]" if extras else ""
    text = f"{distribution}{listed}{specifier}"
    try:
        parsed = Requirement(text)
    except InvalidRequirement:
        parsed = None
    if parsed is None or parsed.url or parsed.marker or parsed.name != distribution:
        raise PluginError(f"{text!r} is not a plain requirement (name, extras, version range); check the index with `core registry validate`")
    return text


def resolve(targets, editables=(), source=None, upgrade=False, find_links=None) -> tuple[list[str], list[str]]:
    """(pip arguments from ``install`` on, registry distributions among them) for `core install`:
    options (``--upgrade``, ``--find-links DIR``, ``-e PATH``) first, then ``--`` and the
    requirements and paths."""
    from packaging.requirements import InvalidRequirement, Requirement

    options, args, distributions = ["install", *(["--upgrade"] if upgrade else [])], [], []
    if find_links is not None:
        if not Path(find_links).expanduser().is_dir():
            raise UsageError(f"--find-links {find_links}: not a folder; give a folder of wheels (a wheelhouse, e.g. from `pip wheel -w DIR`)")
        options += ["--find-links", str(Path(find_links).expanduser().resolve())]
    for target in targets:
        if is_local(target):
            path = Path(target).expanduser()
            if not path.exists():
                raise UsageError(f"{target}: no such file or folder; give a registry name (see `core plugins search`), a wheel or a project folder")
            args.append(str(path.resolve()))  # absolute: it starts with '/', never with '-'
            continue
        try:
            wanted = Requirement(target)
        except InvalidRequirement:
            raise UsageError(f"{target!r} is neither a plugin name, a requirement such as waves>=0.2, nor an existing path; give a registry name (see `core plugins search`), a requirement or a path") from None
        if wanted.url or wanted.marker:
            what = "a URL" if wanted.url else "an environment marker"
            raise UsageError(
                f"{target!r} has {what}; `core install` takes a plugin name with a version range (waves>=0.2); "
                "give a downloaded wheel's path, or use pip for anything else"
            )
        entry = index.find(wanted.name, source)
        if not index.api_compatible(entry):
            import condgen

            raise PluginError(
                f"plugin {entry['name']!r} ({entry['distribution']}) is made for plugin API {entry['condgen_api']}, "
                f"this condgen offers {condgen.PLUGIN_API}; upgrade condgen or wait for a compatible release"
            )
        args.append(requirement(entry["distribution"], wanted.extras, str(wanted.specifier)))
        distributions.append(entry["distribution"])
    for path in editables:
        if not Path(path).is_dir():
            raise UsageError(f"-e {path}: not a folder; -e takes a plugin's project folder")
        options += ["-e", str(Path(path).resolve())]
    if not args and not any(o == "-e" for o in options):
        raise UsageError("what to install? give a registry name (see `core plugins search`), a path, or -e PATH")
    return options + (["--", *args] if args else []), distributions


def run_pip(args: list[str]) -> str:
    """Run pip with its progress on our stdout; a failure is one line quoting pip's error."""
    command = pip_command(*args)
    result = subprocess.run(command, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR:")]
        reason = (errors or lines or [f"exit code {result.returncode}"])[-1].removeprefix("ERROR:").strip()
        raise CondgenError(f"pip {args[0]} failed: {reason} (command: {shlex.join(command)})")
    return result.stderr


def plugin_statuses() -> dict[str, dict]:
    """What `core plugins --json` says in a fresh interpreter (this one has cached metadata)."""
    result = subprocess.run([sys.executable, "-m", "condgen", "plugins", "--json"], capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise CondgenError(f"`core plugins` failed after pip ran: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return {r["name"]: r for r in json.loads(result.stdout) if r["name"] != "condgen"}


def installed_plugins() -> dict[str, tuple[str, str]]:
    """Installed plugin name -> (distribution, version), from entry-point metadata only."""
    from condgen.plugins import entry_points

    return {name: (ep.dist.name if ep.dist else "", ep.dist.version if ep.dist else "") for name, ep in entry_points().items()}


def changed_plugins(before: dict[str, tuple[str, str]], after: dict[str, dict], distributions=()) -> list[dict]:
    """Plugins that are new, at another version, or from one of ``distributions``."""
    wanted = {index.normalize(d) for d in distributions}
    return [
        record for name, record in sorted(after.items())
        if before.get(name, (None, None))[1] != record["version"] or index.normalize(record["distribution"]) in wanted
    ]


def resolve_uninstall(name: str) -> tuple[str, list[str]]:
    """(distribution, plugin names it provides) for an installed plugin or plugin distribution."""
    plugins = installed_plugins()
    if index.normalize(name) == "condgen":
        raise UsageError("condgen is the core, not a plugin; remove it with pip if you mean it")
    dist = plugins[name][0] if name in plugins else next((d for d, _ in plugins.values() if index.normalize(d) == index.normalize(name)), None)
    if not dist:
        raise UsageError(f"no installed plugin {name!r}; installed: {', '.join(sorted(plugins)) or 'none'} (see `core plugins`)")
    return dist, sorted(n for n, (d, _) in plugins.items() if d == dist)


def location(dist: str) -> str:
    """The folder an installed distribution is found in."""
    try:
        return str(metadata.distribution(dist).locate_file(""))
    except metadata.PackageNotFoundError:
        return "an unknown place"


# -- reproducing an environment ---------------------------------------------------------


def requirement_line(dist: metadata.Distribution) -> str:
    """How pip reinstalls ``dist`` as it is: ``-e PATH`` (editable), ``NAME @ URL`` (a local
    file or VCS checkout) or ``NAME==VERSION`` (from an index), per its direct_url.json."""
    name = dist.metadata["Name"]
    direct = dist.read_text("direct_url.json")
    if direct:
        info = json.loads(direct)
        url = info.get("url", "")
        if info.get("dir_info", {}).get("editable"):
            return f"-e {urllib.parse.unquote(urllib.parse.urlparse(url).path)}"
        if "vcs_info" in info:
            vcs = info["vcs_info"]
            return f"{name} @ {vcs['vcs']}+{url}@{vcs.get('commit_id', '')}".rstrip("@")
        if url:
            return f"{name} @ {url}"
    return f"{name}=={dist.version}"


def requirements(records: dict) -> str:
    """A requirements file for the core and every installed plugin distribution."""
    import condgen
    from condgen.plugins import entry_points

    lines = [f"# condgen {condgen.__version__} and its plugins (core plugins --requirements); reinstall with: pip install -r FILE"]
    lines.append(requirement_line(metadata.distribution("condgen")))
    done = set()
    for name, ep in sorted(entry_points().items()):
        if ep.dist is None or index.normalize(ep.dist.name) in done:
            continue
        done.add(index.normalize(ep.dist.name))
        names = sorted(n for n, e in entry_points().items() if e.dist is not None and index.normalize(e.dist.name) == index.normalize(ep.dist.name))
        status = ", ".join(f"{n}: {records[n].status}" if n in records else n for n in names)
        lines.append(f"{requirement_line(ep.dist)}  # plugin {status}")
    return "\n".join(lines) + "\n"
