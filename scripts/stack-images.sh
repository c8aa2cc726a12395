#!/usr/bin/env bash
# The images the stack test needs, made without any registry: a Debian bookworm base image
# (scripts/debian-base-image.sh), pma-sso's image from the Dockerfile's `host-built` stage
# (binaries from the host's target/debug: run `cargo build` or `cargo test --no-run` first),
# and the test-only images of .ci/stack/Dockerfile. Builds again only what changed.
#
#   bash scripts/stack-images.sh          # prints nothing but the images' sizes
set -euo pipefail
cd "$(dirname "$0")/.."
base=pma-sso-base/debian:bookworm
bash scripts/debian-base-image.sh "$base"

# Debian's docker CLI builds with BuildKit (RUN --mount, unused stages skipped); a docker CLI
# that wants the buildx plugin (e.g. /usr/local/bin/docker) may not have it.
docker=docker
if [ -x /usr/bin/docker ]; then docker=/usr/bin/docker; fi
build() { DOCKER_BUILDKIT=1 "$docker" build -q "$@" >/dev/null; }

for bin in pma-sso pma-sso-worker platform-sim; do
  [ -x "target/debug/$bin" ] || { echo "target/debug/$bin is missing: build it first (cargo test --workspace --no-run)" >&2; exit 3; }
done
build --build-arg BINARIES=host-built --build-arg RUNTIME_IMAGE="$base" -t pma-sso:ci .
for target in postgres rabbitmq stand-ins exec-recorder; do
  build --build-arg BASE="$base" --target "$target" -t "pma-sso-ci/$target:bookworm" .ci/stack
done
docker image ls --format '# image {{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'pma-sso' >&2 || true
