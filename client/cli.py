"""`python -m client ...`: the command-line client.

Subcommands live in their own modules (`COMMAND_MODULES`), each with
`add_commands(subparsers)`; a module registers a command with `add_command()`,
which gives it the common options and an `async def handler(args) -> int`.
`session_client(args)` turns those options into a logged-in `MatrixClient`
(per-command credentials, else the stored session); every client it made is
closed when the command ends, and per-command logins are logged out again.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from client.sdk.client import MatrixClient
from client.sdk.errors import MatrixClientError
from client.sdk.session import Session, config_dir, load_session

Handler = Callable[[argparse.Namespace], Awaitable[int | None]]

# Modules that add subcommands; a missing optional module is skipped.
COMMAND_MODULES = ("client.cli_chat", "client.cli_calls")


class CliError(Exception):
    """A failure to report as one line on stderr with a non-zero exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def common_options() -> argparse.ArgumentParser:
    """The options every subcommand takes (a parent parser)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("session")
    group.add_argument("--homeserver", metavar="URL",
                       help="homeserver base URL (default: the stored session's, or "
                            ".well-known discovery from a full --user ID)")
    group.add_argument("--user", metavar="USER", help="user ID or localpart")
    group.add_argument("--password", metavar="PASSWORD",
                       help="log in for this command only (the stored session is untouched)")
    group.add_argument("--config-dir", metavar="DIR",
                       help="where session.json lives (default: $GUILDHALL_CONFIG_DIR, "
                            "else $XDG_CONFIG_HOME/guildhall)")
    group.add_argument("--no-stream", action="store_true",
                       help="follow with /sync long-polls instead of the WebSocket stream")
    parent.add_argument("--json", action="store_true", help="machine-readable output")
    parent.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    return parent


_COMMON = common_options()


def add_command(subparsers: Any, name: str, handler: Handler, help: str,
                **kwargs: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=help, parents=[_COMMON], **kwargs)
    parser.set_defaults(handler=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m client",
                                     description="Guildhall command-line client")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.add_commands(subparsers)
    return parser


# Sessions -------------------------------------------------------------------------------

_open_clients: list[tuple[MatrixClient, bool]] = []


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"use_stream": not getattr(args, "no_stream", False)}


async def session_client(args: argparse.Namespace) -> MatrixClient:
    """A logged-in client: `--user` + `--password` log in for this command, else the
    stored session (from `--config-dir`). Closed by `main` when the command ends."""
    if args.password is not None:
        if not args.user:
            raise CliError("--password needs --user")
        client = await MatrixClient.login(args.homeserver, args.user, args.password,
                                          device_name="guildhall-cli", **client_options(args))
        _open_clients.append((client, True))
        return client
    session = stored_session(args)
    client = MatrixClient.restore(session, **client_options(args))
    _open_clients.append((client, False))
    return client


def stored_session(args: argparse.Namespace) -> Session:
    session = load_session(config_dir(args.config_dir))
    if args.user and args.user not in (session.user_id, session.user_id[1:].split(":")[0]):
        raise CliError(f"the stored session is for {session.user_id}, not {args.user}; "
                       "pass --password to log in as another user")
    if args.homeserver and args.homeserver.rstrip("/") != session.homeserver_url:
        session = Session(session.user_id, session.device_id, session.access_token,
                          args.homeserver.rstrip("/"))
    return session


async def _close_clients() -> None:
    while _open_clients:
        client, temporary = _open_clients.pop()
        try:
            if temporary:
                await asyncio.wait_for(client.logout(), 10)
        except (TimeoutError, MatrixClientError):
            pass
        finally:
            await client.close()


# Output ---------------------------------------------------------------------------------

def emit(args: argparse.Namespace, text: str, data: Any) -> None:
    """One line of output: `text` for people, or `data` as JSON with --json."""
    line = json.dumps(data, ensure_ascii=False) if args.json else text
    print(line, flush=True)


# Entry point ----------------------------------------------------------------------------

async def _run(args: argparse.Namespace) -> int:
    """The command; SIGTERM ends it like Ctrl-C: cleanly, closing every client."""
    task = asyncio.current_task()
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)
    try:
        return int(await args.handler(args) or 0)
    except asyncio.CancelledError:
        if terminated:
            return 143
        raise
    finally:
        await _close_clients()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except MatrixClientError as exc:
        hint = "; log in again" if exc.errcode == "M_UNKNOWN_TOKEN" else ""
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
