# The NVR as a container image, from binaries built on the host (cargo build --release) for the
# same Debian release as BASE (bookworm: FFmpeg 5.1's libraries).
#   cargo build --release && podman build --format docker -t nvr .      (or docker build -t nvr .)
# BASE: the official debian:bookworm-slim by default; the tests build on a local debootstrap image.
ARG BASE=debian:bookworm-slim
FROM ${BASE}

# The FFmpeg libraries the worker links, and curl for the health check.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libavcodec59 libavformat59 libavutil57 libswscale6 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# Non-root: recordings and the index belong to this user.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/nvr --create-home nvr \
 && mkdir -p /etc/nvr /var/lib/nvr/recordings && chown nvr:nvr /var/lib/nvr/recordings

COPY target/release/supervisor target/release/worker target/release/nvr-preview /usr/lib/nvr/
COPY deploy/cameras.example.json /etc/nvr/cameras.json

USER nvr
WORKDIR /var/lib/nvr
ENV NVR_CONFIG=/etc/nvr/cameras.json \
    NVR_LOG_FORMAT=json
VOLUME ["/var/lib/nvr"]
EXPOSE 5001
# /health is liveness: 200 while the supervisor runs (a camera down does not restart the container;
# /ready judges the cameras). NVR_HEALTH_URL follows a changed port.
ENV NVR_HEALTH_URL=http://127.0.0.1:5001/health
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD curl -fsS -o /dev/null "$NVR_HEALTH_URL" || exit 1
ENTRYPOINT ["/usr/lib/nvr/supervisor"]
