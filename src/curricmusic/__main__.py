"""``python -m curricmusic`` (and ``accelerate launch -m curricmusic``) runs the CLI."""

from curricmusic.cli import main

if __name__ == "__main__":
    main()
