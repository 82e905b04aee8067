"""``python -m coreaug`` — the ``coreaug`` command (same parser, messages and exit codes)."""

import sys

from coreaug.cli import main

if __name__ == "__main__":
    sys.exit(main())
