"""`python -m homeserver`: generate-config, run, register-user (and run-dev for `make run`)."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import config as config_module

logger = logging.getLogger("homeserver")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m homeserver",
                                     description="The Guildhall Matrix homeserver")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate-config", help="write DIR/homeserver.yaml with a new key")
    gen.add_argument("--server-name", required=True)
    gen.add_argument("--data-dir", required=True, type=Path)
    gen.add_argument("--client-listen", default="127.0.0.1:8008")
    gen.add_argument("--federation-listen", default=None)
    gen.add_argument("--database", default=None, help="sqlite:///PATH or postgresql://...")
    gen.add_argument("--enable-registration", action="store_true")
    gen.add_argument("--disable-rate-limits", action="store_true")
    gen.add_argument("--default-room-version", default="12")
    gen.add_argument("--turn-uri", action="append", default=[], dest="turn_uris",
                     help="a TURN URI offered to clients (repeatable), e.g. "
                          "turn:turn.example.org:3478?transport=udp")
    gen.add_argument("--turn-shared-secret", default=None,
                     help="coturn's static-auth-secret (use-auth-secret)")
    gen.add_argument("--tls-cert", type=Path, default=None,
                     help="the federation listener's certificate (PEM, chain after it); "
                          "a self-signed one is generated when omitted")
    gen.add_argument("--tls-key", type=Path, default=None, help="its private key (PEM)")
    gen.add_argument("--federation-ca", type=Path, default=None,
                     help="a CA file trusted (besides the system's) for outgoing federation")
    gen.add_argument("--federation-insecure", action="store_true",
                     help="do not verify other servers' certificates (local testing only)")
    run = sub.add_parser("run", help="run the homeserver")
    run.add_argument("--config", required=True, type=Path)
    rot = sub.add_parser("rotate-signing-key",
                         help="a new signing key; the old one is published as expired "
                              "(restart the server afterwards)")
    rot.add_argument("--config", required=True, type=Path)
    reg = sub.add_parser("register-user", help="create an account")
    reg.add_argument("--config", required=True, type=Path)
    reg.add_argument("user")
    reg.add_argument("--password", default=None, help="prompted for when omitted")
    reg.add_argument("--admin", action="store_true")
    dev = sub.add_parser("run-dev", help="generate a local config on first run, then run")
    dev.add_argument("--data-dir", type=Path, default=Path("data"))
    return parser


def _run(config_path: Path) -> int:
    from . import config as config_module
    from .memory import leave_tls_unloaded, limit_malloc_arenas

    limit_malloc_arenas()  # before any thread starts
    cfg = config_module.load(config_path)
    if cfg.federation_listen is None:
        leave_tls_unloaded()  # before the reactor, which would load pyOpenSSL
    from twisted.internet import reactor

    from .app import build
    from .gc_tuning import tune_for_server
    from .logsetup import setup

    setup(cfg.log_level)
    federation_tls = _federation_tls(cfg)
    hs = build(cfg, reactor)
    listener = cfg.client_listen
    reactor.listenTCP(listener.port, hs.site, interface=listener.host)  # type: ignore[attr-defined]
    logger.info("server_name=%s client_api=http://%s database=%s", cfg.server_name, listener,
                cfg.database_url.split("@")[-1])
    if hs.federation_site is not None and cfg.federation_listen is not None:
        reactor.listenSSL(cfg.federation_listen.port, hs.federation_site,  # type: ignore[attr-defined]
                          federation_tls, interface=cfg.federation_listen.host)
        logger.info("federation_api=https://%s", cfg.federation_listen)
    tune_for_server()
    profile_path = os.environ.get("GUILDHALL_PROFILE")
    if profile_path:  # a development aid: cProfile the whole run, dumped at shutdown
        import cProfile

        cProfile.runctx("reactor.run()", globals(), {"reactor": reactor},
                        profile_path.replace("{pid}", str(os.getpid())))
    else:
        reactor.run()  # type: ignore[attr-defined]
    logger.info("stopped cleanly")
    return 0


def _federation_tls(cfg: config_module.Config) -> object:
    """The federation listener's TLS options (it listens with TLS only), or
    None without federation; checked before anything starts."""
    if cfg.federation_listen is None:
        return None
    from . import config as config_module
    from .tls import server_tls_options  # pyOpenSSL: loaded only for federation

    if cfg.tls_certificate_path is None or cfg.tls_private_key_path is None:
        raise config_module.ConfigError(
            "federation_listen needs tls_certificate_path and tls_private_key_path")
    try:
        return server_tls_options(cfg.tls_certificate_path, cfg.tls_private_key_path)
    except (OSError, ValueError) as exc:
        raise config_module.ConfigError(f"cannot load the TLS certificate: {exc}") from exc


def _register_user(args: argparse.Namespace) -> int:
    from twisted.internet import defer, task

    from . import config as config_module
    from .app import build

    cfg = config_module.load(args.config)
    password = args.password or getpass.getpass(f"Password for {args.user}: ")

    async def go(reactor: object) -> None:
        hs = build(cfg, reactor)
        try:
            user_id = await hs.accounts.register_from_shell(args.user, password, args.admin)
            print(user_id)
        finally:
            hs.db.stop()

    def main(reactor: object) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(go(reactor))

    try:
        task.react(main)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    if args.command in ("run", "run-dev"):
        from .memory import reexec_optimised, use_builtin_hashes

        reexec_optimised(argv)  # returns only when already optimised
        use_builtin_hashes()  # before the configuration, whose signing key imports hashlib
    from . import config as config_module

    try:
        if args.command == "generate-config":
            path = config_module.generate(
                server_name=args.server_name, data_dir=args.data_dir,
                client_listen=args.client_listen, federation_listen=args.federation_listen,
                database=args.database, enable_registration=args.enable_registration,
                disable_rate_limits=args.disable_rate_limits,
                default_room_version=args.default_room_version,
                turn_uris=args.turn_uris, turn_shared_secret=args.turn_shared_secret,
                tls_cert=args.tls_cert, tls_key=args.tls_key,
                federation_ca=args.federation_ca,
                federation_insecure=args.federation_insecure)
            print(path)
            return 0
        if args.command == "run":
            return _run(args.config)
        if args.command == "register-user":
            return _register_user(args)
        if args.command == "rotate-signing-key":
            from .key_rotation import rotate_signing_key

            print(rotate_signing_key(args.config))
            return 0
        if args.command == "run-dev":
            path = args.data_dir / "homeserver.yaml"
            if not path.exists():
                config_module.generate(server_name="localhost", data_dir=args.data_dir,
                                       client_listen="127.0.0.1:8008", enable_registration=True)
                print(f"generated {path}", file=sys.stderr)
            return _run(path)
    except config_module.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
