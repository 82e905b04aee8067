import sys

from coreaug.cli import main

sys.exit(main())
