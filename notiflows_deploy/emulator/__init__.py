"""Bundled local emulator of the Notiflows Management API (CONTRACT section 5), stdlib only.

    from notiflows_deploy.emulator import Emulator
    with Emulator(tokens=["nf_at_x"], projects=["demo"]) as emu:
        emu.base_url  # http://127.0.0.1:PORT/management/v1

Defaults: token "nf_at_emulator", project "demo". See cli.py for the command line.
"""

from notiflows_deploy.emulator.cli import main
from notiflows_deploy.emulator.content import content_sha
from notiflows_deploy.emulator.faults import Faults
from notiflows_deploy.emulator.server import DEFAULT_PROJECT, DEFAULT_TOKEN, Emulator
from notiflows_deploy.emulator.store import MEMBER_ACTOR

__all__ = ["DEFAULT_PROJECT", "DEFAULT_TOKEN", "MEMBER_ACTOR", "Emulator", "Faults", "content_sha", "main"]
