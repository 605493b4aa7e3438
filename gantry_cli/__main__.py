import sys

from gantry_cli.cli import main

sys.exit(main())
