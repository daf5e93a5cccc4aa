# syntax=docker/dockerfile:1
# Image for `ingest run` (default) and `ingest emulator`. Build: docker build -t ingest:local .

# --- build stage: a virtualenv with the exact runtime versions from requirements.lock --------
FROM python:3.11.13-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.lock ./
# Every runtime dependency ships manylinux wheels, so no compiler is needed (--only-binary
# makes a missing wheel fail the build instead of pulling in build tools). --no-deps + pip check:
# exactly the lock's versions, and a lock missing a dependency fails the build.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps --only-binary=:all: -r requirements.lock \
    && /opt/venv/bin/pip check

# --- final stage: the interpreter, the virtualenv and our sources; no pip cache, no compilers
FROM python:3.11.13-slim-bookworm
# /data is the emulator's data directory; /app/data/spool (dead-letter spool, spool_dir) and
# /app/data/durable (the --durable log) are the producer's: created here so a named volume
# mounted on them inherits the non-root owner.
RUN groupadd --system --gid 10001 ingest \
    && useradd --system --uid 10001 --gid ingest --no-create-home --home-dir /app ingest \
    && mkdir /data \
    && chown 10001:10001 /data \
    && mkdir -p /app/data/spool /app/data/durable \
    && chown -R 10001:10001 /app/data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The package runs from source (PYTHONPATH): no build backend is needed to install it.
COPY ingest/ ./ingest/
COPY config/ ./config/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    INGEST_HTTP_HOST=0.0.0.0 \
    INGEST_HTTP_PORT=8080 \
    INGEST_LOG_FORMAT=json
# Failed records (and, with --durable, accepted ones) must outlive the container.
VOLUME ["/app/data/spool", "/app/data/durable"]
# Numeric ids: Kubernetes' runAsNonRoot can only verify a numeric user.
USER 10001:10001
EXPOSE 8080
# Liveness without curl: the image's own Python asks /healthz (any error or non-200 -> exit 1).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('INGEST_HTTP_PORT', '8080') + '/healthz', timeout=4)"]
# Exec form: python itself is PID 1 (no shell in between), so SIGTERM reaches the drain.
ENTRYPOINT ["python", "-m", "ingest"]
CMD ["run"]
