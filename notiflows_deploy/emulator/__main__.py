"""`python -m notiflows_deploy.emulator [options]`."""

import sys

from notiflows_deploy.emulator.cli import main

raise SystemExit(main(sys.argv[1:]))
