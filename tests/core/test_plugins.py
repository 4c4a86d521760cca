"""The plugin manager: loading entry points, VIDBRIDGE_LOAD_PLUGINS, owner routing, error wrapping."""

from __future__ import annotations

import importlib.metadata
import logging
import types

import pytest

import vidbridge
from vidbridge import PluginError, RejectedError, hookimpl
from vidbridge.manager import PluginInfo, get_plugin_manager


# -------------------------------------------------------------------------------------------------
# Fake entry points (importlib.metadata is monkeypatched: the real group holds the built-ins)
# -------------------------------------------------------------------------------------------------


class FakeDist:
    def __init__(self, name: str, version: str = "1.0") -> None:
        self.name = name
        self.version = version


class FakeEntryPoint:
    """Quacks like importlib.metadata.EntryPoint for the manager: name, value, dist, load()."""

    def __init__(self, name: str, plugin: object, distribution: str | None = None) -> None:
        self.name = name
        self.value = f"fake_{name}.plugin"
        self.dist = FakeDist(distribution) if distribution else None
        self._plugin = plugin

    def load(self) -> object:
        if isinstance(self._plugin, BaseException):
            raise self._plugin
        return self._plugin


def backend_module(name: str, calls: list[tuple[str, str]] | None = None) -> types.SimpleNamespace:
    """A plugin object implementing connect and cancel, recording its calls."""
    calls = calls if calls is not None else []

    class Plugin:
        @hookimpl
        def vidbridge_connect(self, endpoint, credentials, options):
            calls.append((name, "connect"))
            return f"session-of-{name}"

        @hookimpl
        def vidbridge_cancel(self, session, handle):
            calls.append((name, "cancel"))
            return vidbridge.CancelResult(server_stopped=True, message=name)

    return Plugin()


@pytest.fixture
def entry_points(monkeypatch):
    """Replace the ``vidbridge`` entry-point group with the list this fixture returns."""
    points: list[FakeEntryPoint] = []

    def fake_entry_points(*, group=None, **kwargs):
        assert group == "vidbridge"
        return list(points)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    monkeypatch.delenv("VIDBRIDGE_LOAD_PLUGINS", raising=False)
    return points


def loaded_names(manager) -> set[str]:
    return {name for name, plugin in manager.list_name_plugin() if plugin is not None}


# -------------------------------------------------------------------------------------------------
# Loading
# -------------------------------------------------------------------------------------------------


def test_broken_plugin_is_isolated_and_named(entry_points, caplog):
    entry_points += [
        FakeEntryPoint("good", backend_module("good"), "vidbridge-good"),
        FakeEntryPoint("broken", ImportError("No module named 'missing_dependency'"), "vidbridge-broken"),
        FakeEntryPoint("also_good", backend_module("also_good"), "vidbridge-also-good"),
    ]
    with caplog.at_level(logging.WARNING):
        manager = get_plugin_manager()
    assert loaded_names(manager) == {"good", "also_good"}
    error = manager.load_errors["broken"]
    assert isinstance(error, PluginError)
    assert error.plugin == "broken"
    assert "broken" in error.message and "missing_dependency" in error.message
    assert "broken" in caplog.text
    info = {info.name: info for info in manager.plugin_infos()}
    assert info["broken"].error == error.message
    assert info["broken"].to_dict()["error"] == error.message
    assert "error" not in info["good"].to_dict()
    assert info["good"].distribution == "vidbridge-good" and info["good"].version == "1.0"


def test_plugin_implementing_an_unknown_hook_does_not_take_the_others_down(entry_points):
    class Typo:
        @hookimpl
        def vidbridge_conect(self, endpoint):  # misspelt hook name
            return None

    entry_points += [
        FakeEntryPoint("good", backend_module("good"), "vidbridge-good"),
        FakeEntryPoint("typo", Typo(), "vidbridge-typo"),
    ]
    manager = get_plugin_manager()
    assert loaded_names(manager) == {"good"}
    assert "vidbridge_conect" in manager.load_errors["typo"].message
    manager.check_pending()


def test_plugin_with_unknown_argument_is_isolated(entry_points):
    class WrongArgs:
        @hookimpl
        def vidbridge_connect(self, endpoint, nonsense):
            return None

    entry_points += [
        FakeEntryPoint("wrong", WrongArgs(), "vidbridge-wrong"),
        FakeEntryPoint("good", backend_module("good"), "vidbridge-good"),
    ]
    manager = get_plugin_manager()
    assert loaded_names(manager) == {"good"}
    assert "nonsense" in manager.load_errors["wrong"].message


@pytest.fixture
def three_plugins(entry_points):
    entry_points += [
        FakeEntryPoint("builtin_one", backend_module("builtin_one"), "vidbridge"),
        FakeEntryPoint("alpha", backend_module("alpha"), "vidbridge-alpha"),
        FakeEntryPoint("beta", backend_module("beta"), "vidbridge-beta"),
    ]
    return entry_points


@pytest.mark.parametrize(
    "selection, expected",
    [
        (None, {"builtin_one", "alpha", "beta"}),  # unset: everything installed
        ("", {"builtin_one"}),  # empty: built-ins only
        ("alpha", {"builtin_one", "alpha"}),
        (" alpha , beta ,", {"builtin_one", "alpha", "beta"}),
        ("gamma", {"builtin_one"}),  # naming an absent plugin is not an error
    ],
)
def test_load_plugins_env_var(three_plugins, monkeypatch, selection, expected):
    if selection is not None:
        monkeypatch.setenv("VIDBRIDGE_LOAD_PLUGINS", selection)
    manager = get_plugin_manager()
    assert loaded_names(manager) == expected
    assert not manager.load_errors
    builtin = {info.name for info in manager.plugin_infos() if info.builtin}
    assert builtin == {"builtin_one"}


def test_no_entry_points_when_asked(three_plugins):
    manager = get_plugin_manager(load_entry_points=False)
    assert loaded_names(manager) == set()


def test_explicit_plugin_wins_over_entry_point_of_same_name(three_plugins):
    mine = backend_module("alpha")
    manager = get_plugin_manager(plugins=[("alpha", mine)])
    assert manager.get_plugin("alpha") is mine
    assert loaded_names(manager) == {"builtin_one", "alpha", "beta"}


def test_blocked_plugin_is_not_loaded(three_plugins):
    manager = get_plugin_manager(load_entry_points=False)
    manager.set_blocked("beta")
    manager.load_entry_points(None)
    assert loaded_names(manager) == {"builtin_one", "alpha"}


def test_plugin_info_lists_hooks_and_backends():
    manager = get_plugin_manager(load_entry_points=False, plugins=[("alpha", backend_module("alpha"))])
    (info,) = manager.plugin_infos()
    assert info == PluginInfo("alpha", ("vidbridge_cancel", "vidbridge_connect"))
    assert info.to_dict() == {"name": "alpha", "distribution": None, "version": None, "builtin": False,
                              "hooks": ["vidbridge_cancel", "vidbridge_connect"]}
    assert manager.backend_names() == ["alpha"]


# -------------------------------------------------------------------------------------------------
# Routing
# -------------------------------------------------------------------------------------------------


def test_call_owner_routes_only_to_the_owner():
    calls: list[tuple[str, str]] = []
    manager = get_plugin_manager(
        load_entry_points=False,
        plugins=[("alpha", backend_module("alpha", calls)), ("beta", backend_module("beta", calls))],
    )
    assert manager.call_owner("beta", "vidbridge_connect", endpoint=None, credentials=None, options=None) == "session-of-beta"
    assert manager.call_owner("alpha", "vidbridge_cancel", session=None, handle=None).message == "alpha"
    assert calls == [("beta", "connect"), ("alpha", "cancel")]


def test_call_owner_unknown_owner_is_a_plugin_error():
    manager = get_plugin_manager(load_entry_points=False, plugins=[("alpha", backend_module("alpha"))])
    with pytest.raises(PluginError, match="no plugin named 'ghost'.*alpha") as caught:
        manager.call_owner("ghost", "vidbridge_cancel", session=None, handle=None)
    assert caught.value.plugin == "ghost"


def test_call_owner_refuses_broadcast_hooks():
    manager = get_plugin_manager(load_entry_points=False)
    with pytest.raises(ValueError, match="every plugin"):
        manager.call_owner("alpha", "vidbridge_discover", options=None)


class Misbehaving:
    @hookimpl
    def vidbridge_connect(self, endpoint, credentials, options):
        raise KeyError("internal detail")

    @hookimpl
    def vidbridge_cancel(self, session, handle):
        return None  # breaks the contract: a CancelResult is required

    @hookimpl
    def vidbridge_submit(self, session, request, job_id):
        raise RejectedError("the backend said no", endpoint="http://x", server_message="no")


def test_foreign_exceptions_are_wrapped_in_plugin_error():
    manager = get_plugin_manager(load_entry_points=False, plugins=[("bad", Misbehaving())])
    with pytest.raises(PluginError, match=r"plugin 'bad' failed in vidbridge_connect: KeyError") as caught:
        manager.call_owner("bad", "vidbridge_connect", endpoint=None, credentials=None, options=None)
    assert caught.value.plugin == "bad"
    assert isinstance(caught.value.__cause__, KeyError)


def test_none_result_is_a_plugin_error():
    manager = get_plugin_manager(load_entry_points=False, plugins=[("bad", Misbehaving())])
    with pytest.raises(PluginError, match="does not implement vidbridge_cancel"):
        manager.call_owner("bad", "vidbridge_cancel", session=None, handle=None)
    with pytest.raises(PluginError, match="does not implement vidbridge_status"):
        manager.call_owner("bad", "vidbridge_status", session=None, handle=None, current=None, wait=0)


def test_vidbridge_errors_pass_through_unwrapped():
    manager = get_plugin_manager(load_entry_points=False, plugins=[("bad", Misbehaving())])
    with pytest.raises(RejectedError) as caught:
        manager.call_owner("bad", "vidbridge_submit", session=None, request=None, job_id="j")
    assert caught.value.server_message == "no"


def test_broadcast_isolates_a_failing_plugin(caplog):
    class Discovers:
        @hookimpl
        def vidbridge_discover(self, options):
            return [vidbridge.Endpoint(url="http://found:1")]

    class Explodes:
        @hookimpl
        def vidbridge_discover(self, options):
            raise RuntimeError("probe crashed")

    manager = get_plugin_manager(load_entry_points=False, plugins=[("ok", Discovers()), ("boom", Explodes())])
    with caplog.at_level(logging.WARNING):
        results = manager.broadcast("vidbridge_discover", options=None)
    assert [name for name, _ in results] == ["ok"]
    assert "boom" in caplog.text and "probe crashed" in caplog.text


# -------------------------------------------------------------------------------------------------
# A plugin that raises in vidbridge_register_commands is reported, not fatal
# -------------------------------------------------------------------------------------------------


class CommandPlugin:
    """Adds one ``NAME`` sub-command printing ``NAME ran``; with ``fail`` it adds the command,
    then raises (a half-done registration)."""

    def __init__(self, name: str, fail: bool = False) -> None:
        self.name = name
        self.fail = fail

    @hookimpl
    def vidbridge_register_commands(self, subparsers):
        command = subparsers.add_parser(self.name, help=f"the {self.name} command")
        command.set_defaults(handler=lambda args: print(f"{self.name} ran") or 0)
        if self.fail:
            raise RuntimeError(f"{self.name} cannot register")

    @hookimpl
    def vidbridge_connect(self, endpoint, credentials, options):
        return f"session-of-{self.name}"


@pytest.fixture
def cli_plugins(vidbridge_plugin_manager, vidbridge_register_plugin, monkeypatch):
    """A good and a broken command plugin on a manager that ``vidbridge.cli.main`` uses."""
    import vidbridge.manager

    vidbridge_register_plugin(CommandPlugin("good-cmd"), name="good")
    vidbridge_register_plugin(CommandPlugin("half-cmd", fail=True), name="broken")
    monkeypatch.setattr(vidbridge.manager, "get_plugin_manager", lambda **kwargs: vidbridge_plugin_manager)
    return vidbridge_plugin_manager


def test_a_plugin_failing_to_register_commands_is_reported_and_the_rest_works(cli_plugins, caplog):
    from vidbridge.cli import build_parser

    with caplog.at_level(logging.WARNING, logger="vidbridge.manager"):
        parser = build_parser(cli_plugins)
    assert "plugin 'broken' failed in vidbridge_register_commands: RuntimeError: half-cmd cannot register" \
        in caplog.text
    commands = next(action for action in parser._actions if action.dest == "command")
    assert "good-cmd" in commands.choices and "generate" in commands.choices
    assert "half-cmd" not in commands.choices  # its half-added command is gone, from --help too
    assert "half-cmd" not in parser.format_help() and "good-cmd" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["half-cmd"])
    by_name = {info.name: info for info in cli_plugins.plugin_infos()}
    assert by_name["good"].error is None
    assert by_name["broken"].error == \
        "plugin 'broken' failed in vidbridge_register_commands: RuntimeError: half-cmd cannot register"
    assert "vidbridge_connect" in by_name["broken"].hooks  # its other hooks still work
    assert cli_plugins.call_owner("broken", "vidbridge_connect", endpoint=None, credentials=None,
                                  options=None) == "session-of-half-cmd"


def test_vidbridge_plugins_shows_the_register_error(cli_plugins, capsys):
    import json

    from vidbridge.cli import main

    assert main(["plugins", "--json"]) == 0
    shown = {item["name"]: item for item in json.loads(capsys.readouterr().out)["plugins"]}
    assert shown["broken"]["error"].startswith("plugin 'broken' failed in vidbridge_register_commands")
    assert "error" not in shown["good"]
    assert main(["plugins"]) == 0
    assert "error: plugin 'broken' failed in vidbridge_register_commands" in capsys.readouterr().out
    assert main(["good-cmd"]) == 0
    assert capsys.readouterr().out == "good-cmd ran\n"


def test_call_each_without_checkpoint_collects_every_error():
    class Raising:
        @hookimpl
        def vidbridge_register_commands(self, subparsers):
            raise ValueError(f"no {subparsers}")

    manager = get_plugin_manager(load_entry_points=False, plugins=[("r", Raising()), ("ok", CommandPlugin("x"))])

    class Subparsers:
        def add_parser(self, name, help=None):
            return types.SimpleNamespace(set_defaults=lambda **kwargs: None)

    answers = manager.call_each("vidbridge_register_commands", subparsers=Subparsers())
    manager.call_each("vidbridge_register_commands", subparsers="again")
    assert [name for name, _ in answers] == ["ok"]
    assert [error.message for error in manager.hook_errors["r"]][-1].endswith("ValueError: no again")
    info = next(info for info in manager.plugin_infos() if info.name == "r")
    assert info.error.count("failed in vidbridge_register_commands") == 2
