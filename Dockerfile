# syntax=docker/dockerfile:1
# One image, two commands: `stageflow api` (the default) and `stageflow operator`.
# It is also the default image of Job tasks (`stageflow task run NAME --params JSON`).

# --- build: wheels for stageflow and everything it depends on --------------------------
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m pip install --no-cache-dir --upgrade pip
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY api ./api
COPY operator ./operator
COPY store ./store
COPY kube ./kube
COPY stageflow ./stageflow
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels .

# --- runtime: no compilers, no build tools, a numeric non-root user ----------------------
FROM python:3.11-slim
ARG UID=10001
RUN groupadd --system --gid "${UID}" stageflow \
 && useradd --system --uid "${UID}" --gid "${UID}" --no-create-home --shell /usr/sbin/nologin stageflow
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-index --find-links=/wheels stageflow \
 && rm -rf /wheels
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
