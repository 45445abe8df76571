"""chunkctl's command line (Typer). Each command parses options, calls the library, renders."""


def main() -> None:
    from chunkctl.cli.app import main as _main

    _main()
