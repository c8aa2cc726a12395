# Operator shortcuts. Install just with `pip install rust-just` or `cargo install just`;
# nothing here is required: every recipe is one command you can run by hand.
set shell := ["bash", "-euo", "pipefail", "-c"]

pma_sso := "cargo run --quiet --release --bin pma-sso --"

# List the recipes.
default:
    @just --list

# One line per service: exit 0 all green, 1 drift, 2 error.
sso-check svc="":
    {{pma_sso}} check {{svc}}

# Register a service in authentik and deliver its settings.
sso-add svc:
    {{pma_sso}} add {{svc}}

# Re-apply a service's manifest where anything differs.
sso-fix svc:
    {{pma_sso}} fix {{svc}}

# Re-apply every manifest.
sso-fix-all:
    {{pma_sso}} fix-all

# Stand-ins + a worker, fix-all, then check: the twelve green lines.
demo:
    bash scripts/demo.sh

# The workspace's tests (CI runs `bash .ci/run`).
test:
    cargo test --workspace

# The full crash run: >= 500 jobs while worker processes are SIGKILLed (CI runs 120 and 6).
crash-run jobs="500" kills="20":
    PMA_SSO_CRASH_JOBS={{jobs}} PMA_SSO_CRASH_KILLS={{kills}} cargo test -p worker --test it -- pipeline::crash --nocapture

# Benchmarks: figures, not pass/fail.
bench:
    cargo run --release -p bench

# plan == fix over many generated drifts (CI runs 16 cases).
plan-fix cases="300":
    PMA_SSO_PLAN_CASES={{cases}} cargo test -p worker --test it -- plan_fix
