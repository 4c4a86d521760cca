"""Loading plugins and routing hook calls to the plugin that owns an endpoint.

:func:`get_plugin_manager` builds a fresh :class:`pluggy.PluginManager` (a factory, not a module
global: tests make their own). Plugins come from the entry-point group ``vidbridge``; the built-in
ones (``wan2gp``, ``mock_backend``) register through that same group.

``VIDBRIDGE_LOAD_PLUGINS`` restricts what loads:

* unset: every installed plugin;
* empty: only the built-in plugins;
* ``a,b``: the built-in plugins plus the named ones.

A plugin that fails to import is skipped with a warning naming it; the others still load. The
failures are kept in :attr:`PluginManager.load_errors`. A loaded plugin that raises in a hook
every plugin answers once at start-up (``vidbridge_register_commands``, through
:meth:`PluginManager.call_each`) is reported the same way (:attr:`PluginManager.hook_errors`,
the ``error`` of its :class:`PluginInfo`), and the other plugins' calls still happen.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pluggy

from . import hookspecs
from .errors import PluginError, VidbridgeError

__all__ = ["PluginManager", "PluginInfo", "get_plugin_manager", "ENTRY_POINT_GROUP", "LOAD_PLUGINS_ENV"]

log = logging.getLogger("vidbridge.manager")

ENTRY_POINT_GROUP = "vidbridge"
LOAD_PLUGINS_ENV = "VIDBRIDGE_LOAD_PLUGINS"
_BUILTIN_DISTRIBUTION = "vidbridge"
#: Hooks that every plugin answers; all others are routed to one owner.
_BROADCAST_HOOKS = {"vidbridge_discover", "vidbridge_register_commands", "vidbridge_embedded_backend"}


@dataclass(frozen=True)
class PluginInfo:
    """What ``vidbridge plugins`` shows: name, distribution, version, hooks, built-in or not."""

    name: str
    hooks: tuple[str, ...]
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False
    error: str | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "hooks": list(self.hooks),
            **({"error": self.error} if self.error else {}),
        }


class PluginManager(pluggy.PluginManager):
    """A :class:`pluggy.PluginManager` that knows plugin metadata and routes calls by owner."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.load_errors: dict[str, PluginError] = {}
        #: Errors of loaded plugins in hooks called through :meth:`call_each`, by plugin name.
        self.hook_errors: dict[str, list[PluginError]] = {}
        self._metadata: dict[str, tuple[str | None, str | None, bool]] = {}

    # -- loading ----------------------------------------------------------------------------------

    def load_entry_points(self, selection: str | None = None) -> None:
        """Load plugins from the ``vidbridge`` entry-point group, filtered by ``selection``.

        ``selection`` has the syntax of ``VIDBRIDGE_LOAD_PLUGINS`` (``None``: everything).
        """
        wanted = None if selection is None else {name.strip() for name in selection.split(",") if name.strip()}
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            distribution = entry_point.dist.name if entry_point.dist else None
            builtin = distribution == _BUILTIN_DISTRIBUTION
            if wanted is not None and not builtin and entry_point.name not in wanted:
                continue
            if self.has_plugin(entry_point.name) or self.is_blocked(entry_point.name):
                continue
            version = entry_point.dist.version if entry_point.dist else None
            self._metadata[entry_point.name] = (distribution, version, builtin)
            try:
                plugin = entry_point.load()
                self.register(plugin, name=entry_point.name)
                self._check_known_hooks(entry_point.name)
            except Exception as exc:  # a broken plugin must not take the others down
                if self.has_plugin(entry_point.name):
                    self.unregister(name=entry_point.name)
                error = PluginError(
                    f"plugin {entry_point.name!r} ({entry_point.value}) failed to load: {type(exc).__name__}: {exc}",
                    plugin=entry_point.name,
                )
                self.load_errors[entry_point.name] = error
                log.warning("%s", error.message)
                continue
        self.check_pending()

    def _check_known_hooks(self, name: str) -> None:
        """Raise :class:`pluggy.PluginValidationError` if plugin ``name`` implements an unknown hook.

        ``check_pending()`` checks every plugin at once, so one plugin with a misspelt hook would
        stop all of them from loading; checking each entry point as it loads isolates it.
        """
        plugin = self.get_plugin(name)
        for caller in self.get_hookcallers(plugin) or ():
            if caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and not impl.optionalhook:
                    raise pluggy.PluginValidationError(plugin, f"unknown hook {caller.name!r} in plugin {name!r}")

    # -- introspection ----------------------------------------------------------------------------

    def plugin_infos(self) -> list[PluginInfo]:
        """Every registered plugin (and every one that failed to load), sorted by name."""
        infos = []
        for name, plugin in self.list_name_plugin():
            if plugin is None:
                continue
            hooks = tuple(sorted(caller.name for caller in self.get_hookcallers(plugin) or ()))
            distribution, version, builtin = self._metadata.get(name, (None, None, False))
            failures = self.hook_errors.get(name)
            error = "; ".join(failure.message for failure in failures) if failures else None
            infos.append(PluginInfo(name, hooks, distribution, version, builtin, error=error))
        for name, error in self.load_errors.items():
            distribution, version, builtin = self._metadata.get(name, (None, None, False))
            infos.append(PluginInfo(name, (), distribution, version, builtin, error=error.message))
        return sorted(infos, key=lambda info: info.name)

    def backend_names(self) -> list[str]:
        """Names of the plugins that can open sessions (implement ``vidbridge_connect``)."""
        return [impl.plugin_name for impl in self.hook.vidbridge_connect.get_hookimpls()]

    # -- routing ----------------------------------------------------------------------------------

    def call_owner(self, owner: str, hook_name: str, **kwargs: Any) -> Any:
        """Call ``hook_name`` on plugin ``owner`` only, and return its result.

        Errors from :mod:`vidbridge.errors` pass through; anything else is wrapped in
        :class:`PluginError` naming the plugin. A missing implementation or a ``None`` answer is a
        :class:`PluginError` too.
        """
        if hook_name in _BROADCAST_HOOKS:
            raise ValueError(f"{hook_name} is answered by every plugin; call it through .hook")
        plugin = self.get_plugin(owner)
        if plugin is None:
            raise PluginError(f"no plugin named {owner!r} is loaded (loaded: {self._names()})", plugin=owner)
        others = [other for name, other in self.list_name_plugin() if name != owner and other is not None]
        caller = self.subset_hook_caller(hook_name, remove_plugins=others)
        try:
            result = caller(**kwargs)
        except VidbridgeError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {owner!r} failed in {hook_name}: {type(exc).__name__}: {exc}", plugin=owner) from exc
        if result is None:
            raise PluginError(f"plugin {owner!r} does not implement {hook_name}", plugin=owner)
        return result

    def broadcast(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a hook on every plugin separately; returns ``(plugin name, result)`` pairs.

        A plugin that raises is logged and left out, so one broken plugin cannot hide the others.
        """
        results = []
        for impl in getattr(self.hook, hook_name).get_hookimpls():
            try:
                result = impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception as exc:
                log.warning("plugin %r failed in %s: %s: %s", impl.plugin_name, hook_name, type(exc).__name__, exc)
                continue
            results.append((impl.plugin_name, result))
        return results

    def call_each(
        self,
        hook_name: str,
        *,
        checkpoint: Callable[[], Callable[[], None]] | None = None,
        **kwargs: Any,
    ) -> list[tuple[str, Any]]:
        """Call a hook on every plugin separately, isolating failures; ``(plugin name, result)`` pairs.

        A plugin that raises is left out and its error is kept in :attr:`hook_errors` (shown by
        :meth:`plugin_infos`, so ``vidbridge plugins`` reports it like a load error); the other
        plugins are still called.

        :param checkpoint: called before each plugin's call; it returns a function that undoes
            what a failing call left half done (e.g. command parsers a plugin added before raising).
        """
        results = []
        for impl in getattr(self.hook, hook_name).get_hookimpls():
            undo = checkpoint() if checkpoint is not None else None
            try:
                result = impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception as exc:  # one broken plugin must not take the command line down
                if undo is not None:
                    undo()
                error = PluginError(
                    f"plugin {impl.plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {exc}",
                    plugin=impl.plugin_name,
                )
                self.hook_errors.setdefault(impl.plugin_name, []).append(error)
                log.warning("%s", error.message)
                continue
            results.append((impl.plugin_name, result))
        return results

    def _names(self) -> str:
        return ", ".join(sorted(name for name, plugin in self.list_name_plugin() if plugin is not None)) or "none"


def get_plugin_manager(*, load_entry_points: bool = True, plugins: Iterable[tuple[str, object]] = ()) -> PluginManager:
    """Build a plugin manager with the vidbridge hookspecs and the installed plugins.

    :param load_entry_points: load the ``vidbridge`` entry-point group (filtered by
        ``VIDBRIDGE_LOAD_PLUGINS``).
    :param plugins: extra ``(name, plugin)`` pairs to register, e.g. test plugins.
    """
    manager = PluginManager()
    for name, plugin in plugins:
        manager.register(plugin, name=name)
    if load_entry_points:
        manager.load_entry_points(os.environ.get(LOAD_PLUGINS_ENV))
    return manager
