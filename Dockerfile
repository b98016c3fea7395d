# The one image of Conveyor: `conveyor operator`, `conveyor api` and `conveyor worker <name>`
# all run from it. Build: docker build -t conveyor:dev .
#
# The build tools and uv stay in the build stage; the image holds only Python and the
# production environment (no dev group, no extras: the dev stack's libraries are not in it).
# The `sandboxes` target is the kind overlay's SMTP sink and payment sandbox, which come from
# the dev stack: docker build --target sandboxes -t conveyor-sandboxes:dev .
ARG PYTHON_IMAGE=python:3.11-slim
ARG NODE_IMAGE=node:20-slim

# The web storefront and admin console: npm ci from the lock, then vite build into /web/dist.
FROM ${NODE_IMAGE} AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web ./
RUN npm run build

FROM ${PYTHON_IMAGE} AS build
# faust-streaming ships no wheel for arm64 (kind on Apple silicon builds that platform), and
# its source distribution compiles C extensions.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
# The slim image's own Python, never one uv downloads; compiled bytecode because the
# containers run with a read-only root filesystem and could not write it later.
ENV UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/conveyor \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /src
# Dependencies first, in a layer of their own: a code change does not reinstall them.
# --locked: a uv.lock out of step with pyproject.toml fails the build.
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project
COPY README.md ./
COPY conveyor ./conveyor
# Not editable: the environment must not point back into /src, which the final stage lacks.
RUN uv sync --locked --no-dev --no-editable

FROM build AS build-sandboxes
RUN uv sync --locked --no-dev --no-editable --extra devstack

FROM ${PYTHON_IMAGE} AS runtime
# A fixed numeric user, so Kubernetes can verify runAsNonRoot without looking it up.
RUN groupadd --system --gid 10001 conveyor \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin conveyor
ENV PATH=/opt/conveyor/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

FROM runtime AS sandboxes
COPY --from=build-sandboxes /opt/conveyor /opt/conveyor
USER 10001:10001
EXPOSE 1025 8080

# Last, so a plain `docker build` builds the production image.
FROM runtime
COPY --from=build /opt/conveyor /opt/conveyor
# `conveyor api` serves it under / (the package is installed, so the repository's web/dist
# it would look for by default is not there).
COPY --from=web /web/dist /opt/conveyor-web
ENV CONVEYOR_WEB_DIR=/opt/conveyor-web
USER 10001:10001
# The edge; the processors' and the operator's metrics; the operator's liveness probe.
EXPOSE 18000 9100 8080
# `conveyor api` serves with a uvicorn worker per CPU it may run on. A CPU quota
# (docker run --cpus) does not narrow that: set CONVEYOR_API_WORKERS to match it.
ENTRYPOINT ["conveyor"]
CMD ["--help"]
