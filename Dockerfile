# NeuroRoute gateway image: slim, non-root, health-checked.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    NEUROROUTE_BIND=0.0.0.0:8000
RUN useradd --system --uid 10001 --home-dir /srv/neuroroute neuroroute
WORKDIR /srv/neuroroute
COPY --from=build /install /usr/local
COPY --chown=neuroroute wsgi.py gunicorn.conf.py ./
COPY --chown=neuroroute config ./config
COPY --chown=neuroroute app ./app
USER neuroroute
EXPOSE 8000
# Liveness only: readiness (/health/ready) is for the load balancer, not for restarting.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status != 200)"
# NEUROROUTE_MASTER_KEY must be provided at run time; the container refuses to start without it.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
