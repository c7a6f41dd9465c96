# One image for the engine CLI (`baselinr`), the operator (`baselinr-operator`) and
# the wait step of the Helm hook (`baselinr-schema wait`).
# Build: docker build -t baselinr:0.1.0 .
# Stage 1 builds wheels for the project and every dependency (database drivers
# included); stage 2 installs them without compilers, caches or pip's wheel dir.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY baselinr ./baselinr
COPY baselinr_operator ./baselinr_operator
# constraints.txt: the versions the test suite runs (see there).
RUN pip wheel --wheel-dir /wheels --constraint constraints.txt ".[operator,snowflake,s3,tracing]"

FROM python:3.11-slim-bookworm
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="baselinr" \
      org.opencontainers.image.description="Schema migrations, backups and a Kubernetes operator for Baselinr's storage tables"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "baselinr[operator,snowflake,s3,tracing]==${VERSION}" \
    && groupadd --gid 10001 baselinr \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin baselinr
USER 10001:10001
WORKDIR /tmp
# Jobs run `baselinr job ...`; the operator Deployment overrides the command
# with `baselinr-operator` and probes its /healthz endpoint; the Helm hook Job
# runs `baselinr-schema wait`. Kubernetes probes fit these better than a
# HEALTHCHECK: most containers of this image are short-lived commands.
HEALTHCHECK NONE
ENTRYPOINT ["baselinr"]
CMD ["--help"]
