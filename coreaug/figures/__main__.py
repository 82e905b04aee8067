"""``python -m coreaug.figures --out figures/`` (same as ``coreaug figures``)."""

import argparse
import sys

from coreaug.commands.figures import add_arguments, run

parser = argparse.ArgumentParser(prog="python -m coreaug.figures", description=__doc__)
add_arguments(parser)
sys.exit(run(parser.parse_args()))
