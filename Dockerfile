# Two binaries, one image: `pma-sso` (CLI + serve) and `pma-sso-worker`.
#
# Users build from source (the default `BINARIES=from-source`), on the official images below.
# Machines that cannot pull images nor download a Rust toolchain (CI here) pass local base
# images and binaries compiled on a Debian bookworm host:
#   DOCKER_BUILDKIT=1 docker build --build-arg BINARIES=host-built \
#     --build-arg RUNTIME_IMAGE=<local bookworm image> .
# (Debian's docker 20.10 needs DOCKER_BUILDKIT=1 for `RUN --mount`.)
#
# RUST_IMAGE's version is the workspace's `rust-version`, the newest any locked crate declares
# (sqlx 0.9 wants 1.94): `cargo test -p producer --test it compose::` fails when they part.
ARG RUST_IMAGE=docker.io/library/rust:1.94-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim
ARG BINARIES=from-source

FROM ${RUST_IMAGE} AS from-source
WORKDIR /src
COPY . .
# rustls only: no OpenSSL needed at build or run time.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p producer -p worker \
 && install -D target/release/pma-sso target/release/pma-sso-worker -t /out

# Binaries compiled on the host (`cargo build`, or CI's `cargo test --workspace --no-run`); the
# host must be Debian bookworm (or have an older glibc) for them to run in the image below.
FROM ${RUNTIME_IMAGE} AS host-built
ARG HOST_BIN_DIR=target/debug
COPY ${HOST_BIN_DIR}/pma-sso ${HOST_BIN_DIR}/pma-sso-worker /out/

FROM ${BINARIES} AS build

FROM ${RUNTIME_IMAGE}
# git: a job from a git hook reads the manifest as committed from the mounted project's .git
# (owned by the host user, hence safe.directory).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl git \
 && rm -rf /var/lib/apt/lists/* \
 && git config --system --add safe.directory '*' \
 && useradd --system --uid 10001 --home-dir /srv/pma-sso pma-sso
COPY --from=build /out/pma-sso /out/pma-sso-worker /usr/local/bin/
USER pma-sso
WORKDIR /srv/pma-sso
CMD ["pma-sso", "serve"]
