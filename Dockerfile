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
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /srv/pma-sso pma-sso
COPY --from=build /out/pma-sso /out/pma-sso-worker /usr/local/bin/
USER pma-sso
WORKDIR /srv/pma-sso
CMD ["pma-sso", "serve"]
