"""`python -m devtools.stripe_emulator [--port N] [--host H] [--webhooks http|manual]
[--state-file PATH]`."""

from __future__ import annotations

import argparse
import contextlib
import logging

from .emulator import Emulator, default_port, default_state_file


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.stripe_emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port())
    parser.add_argument("--webhooks", choices=("http", "manual"), default="http")
    parser.add_argument(
        "--state-file",
        default=default_state_file(),
        help="JSON file the state is loaded from and saved to after every change "
        "(default: $STRIPE_EMULATOR_STATE_FILE; none: memory only)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    emulator = Emulator(
        host=args.host, port=args.port, webhook_mode=args.webhooks, state_file=args.state_file
    )
    saved = f", state in {args.state_file}" if args.state_file else ""
    print(
        f"Stripe emulator on http://{args.host}:{args.port} (any sk_test_ key{saved})", flush=True
    )
    with contextlib.suppress(KeyboardInterrupt):
        emulator.serve_forever()


if __name__ == "__main__":
    main()
