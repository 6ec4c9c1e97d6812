# One image for the portal and every daemon; the command chooses (deploy/entrypoint.sh):
#   portal | scheduler | executor | eventor | migrate | multiflexi <args>
# Build offline from wheels made on the build host (`make image` does both steps):
#   pip wheel --wheel-dir build/wheels -r build/requirements.txt
#   docker build -t multiflexi:latest .
# BASE_IMAGE is any Debian-like image with python3 (>= 3.11) and its venv module; the default
# is the official one; without a registry, import a debootstrap root filesystem (docs/deploy.md).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# libmagic tells artifact types apart; fetched only when the base image lacks it.
RUN if ! ls /usr/lib/*/libmagic.so.1 >/dev/null 2>&1; then \
        apt-get update && apt-get install -y --no-install-recommends libmagic1 \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && groupadd --system --gid 10001 multiflexi \
    && useradd --system --uid 10001 --gid multiflexi --home-dir /var/lib/multiflexi multiflexi \
    && mkdir -p /var/lib/multiflexi/tmp /var/lib/multiflexi/artifacts \
    && chown -R multiflexi:multiflexi /var/lib/multiflexi && chmod 0700 /var/lib/multiflexi

COPY build/requirements.txt /tmp/requirements.txt
COPY build/wheels /tmp/wheels
RUN python3 -m venv /opt/multiflexi/.venv \
    && /opt/multiflexi/.venv/bin/pip install --no-index --find-links /tmp/wheels \
        -r /tmp/requirements.txt \
    && rm -rf /tmp/wheels /root/.cache

WORKDIR /opt/multiflexi
COPY app.py pyproject.toml ./
COPY multiflexi_web ./multiflexi_web
COPY daemons ./daemons
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY deploy/entrypoint.sh /usr/local/bin/multiflexi-entrypoint

# The container is the job's sandbox: jobs run as the daemon's own unprivileged user.
ENV PATH=/opt/multiflexi/.venv/bin:$PATH \
    PYTHONPATH=/opt/multiflexi \
    PYTHONUNBUFFERED=1 \
    MULTIFLEXI_ENV_FILE=/nonexistent \
    MULTIFLEXI_LOCAL_ENV=/nonexistent \
    MULTIFLEXI_JOB_USER=daemon \
    MULTIFLEXI_TMP=/var/lib/multiflexi/tmp \
    MULTIFLEXI_ARTIFACT_DIR=/var/lib/multiflexi/artifacts \
    MULTIFLEXI_WEB_BIND=0.0.0.0:8000 \
    MULTIFLEXI_WEB_WORKERS=2
USER multiflexi
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/multiflexi-entrypoint"]
CMD ["portal"]
