# Two binaries, one image: `pma-sso` (CLI + serve) and `pma-sso-worker`.
FROM docker.io/library/rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
# rustls only: no OpenSSL needed at build or run time.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p producer -p worker \
 && install -D target/release/pma-sso target/release/pma-sso-worker -t /out

FROM docker.io/library/debian:bookworm-slim
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
