# syntax=docker/dockerfile:1
# Production image: the API by default (`bpo serve`); the same image runs `bpo worker` and
# `bpo migrate`. Services come from BPO_DATABASE_URL / BPO_BROKER_URL; no embedded stack.

FROM python:3.12-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations
RUN pip install --no-cache-dir .

FROM python:3.12-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 bpo \
    && useradd --system --uid 10001 --gid bpo --home-dir /app --shell /usr/sbin/nologin bpo
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BPO_ENV=production \
    BPO_HOST=0.0.0.0 \
    BPO_PORT=8000
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2)"]
ENTRYPOINT ["bpo"]
CMD ["serve"]
