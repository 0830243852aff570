"""Finding, importing and checking plugins.

Plugins are distributions with an entry point in the group ``condgen``; the entry-point
name is the plugin name used by ``--plugin``. Each is imported in isolation and given a
status:

- ``loaded``        imported, API compatible, every hook ran;
- ``failed``        import or a hook raised, or a hook name is unknown (misspelled);
- ``incompatible``  ``__condgen_api__`` missing or not compatible with ``condgen.PLUGIN_API``;
- ``blocked``       left out by ``CONDGEN_LOAD_PLUGINS``.

A broken plugin never breaks the others or the CLI, unless ``CONDGEN_STRICT_PLUGINS=1``
asks for failures to be fatal.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from condgen import hookspecs
from condgen.errors import PluginError, UsageError

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


def entry_points() -> dict[str, metadata.EntryPoint]:
    found = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


class Plugins:
    """The loaded plugins and everything they registered.

    ``only``: import just these plugin names (``--plugin X`` imports X alone); the
    core's built-in samplers, guidance and writers are always registered.
    """

    def __init__(self, only: set[str] | None = None):
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.generators, self.samplers, self.guidance = {}, {}, {}
        self.writers, self.metrics, self.datasets = {}, {}, {}
        self._owner: dict[tuple[str, str], str] = {}

        from condgen import _builtins

        import condgen

        self._add(BUILTIN, _builtins, distribution="condgen", version=condgen.__version__)
        allowed = _env_list("CONDGEN_LOAD_PLUGINS")
        for name, ep in sorted(entry_points().items()):
            if only is not None and name not in only:
                continue
            dist = ep.dist.name if ep.dist else ""
            version = ep.dist.version if ep.dist else ""
            if allowed is not None and name not in allowed:
                self.records[name] = PluginRecord(
                    name, dist, version, "blocked", "not listed in CONDGEN_LOAD_PLUGINS"
                )
                continue
            try:
                module = ep.load()
            except BaseException as exc:  # a plugin may raise anything, even SystemExit
                if isinstance(exc, KeyboardInterrupt):
                    raise
                self._record_failure(PluginRecord(name, dist, version), "failed", f"import failed: {_describe(exc)}")
                continue
            ok, why = api_compatible(getattr(module, "__condgen_api__", None))
            if not ok:
                self._record_failure(PluginRecord(name, dist, version), "incompatible", why)
                continue
            self._add(name, module, distribution=dist, version=version)
        if _strict():
            bad = [r for r in self.records.values() if r.status in {"failed", "incompatible"}]
            if bad:
                raise PluginError(
                    f"plugin {bad[0].name!r} {bad[0].status}: {bad[0].error} "
                    "(CONDGEN_STRICT_PLUGINS is set; unset it to skip broken plugins)"
                )

    # -- loading --------------------------------------------------------------------

    def _record_failure(self, record: PluginRecord, status: str, error: str) -> None:
        record.status, record.error = status, error
        self.records[record.name] = record

    def _add(self, name: str, module, *, distribution: str, version: str) -> None:
        record = PluginRecord(name, distribution, version, module=module)
        self.records[name] = record
        try:
            self.pm.register(module, name=name)
        except Exception as exc:
            return self._record_failure(record, "failed", f"invalid hook implementation: {_describe(exc)}")
        unknown = [
            attr
            for attr in dir(module)
            if attr not in ALL_HOOKS
            and getattr(getattr(module, attr), "condgen_impl", None) is not None
        ]
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
            except Exception as exc:
                self._withdraw(name)
                return self._record_failure(record, "failed", f"{hook} raised {_describe(exc)}")

    def _registrar(self, plugin: str, table: str):
        def register(obj):
            key = getattr(obj, "name", None) or getattr(obj, "format", None)
            if not key:
                raise PluginError(f"{table[:-1]} {obj!r} has no name")
            owner = self._owner.get((table, key))
            if owner is not None:
                raise PluginError(f"{table[:-1]} {key!r} is already registered by plugin {owner!r}")
            if table == "generators":
                obj.plugin = plugin
            getattr(self, table)[key] = obj
            self._owner[(table, key)] = plugin
            self.records[plugin].provides.setdefault(table, []).append(key)

        return register

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
            raise PluginError(f"plugin {name!r} is {record.status}: {record.error}")
        return record

    def generators_of(self, plugin: str) -> list:
        return [self.generators[k] for k in self.records[plugin].provides.get("generators", [])]

    def register_commands(self, cli) -> None:
        for impl in self.pm.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli)
            except Exception as exc:
                self._withdraw(impl.plugin_name)
                self._record_failure(self.records[impl.plugin_name], "failed", f"register_commands raised {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


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
