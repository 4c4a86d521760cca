"""vidbridge plugin registration of the mock backend (hook implementations: wired by the core team).

Everything the hooks need already exists: :class:`.server.MockServer` /
:class:`.server.SubprocessMockServer` to run a server, and :func:`.cli.add_arguments` /
:func:`.cli.serve` for a ``vidbridge mock-server`` command. This is the only module of the
package allowed to import the vidbridge core (the server side must run with gradio alone).
"""

from __future__ import annotations

from .cli import add_arguments, build_arg_parser, serve

__all__ = ["add_arguments", "build_arg_parser", "serve"]
