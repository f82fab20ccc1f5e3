# kilnwatch as a container (deploy/compose.yml builds it). State lives in /var/lib/kilnwatch.
# The demo extra lets `kilnwatch run` without --config show the simulated demo plant.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY analytics ./analytics
COPY api ./api
COPY collector ./collector
COPY kilnwatch ./kilnwatch
COPY simulators ./simulators
RUN python -m venv /opt/kilnwatch \
    && /opt/kilnwatch/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/kilnwatch/bin/pip install --no-cache-dir ".[demo]"

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/kilnwatch --shell /usr/sbin/nologin kilnwatch
COPY --from=build /opt/kilnwatch /opt/kilnwatch
ENV PATH=/opt/kilnwatch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    KILNWATCH_DATA_DIR=/var/lib/kilnwatch
USER kilnwatch
WORKDIR /var/lib/kilnwatch
VOLUME ["/var/lib/kilnwatch"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"]
ENTRYPOINT ["kilnwatch"]
CMD ["run", "--host", "0.0.0.0"]
