"""Finding, importing and checking plugins.

Plugins are distributions with an entry point in the group ``condgen``; the entry-point
name is the plugin name used by ``--plugin``. Each is imported in isolation and given a
status:

- ``loaded``        imported, API compatible, every hook ran;
- ``failed``        import or a hook raised, or a hook name is unknown (misspelled);
- ``incompatible``  ``__condgen_api__`` missing or not compatible with ``condgen.PLUGIN_API``;
- ``blocked``       left out by ``CONDGEN_LOAD_PLUGINS``.

A broken plugin never breaks the others or the CLI, unless ``CONDGEN_STRICT_PLUGINS=1``
asks for failures to be fatal: anything its import or hooks raise, ``SystemExit`` and
``KeyboardInterrupt`` included, only marks it ``failed``. A Ctrl-C the process really
received while a plugin loads still stops the command (``_SigintWatch`` tells the two
apart).

Names (of plugins, generators, samplers, guidance, writers, metrics, data sets) are
never taken over. Plugins load in order of precedence, and a name belongs to the first
to register it: the core, then the first-party plugins (``first_party`` in the index
shipped with the core), then the others by install time (their dist-info folder's
modification time; the name breaks ties). A newcomer that registers a taken name is
``failed`` with a message naming the owner, and the answer does not depend on which
plugins a command imports: ``--plugin X`` for a third-party X also loads the plugins
that rank before X, to learn the names that are theirs.
"""

from __future__ import annotations

import difflib
import shlex
import functools
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pluggy

from condgen import hookspecs
from condgen.errors import PluginError, UsageError, describe as _describe

ENTRY_POINT_GROUP = "condgen"
HOOKS = (
    "register_generators",
    "register_samplers",
    "register_guidance",
    "register_writers",
    "register_metrics",
    "register_datasets",
)
# register_commands is called only by the CLI, with the click group.
ALL_HOOKS = HOOKS + ("register_commands",)
# What each hook fills in Plugins, and the key an object is registered under.
_TABLES = {
    "register_generators": "generators",
    "register_samplers": "samplers",
    "register_guidance": "guidance",
    "register_writers": "writers",
    "register_metrics": "metrics",
    "register_datasets": "datasets",
}
BUILTIN = "condgen"


@dataclass
class PluginRecord:
    name: str
    distribution: str = ""
    version: str = ""
    status: str = "loaded"
    error: str = ""
    hooks: list[str] = field(default_factory=list)
    provides: dict[str, list[str]] = field(default_factory=dict)
    module: object = None

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "hooks": self.hooks,
            "provides": self.provides,
        }


def api_compatible(declared) -> tuple[bool, str]:
    """Whether a plugin written for API ``declared`` runs on ``condgen.PLUGIN_API``."""
    import condgen

    if declared is None:
        return False, f"declares no __condgen_api__; add __condgen_api__ = {condgen.PLUGIN_API!r} to its plugin module"
    try:
        major, minor = (int(p) for p in str(declared).split("."))
        core_major, core_minor = (int(p) for p in condgen.PLUGIN_API.split("."))
    except ValueError:
        return False, f"__condgen_api__ = {declared!r} is not 'major.minor'"
    if major != core_major or minor > core_minor:
        return False, (
            f"written for plugin API {declared}, this condgen offers {condgen.PLUGIN_API}; "
            f"install a version of the plugin made for API {core_major}.x"
        )
    return True, ""


def _env_list(name: str) -> set[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _strict() -> bool:
    return os.environ.get("CONDGEN_STRICT_PLUGINS", "").lower() in {"1", "true", "yes"}


@functools.lru_cache(maxsize=1)
def first_party() -> frozenset[tuple[str, str]]:
    """(plugin name, normalised distribution) of every first-party plugin: the entries with
    ``first_party: true`` in the index shipped inside the core (never $CONDGEN_REGISTRY,
    which a user may point anywhere)."""
    try:
        data = json.loads((Path(__file__).parent / "_registry" / "index.json").read_text(encoding="utf-8"))
        return frozenset((e["name"], _normalize(e["distribution"])) for e in data["plugins"] if e.get("first_party") is True)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return frozenset()


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def is_first_party(ep: metadata.EntryPoint) -> bool:
    return ep.dist is not None and (ep.name, _normalize(ep.dist.name)) in first_party()


def _installed_at(ep: metadata.EntryPoint) -> int:
    """When the entry point's distribution was installed (or last upgraded): the mtime of
    its dist-info folder, in ns; unknown ranks last."""
    try:
        return Path(ep.dist._path).stat().st_mtime_ns
    except (AttributeError, TypeError, OSError):
        return sys.maxsize


def rank(ep: metadata.EntryPoint) -> tuple:
    """Precedence of a plugin, smallest first: first-party plugins (by name), then the
    others by install time, then by name."""
    if is_first_party(ep):
        return (0, 0, ep.name)
    return (1, _installed_at(ep), ep.name)


def _ranked_entry_points() -> tuple[dict[str, metadata.EntryPoint], list[tuple[metadata.EntryPoint, metadata.EntryPoint]]]:
    found, shadowed = {}, []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=rank):
        if ep.name in found:
            if ep.dist is None or found[ep.name].dist is None or _normalize(ep.dist.name) != _normalize(found[ep.name].dist.name):
                shadowed.append((ep, found[ep.name]))
            continue
        found[ep.name] = ep
    return found, shadowed


def entry_points() -> dict[str, metadata.EntryPoint]:
    """One entry point per plugin name, in order of precedence (see ``rank``): where two
    distributions declare the same plugin name, the first-party or earlier-installed one
    is that plugin."""
    return _ranked_entry_points()[0]


class _SigintWatch:
    """Tells a Ctrl-C from a ``KeyboardInterrupt`` a plugin raises itself.

    While plugins load, SIGINT goes through a handler that notes it arrived and then does
    what the previous handler did (normally: raise ``KeyboardInterrupt``). A
    ``KeyboardInterrupt`` with no SIGINT noted came from the plugin's code and is
    contained; after a real one the command stops. Off the main thread no handler can be
    set, and every ``KeyboardInterrupt`` is taken as real. The previous handler comes
    back afterwards, also if a plugin replaced it while loading.
    """

    def __init__(self):
        self.received = False
        self.watching = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            try:
                self._previous = signal.getsignal(signal.SIGINT)
                signal.signal(signal.SIGINT, self._on_sigint)
                self.watching = True
            except (ValueError, OSError):
                self.watching = False
        return self

    def _on_sigint(self, signum, frame):
        previous = self._previous
        if previous == signal.SIG_IGN:
            return None
        if callable(previous) and previous is not signal.default_int_handler:
            return previous(signum, frame)  # the program's own handler decides
        self.received = True
        raise KeyboardInterrupt

    def __exit__(self, *exc_info):
        if self.watching:
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.SIG_DFL)
        return False

    def contain(self, exc: BaseException) -> None:
        """Re-raise ``exc`` if it is the user's Ctrl-C; otherwise return (it is the plugin's)."""
        if isinstance(exc, KeyboardInterrupt) and (self.received or not self.watching):
            raise exc

    def check(self) -> None:
        """Stop after a Ctrl-C that a plugin caught and turned into something else."""
        if self.received:
            raise KeyboardInterrupt


class Plugins:
    """The loaded plugins and everything they registered.

    ``only``: import just these plugin names (``--plugin X`` imports X alone); the
    core's built-in samplers, guidance and writers are always registered. For a
    third-party plugin in ``only``, the plugins that rank before it are loaded too, on
    the side (``get_plugin_manager`` of that prefix), only to learn which names are
    theirs: a clash is decided the same way whichever plugins a command imports.
    """

    def __init__(self, only: set[str] | None = None):
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.generators, self.samplers, self.guidance = {}, {}, {}
        self.writers, self.metrics, self.datasets = {}, {}, {}
        self._owner: dict[tuple[str, str], str] = {}
        self._refused: dict[str, str] = {}

        from condgen import _builtins

        import condgen

        found, shadowed = _ranked_entry_points()
        order = list(found.values())
        self._rank = {BUILTIN: -1, **{ep.name: i for i, ep in enumerate(order)}}
        self._first_party = {ep.name for ep in order if is_first_party(ep)}
        self._reserved = self._names_ranked_before(order, only)
        self._add(BUILTIN, _builtins, distribution="condgen", version=condgen.__version__)
        allowed = _env_list("CONDGEN_LOAD_PLUGINS")
        with _SigintWatch() as sigint:
            for ep in order:
                name = ep.name
                if only is not None and name not in only:
                    continue
                dist = ep.dist.name if ep.dist else ""
                version = ep.dist.version if ep.dist else ""
                if allowed is not None and name not in allowed:
                    self.records[name] = PluginRecord(
                        name, dist, version, "blocked", "not listed in CONDGEN_LOAD_PLUGINS"
                    )
                    continue
                self._load(ep, dist, version, sigint)
                sigint.check()
        if only is None:
            for ep, owner in shadowed:
                key = f"{ep.name} ({ep.dist.name if ep.dist else ep.value})"
                why = "first-party" if is_first_party(owner) else "installed earlier"
                self._record_failure(
                    PluginRecord(key, ep.dist.name if ep.dist else "", ep.dist.version if ep.dist else ""), "failed",
                    f"plugin name {ep.name!r} belongs to {owner.dist.name if owner.dist else owner.value} ({why}); "
                    "this distribution's plugin is not loaded: give its entry point another name",
                )
        if _strict():
            bad = [r for r in self.records.values() if r.status in {"failed", "incompatible"}]
            if bad:
                raise PluginError(
                    f"plugin {bad[0].name!r} {bad[0].status}: {bad[0].error} "
                    "(CONDGEN_STRICT_PLUGINS is set; unset it to skip broken plugins)"
                )

    # -- loading --------------------------------------------------------------------

    def _names_ranked_before(self, order, only) -> dict[tuple[str, str], str]:
        """What the plugins ranked before the last third-party plugin in ``only`` own, when
        some of them are not in ``only`` (first-party plugins are trusted to clash with
        nobody: a test checks that they load together)."""
        if only is None:
            return {}
        third = [i for i, ep in enumerate(order) if ep.name in only and not is_first_party(ep)]
        if not third:
            return {}
        before = {ep.name for ep in order[: third[-1]]}
        if before <= only:
            return {}
        return {key: owner for key, owner in get_plugin_manager(before)._owner.items() if owner != BUILTIN}

    def _load(self, ep, dist: str, version: str, sigint: _SigintWatch) -> None:
        name = ep.name
        try:
            module = ep.load()
        except BaseException as exc:  # a plugin may raise anything, even SystemExit
            sigint.contain(exc)
            return self._record_failure(PluginRecord(name, dist, version), "failed", f"import failed: {_describe(exc)}")
        try:
            ok, why = api_compatible(getattr(module, "__condgen_api__", None))
        except BaseException as exc:
            sigint.contain(exc)
            return self._record_failure(PluginRecord(name, dist, version), "failed", f"reading __condgen_api__ raised {_describe(exc)}")
        if not ok:
            return self._record_failure(PluginRecord(name, dist, version), "incompatible", why)
        self._add(name, module, distribution=dist, version=version, sigint=sigint)

    def _record_failure(self, record: PluginRecord, status: str, error: str) -> None:
        record.status, record.error = status, error
        self.records[record.name] = record

    def _add(self, name: str, module, *, distribution: str, version: str, sigint: _SigintWatch | None = None) -> None:
        record = PluginRecord(name, distribution, version, module=module)
        self.records[name] = record
        try:
            self.pm.register(module, name=name)
            unknown = [
                attr
                for attr in dir(module)
                if attr not in ALL_HOOKS
                and getattr(getattr(module, attr), "condgen_impl", None) is not None
            ]
        except BaseException as exc:
            if sigint is not None:
                sigint.contain(exc)
            self._withdraw(name)
            return self._record_failure(record, "failed", f"invalid hook implementation: {_describe(exc)}")
        if unknown:
            self.pm.unregister(module)
            hint = difflib.get_close_matches(unknown[0], ALL_HOOKS, n=1)
            did_you_mean = f"; did you mean {hint[0]!r}?" if hint else f"; known hooks: {', '.join(ALL_HOOKS)}"
            return self._record_failure(record, "failed", f"unknown hook {unknown[0]!r}{did_you_mean}")
        self.pm.check_pending()
        record.hooks = sorted(
            hook for hook in ALL_HOOKS if any(i.plugin_name == name for i in getattr(self.pm.hook, hook).get_hookimpls())
        )
        for hook in HOOKS:
            if hook not in record.hooks:
                continue
            impl = next(i for i in getattr(self.pm.hook, hook).get_hookimpls() if i.plugin_name == name)
            try:
                impl.function(self._registrar(name, _TABLES[hook]))
            except BaseException as exc:  # SystemExit, KeyboardInterrupt ... from a hook fail its plugin
                if sigint is not None:
                    sigint.contain(exc)
                self._withdraw(name)
                return self._record_failure(record, "failed", self._refused.get(name) or f"{hook} raised {_describe(exc)}")
            if name in self._refused:  # the hook caught our refusal and went on: still failed
                self._withdraw(name)
                return self._record_failure(record, "failed", self._refused[name])

    def _registrar(self, plugin: str, table: str):
        def register(obj):
            key = getattr(obj, "name", None) or getattr(obj, "format", None)
            if not key:
                raise PluginError(f"{table[:-1]} {obj!r} has no name")
            owner = self._owner.get((table, key))
            if owner is None:
                theirs = self._reserved.get((table, key))
                if theirs is not None and theirs != plugin and self._rank.get(theirs, -1) < self._rank.get(plugin, -1):
                    owner = theirs
            if owner is not None:
                message = f"{table[:-1]} {key!r} is already registered by plugin {owner!r} ({self._why_first(owner, plugin)})"
                self._refused.setdefault(plugin, message)
                raise PluginError(message)
            if table == "generators":
                obj.plugin = plugin
            getattr(self, table)[key] = obj
            self._owner[(table, key)] = plugin
            self.records[plugin].provides.setdefault(table, []).append(key)

        return register

    def _why_first(self, owner: str, plugin: str) -> str:
        if owner == plugin:
            return "twice by the same plugin"
        if owner == BUILTIN:
            return "the core's names are never taken over; give yours another name"
        if owner in self._first_party:
            return "first-party plugins keep their names; give yours another name"
        return "installed earlier; a name stays with the plugin installed first, give yours another name"

    def _withdraw(self, plugin: str) -> None:
        """Remove everything a failed plugin registered, so half a plugin is never used."""
        for (table, key), owner in list(self._owner.items()):
            if owner == plugin:
                getattr(self, table).pop(key, None)
                del self._owner[(table, key)]
        self.records[plugin].provides = {}
        module = self.records[plugin].module
        if module is not None and self.pm.is_registered(module):
            self.pm.unregister(module)

    # -- lookups ----------------------------------------------------------------------

    def owner(self, table: str, key: str) -> str | None:
        return self._owner.get((table, key))

    def check_loaded(self, name: str) -> PluginRecord:
        """The record of plugin ``name``, or a one-line error that says why it can't be used."""
        record = self.records.get(name)
        if record is None:
            from condgen.index import install_hint

            known = sorted(n for n in entry_points())
            hint = difflib.get_close_matches(name, known, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise PluginError(
                f"unknown plugin {name!r}{extra} installed: {', '.join(known) or 'none'}; {install_hint(name)}"
            )
        if record.status != "loaded":
            advice = {
                "blocked": "; add it to CONDGEN_LOAD_PLUGINS to use it",
                "incompatible": "",  # its error names the version to install
            }.get(record.status, f"; fix the plugin or remove it with: core uninstall {shlex.quote(name)}")
            raise PluginError(f"plugin {name!r} is {record.status}: {record.error}{advice}")
        return record

    def generators_of(self, plugin: str) -> list:
        return [self.generators[k] for k in self.records[plugin].provides.get("generators", [])]

    def register_commands(self, cli) -> None:
        with _SigintWatch() as sigint:
            for impl in self.pm.hook.register_commands.get_hookimpls():
                try:
                    impl.function(cli)
                except BaseException as exc:
                    sigint.contain(exc)
                    self._withdraw(impl.plugin_name)
                    self._record_failure(self.records[impl.plugin_name], "failed", f"register_commands raised {_describe(exc)}")
                sigint.check()


_CACHE: dict[frozenset | None, Plugins] = {}


def get_plugin_manager(only: set[str] | None = None) -> Plugins:
    """Load plugins once per process (per ``only`` set) and return them."""
    key = frozenset(only) if only is not None else None
    if key not in _CACHE:
        _CACHE[key] = Plugins(only=set(only) if only is not None else None)
    return _CACHE[key]


def reset() -> None:
    """Forget loaded plugins (tests; after installing a plugin at run time)."""
    _CACHE.clear()
    first_party.cache_clear()


class SharedTable(Mapping):
    """A registry table (samplers, guidance, writers) as seen by one generator's run.

    ``--plugin X`` imports X alone, so a name is looked up first among what X and the
    core registered; only a name they lack makes every installed plugin load, so that a
    sampler, guidance method or writer published by one plugin serves every domain.
    """

    def __init__(self, plugins: Plugins, table: str):
        self._first, self._table = getattr(plugins, table), table

    def _everything(self) -> dict:
        return getattr(get_plugin_manager(None), self._table)

    def __getitem__(self, name):
        if name in self._first:
            return self._first[name]
        return self._everything()[name]

    def __contains__(self, name) -> bool:
        return name in self._first or name in self._everything()

    def __iter__(self):
        return iter({**self._everything(), **self._first})

    def __len__(self) -> int:
        return len({**self._everything(), **self._first})


def tables_for(plugin: str | None) -> dict[str, SharedTable]:
    """Samplers, guidance and writers a generator of ``plugin`` can use (see SharedTable)."""
    plugins = get_plugin_manager({plugin}) if plugin else get_plugin_manager(set())
    return {table: SharedTable(plugins, table) for table in ("samplers", "guidance", "writers")}


def _find(table: str, what: str, name: str):
    entries = tables_for(None)[table]
    if name not in entries:
        raise UsageError(f"unknown {what} {name!r}; known: {', '.join(sorted(entries))}")
    return entries[name]


def find_sampler(name: str):
    """The registered ``condgen.Sampler`` called ``name``: the core's own, else any installed
    plugin's. ``.load()`` gives its function, e.g. for a sampler that builds on ``sgld``."""
    return _find("samplers", "sampler", name)


def find_guidance(name: str):
    """The registered ``condgen.GuidanceMethod`` called ``name`` (the core's, else a plugin's);
    ``.load()`` gives its class."""
    return _find("guidance", "guidance method", name)
