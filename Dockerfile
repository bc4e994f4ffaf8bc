# NeuroRoute gateway image: the package installed once into a virtualenv, non-root,
# health-checked. `docker compose -f deploy/docker-compose.yml up` builds and runs it.
#
# PYTHON_IMAGE: any Debian-based image with Python 3.11+ and `python3 -m venv` (the official
# image by default; both stages must use the same one, the venv points at its interpreter).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/neuroroute
WORKDIR /src
# The dependencies first, in a layer of their own that a change to the code does not rebuild
# (installed through a placeholder package, removed again right after).
COPY pyproject.toml README.md ./
RUN mkdir app && touch app/__init__.py \
 && /opt/neuroroute/bin/pip install . && /opt/neuroroute/bin/pip uninstall --yes neuroroute \
 && rm -r app build neuroroute.egg-info
# Then the package itself, a regular (non-editable) install: the code and its migrations land
# in the venv's site-packages, and the source tree stays behind in this stage. pip and
# setuptools were only needed to install, so they do not go into the runtime image.
COPY app ./app
RUN /opt/neuroroute/bin/pip install --no-deps . \
 && /opt/neuroroute/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
# NEUROROUTE_CONFIG and NEUROROUTE_DATABASE_URL: the package is installed in site-packages,
# so the defaults (next to the source tree) would point into the venv; here they name the
# image's own folders. Compose sets a PostgreSQL URL; the SQLite file is the fallback for a
# single container (mount a volume on /srv/neuroroute/data to keep it).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/neuroroute/bin:$PATH \
    NEUROROUTE_BIND=0.0.0.0:8000 \
    NEUROROUTE_CONFIG=/srv/neuroroute/config/neuroroute.yaml \
    NEUROROUTE_DATABASE_URL=sqlite:////srv/neuroroute/data/neuroroute.db
RUN useradd --uid 10001 --user-group --home-dir /srv/neuroroute --no-create-home \
      --shell /usr/sbin/nologin neuroroute
COPY --from=build /opt/neuroroute /opt/neuroroute
WORKDIR /srv/neuroroute
# Read-only for the gateway user: the entry points and the default model file.
COPY wsgi.py gunicorn.conf.py ./
COPY config/neuroroute.yaml ./config/
# The image's one folder the gateway writes to (the SQLite fallback; metrics files go to
# /tmp); a named volume mounted here starts with this ownership.
RUN mkdir data && chown neuroroute:neuroroute data
USER neuroroute
EXPOSE 8000
# Liveness only: readiness (/health/ready) is for the load balancer, not for restarting.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status != 200)"]
# NEUROROUTE_MASTER_KEY must be provided at run time; the container refuses to start without
# it. The database must be migrated first (`flask --app wsgi db upgrade`, which compose's
# `migrate` service runs); SIGTERM lets in-flight requests finish (NEUROROUTE_GRACEFUL_TIMEOUT).
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
