"""`python -m notiflows_deploy MODE ...`."""

from notiflows_deploy.cli import main

raise SystemExit(main())
