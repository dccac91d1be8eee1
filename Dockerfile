# Runs as root on purpose: GitHub requires the default user for container actions (no USER), and
# mounts the workspace over the work directory (no WORKDIR).
FROM python:3.12.8-slim-bookworm

# git: GitPython shells out to it. Versions come from the pinned Debian release of the base image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*

COPY requirements.lock /app/requirements.lock
RUN pip install --no-cache-dir --require-hashes --no-deps -r /app/requirements.lock

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GIT_PYTHON_REFRESH=quiet

COPY notiflows_deploy /app/notiflows_deploy
COPY entrypoint.py /app/entrypoint.py

ENTRYPOINT ["python", "/app/entrypoint.py"]
