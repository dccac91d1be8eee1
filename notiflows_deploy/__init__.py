"""notiflows-deploy: deploy Notiflows "notiflows as code" from git, conflict-safe."""

__version__ = "0.1.0"
