"""python -m flashplus <command>: doctor (environment and self-test), bench, demo."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
