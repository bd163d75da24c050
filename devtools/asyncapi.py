"""Write the AsyncAPI document of the topics as the settings in effect configure them: what the
producer serves at /asyncapi.json under the same settings.

`python -m devtools.asyncapi [--output FILE]` writes it to FILE, or to stdout. The settings are
read as the services read them (settings.toml, .secrets.toml, BIOMETRICS_* variables); exit 2
when they are invalid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shared.contracts.asyncapi import asyncapi_json
from shared.runtime.settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    """Write the document where the command line says."""
    parser = argparse.ArgumentParser(prog="python -m devtools.asyncapi", description=__doc__)
    parser.add_argument("--output", type=Path, help="write the document here (default: stdout)")
    arguments = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"asyncapi: {error}", file=sys.stderr)
        return 2
    document = asyncapi_json(settings)
    if arguments.output is None:
        sys.stdout.buffer.write(document)
    else:
        arguments.output.write_bytes(document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
