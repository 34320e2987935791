"""`python -m kiosk.cli`: the same command as the `kiosk` entry point."""

from kiosk.cli import main

if __name__ == "__main__":
    main()
