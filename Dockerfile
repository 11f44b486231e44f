# The cyz scheduler image: crawls nightly and sends alerts (docker-compose.yml runs it).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TZ=Asia/Shanghai \
    CYZ_DATA_DIR=/data \
    CYZ_CONFIG_DIR=/config

# Debian's Chromium for sources with `render: browser` (crawler/browser.py); build with
# `--build-arg BROWSER=` for an image without one (such sources then stop the crawl
# with a clear error).
ARG BROWSER=chromium
RUN if [ -n "$BROWSER" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends "$BROWSER" \
        && rm -rf /var/lib/apt/lists/*; \
    fi

WORKDIR /src
COPY . .
RUN pip install . \
    && useradd --create-home --uid 10001 cyz \
    && mkdir -p /data /config \
    && chown cyz:cyz /data

USER cyz
WORKDIR /data
VOLUME ["/data"]
CMD ["cyz", "schedule"]
