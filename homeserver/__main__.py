"""Command-line entry point of the homeserver (`python -m homeserver`)."""

import sys


def main(argv: list[str] | None = None) -> int:
    print(
        "guildhall homeserver: not implemented until the homeserver lands "
        "(the Client-Server API issue)",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
