# Gatehouse container image: built on Debian 12 with the -dev packages scripts/deps.sh lists, run
# on Debian 12 slim with only the runtime libraries. docs/deployment.md says how to run it.
#
#   docker build -t gatehouse .
#   docker run --read-only --tmpfs /tmp -v gatehouse-data:/var/lib/gatehouse -p 8080:8080 gatehouse
#
# The process runs as an unprivileged user (uid 10001) and writes only under
# /var/lib/gatehouse (a volume: the SQLite store and the master key) and /tmp, so the root
# filesystem can be mounted read-only. Mount your own configuration over
# /etc/gatehouse/gatehouse.yaml (a ConfigMap on Kubernetes: deploy/kubernetes/).
# The base images are pinned to a Debian point release; a registry digest may be pinned on top.
ARG DEBIAN_RELEASE=12.11

FROM debian:${DEBIAN_RELEASE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
# The toolchain and the -dev packages first, in a layer of their own (it changes rarely).
COPY scripts/deps.sh scripts/deps.sh
RUN scripts/deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null \
    && cmake --build /build --target gatehouse \
    && install -D -m 0755 -s /build/gatehouse /out/usr/local/bin/gatehouse \
    && install -D -m 0644 deploy/container/gatehouse.yaml /out/etc/gatehouse/gatehouse.yaml

FROM debian:${DEBIAN_RELEASE}-slim
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The libraries the binary links (libh2o, nghttp2, libuv, libcurl, jansson, libfyaml, libsodium,
# OpenSSL, SQLite, libpq, hiredis), CA certificates for outbound TLS, and curl for the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       ca-certificates curl libcurl4 libfyaml0 libh2o0.13 libhiredis0.14 libjansson4 \
       libnghttp2-14 libpq5 libsodium23 libsqlite3-0 libssl3 libuv1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 gatehouse \
    && useradd --system --uid 10001 --gid gatehouse --home-dir /var/lib/gatehouse \
       --no-create-home --shell /usr/sbin/nologin gatehouse \
    && install -d -m 0700 -o gatehouse -g gatehouse /var/lib/gatehouse
COPY --from=build /out/ /
USER 10001:10001
WORKDIR /var/lib/gatehouse
VOLUME ["/var/lib/gatehouse"]
ENV GATEHOUSE_CONFIG=/etc/gatehouse/gatehouse.yaml
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["run"]
