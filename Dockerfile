# syntax=docker/dockerfile:1
# One image, two commands: `stageflow api` (the default) and `stageflow operator`.
# It is also the default image of Job tasks (`stageflow task run NAME --params JSON`).

# --- build: the locked wheels (hashes checked) and stageflow's own wheel -----------------
FROM python:3.11-slim AS build
WORKDIR /src
# The lock first: this layer and the next are rebuilt only when the lock changes.
COPY requirements/runtime.txt requirements/build.txt ./requirements/
# Exactly the pinned files of the runtime lock, each checked against its hash, as wheels (no
# sdist is built here, so what is installed below is byte for byte what was locked).
RUN python -m pip download --no-cache-dir --require-hashes --no-deps --only-binary=:all: \
        --dest /wheels -r requirements/runtime.txt \
 && python -m pip install --no-cache-dir --require-hashes --no-deps -r requirements/build.txt
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY api ./api
COPY operator ./operator
COPY store ./store
COPY kube ./kube
COPY stageflow ./stageflow
# Built with the locked setuptools (no isolated build environment resolving its own).
RUN python -m pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /dist .

# --- runtime: no compilers, no build tools, a numeric non-root user ----------------------
FROM python:3.11-slim
ARG UID=10001
RUN groupadd --system --gid "${UID}" stageflow \
 && useradd --system --uid "${UID}" --gid "${UID}" --no-create-home --shell /usr/sbin/nologin stageflow
COPY requirements/runtime.txt /tmp/runtime.txt
COPY --from=build /wheels /wheels
COPY --from=build /dist /dist
# Offline, hashes checked again: the image holds the runtime lock and nothing else.
# `pip check` fails the build if the lock misses a dependency (everything is --no-deps).
RUN python -m pip install --no-cache-dir --no-index --find-links=/wheels --require-hashes \
        --no-deps -r /tmp/runtime.txt \
 && python -m pip install --no-cache-dir --no-index --no-deps /dist/stageflow-*.whl \
 && python -m pip check \
 && rm -rf /wheels /dist /tmp/runtime.txt
# The image listens on every interface, so it must name an auth mode (the API refuses to
# serve a non-loopback address without one): `kubernetes`, like its backend. A container
# started with no further settings then lets in only callers with a Kubernetes token that
# RBAC allows, never everyone who reaches the port; `-e STAGEFLOW_AUTH_MODE=none` is an
# explicit choice to turn that off.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STAGEFLOW_BACKEND=kubernetes \
    STAGEFLOW_AUTH_MODE=kubernetes \
    STAGEFLOW_HOST=0.0.0.0 \
    STAGEFLOW_PORT=8080
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["stageflow"]
CMD ["api"]
