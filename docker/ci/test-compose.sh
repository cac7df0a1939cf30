#!/usr/bin/env bash
# `make test-compose`: docker-compose.yml proven with real containers, from a clean state.
#
# Starts a private Docker daemon (docker/ci/dockerd.sh), builds the base images locally
# (docker/ci/base-images.sh; no registry is needed) and the project's images from wheels made
# on the host, brings the stack up with the dev profile and the CI override
# (docker/ci/compose.ci.yml), then checks what an operator relies on: health, the migration,
# an import and a dry run inside the worker, a test edition reaching the mail catcher, a send
# killed mid-way and rerun reaching every subscriber exactly once (through the fake provider
# in its own container), the documented backup restoring, and the web app's /healthz and
# one-click unsubscribe through the published port, and the monitoring profile's Prometheus
# scraping the web app's /metrics with the bearer token. Whatever happens, it ends with
# `down -v` and stops the daemon, leaving no daemon, bridge or iptables rule behind.
#
# Needs root (dockerd, debootstrap, apt-get). Installs docker.io, docker-compose and
# debootstrap when missing. Base images are cached in $NEWSLETTER_DOCKER_CACHE
# (default /var/cache/newsletter-docker); delete it for a cold run.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
CACHE="${NEWSLETTER_DOCKER_CACHE:-/var/cache/newsletter-docker}"
RUN_DIR="${NEWSLETTER_DOCKER_RUN:-/run/newsletter-test-compose}"
PYTHON="${PYTHON:-python3}"
VENV_PYTHON="${VENV_PYTHON:-$repo/.venv/bin/python}"
N="${TEST_COMPOSE_SUBSCRIBERS:-200}"
PROJECT=nltest
SENDER="$PROJECT-sender"
checks() { "$PYTHON" "$repo/docker/ci/checks.py" "$@" | sed 's/^/   /'; return "${PIPESTATUS[0]}"; }
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
unset COMPOSE_FILE COMPOSE_PROFILES COMPOSE_PROJECT_NAME DOCKER_CONTEXT

STARTED=$SECONDS
STEP="setup"
say() { printf '%s\n' "$*"; }
step() { STEP="$1"; say ""; say "== [$((SECONDS - STARTED))s] $1"; }
fail() { say "FAILED ($STEP): $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (it runs its own dockerd); run: sudo make test-compose"

install_missing() {
    local need=()
    command -v dockerd >/dev/null || need+=(docker.io)
    command -v docker-compose >/dev/null || need+=(docker-compose)
    command -v debootstrap >/dev/null || need+=(debootstrap)
    [ ${#need[@]} -eq 0 ] && return 0
    say "installing ${need[*]}"
    # Keep the packages' own service from starting a second, system-wide daemon (with
    # iptables rules) on hosts that have an init system.
    local policy=/usr/sbin/policy-rc.d added=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added=1
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
    local rc=$?
    [ -n "$added" ] && rm -f "$policy"
    return $rc
}

mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock -n 9 || fail "another test-compose run holds $CACHE/lock"
TMP="$(mktemp -d /tmp/newsletter-test-compose.XXXXXX)"
LOG_DIR="$TMP/logs"
mkdir -p "$LOG_DIR" "$TMP/ci"
chmod 755 "$TMP" "$TMP/ci"
# shellcheck source=docker/ci/dockerd.sh
. "$repo/docker/ci/dockerd.sh"

CHECKOUT="$repo"  # where the stack runs from: a readable copy of the checkout, once made
compose() {
    docker-compose --project-name "$PROJECT" --env-file "$TMP/ci.env" \
        -f "$CHECKOUT/docker-compose.yml" -f "$CHECKOUT/docker/ci/compose.ci.yml" "$@"
}
# Naming a profile replaces COMPOSE_PROFILES: whatever must see every service (ps, logs,
# down) names them all.
every_profile=(--profile dev --profile monitoring)
cid() { compose "${every_profile[@]}" ps -q "$1"; }
fake_env=(-e NEWSLETTER_PROVIDER=resend -e NEWSLETTER_PROVIDER_BASE_URL=http://fake:8025
          -e NEWSLETTER_PROVIDER_API_KEY=re_test_compose_key
          -e NEWSLETTER_BATCH_SIZE=10 -e NEWSLETTER_CONCURRENCY=1 -e NEWSLETTER_RETRY_DELAY=1)

cleanup() {
    local rc=$? left=0
    set +e
    trap - INT TERM
    if dockerd_running; then
        if [ $rc -ne 0 ]; then
            say "--- containers and their last log lines" >&2
            compose "${every_profile[@]}" ps >&2
            compose "${every_profile[@]}" logs --no-color --tail=40 >&2
        fi
        docker rm -f "$SENDER" >/dev/null 2>&1
        compose "${every_profile[@]}" down --volumes --remove-orphans --timeout 20 >/dev/null 2>&1 \
            || { say "docker-compose down failed" >&2; rc=1; }
        docker image prune -f >/dev/null 2>&1  # the replaced builds of this run
        dockerd_stop
    fi
    dockerd_leftovers || left=1
    [ $left -eq 0 ] || rc=1
    rm -rf "$TMP"
    find "$repo/docker/wheelhouse" -name '*.whl' -delete
    [ $left -ne 0 ] || rm -rf "$RUN_DIR"
    say ""
    if [ $rc -eq 0 ]; then
        say "test-compose passed in $((SECONDS - STARTED))s"
    else
        say "test-compose FAILED (step: $STEP) after $((SECONDS - STARTED))s" >&2
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Wait for a service's container to report healthy; fail at once if it stops or restarts.
wait_healthy() {
    local service="$1" limit="${2:-120}" id state deadline=$((SECONDS + ${2:-120}))
    while :; do
        id="$(cid "$service")"
        if [ -n "$id" ]; then
            state="$(docker inspect -f '{{.State.Status}} {{.RestartCount}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")"
            case "$state" in
                "running 0 healthy") say "   $service is healthy"; return 0 ;;
                running\ 0\ *) ;;
                *) fail "$service is not running ($state): $(docker logs --tail 5 "$id" 2>&1)" ;;
            esac
        fi
        [ $SECONDS -lt $deadline ] || fail "$service not healthy within ${limit}s ($state); \
last check: $(docker inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$id" | tail -3)"
        sleep 0.5
    done
}

expect_exit() {  # expect_exit STATUS COMMAND...: run it, keep its output in $OUT
    local want="$1" got=0
    shift
    OUT="$("$@" 2>&1)" || got=$?
    [ "$got" = "$want" ] || fail "exit $got, expected $want, from: $* -> $OUT"
}

step "the helpers' own tests; install; validate the compose file (no daemon needed)"
"$VENV_PYTHON" -m pytest -q -p no:cacheprovider docker/ci >"$LOG_DIR/pytest.log" 2>&1 \
    || { cat "$LOG_DIR/pytest.log" >&2; fail "docker/ci tests"; }
say "   $(tail -1 "$LOG_DIR/pytest.log")"
install_missing || fail "could not install docker.io, docker-compose, debootstrap"
sed -e 's/^POSTGRES_PASSWORD=$/POSTGRES_PASSWORD=example/' \
    -e "\$a NEWSLETTER_ENV_FILE=$TMP/example.env" .env.example >"$TMP/example.env"
docker-compose --env-file "$TMP/example.env" -f docker-compose.yml config -q \
    || fail "docker-compose.yml does not validate with .env.example"
printf 'NEWSLETTER_ENV_FILE=%s\n' "$TMP/example.env" >"$TMP/no-password.env"
expect_exit 1 docker-compose --env-file "$TMP/no-password.env" -f docker-compose.yml config -q
case "$OUT" in *"set POSTGRES_PASSWORD in .env"*) ;; *) fail "unclear error: $OUT" ;; esac
say "   valid; without POSTGRES_PASSWORD: $(printf '%s' "$OUT" | tail -1)"

step "start a private Docker daemon"
dockerd_start || fail "dockerd did not start"
say "   $(docker version --format 'daemon {{.Server.Version}}') at $DOCKER_HOST"

step "base images (cached in $CACHE)"
"$repo/docker/ci/base-images.sh" "$CACHE" || fail "base images"

step "wheels for an offline build"
# The package's build requirements and dependencies, read from pyproject.toml, and the mail
# catcher's; the package itself is built inside the image.
"$PYTHON" - >"$TMP/requirements.txt" <<'PY' || fail "reading pyproject.toml"
import tomllib
meta = tomllib.load(open("pyproject.toml", "rb"))
print("\n".join(meta["build-system"]["requires"] + meta["project"]["dependencies"]
                + ["wheel", "aiosmtpd>=1.4"]))
PY
find docker/wheelhouse -name '*.whl' -delete
"$VENV_PYTHON" -m pip wheel --quiet --wheel-dir docker/wheelhouse -r "$TMP/requirements.txt" \
    2> >(grep -v "^WARNING: Location" >&2) || fail "pip wheel"
say "   $(find docker/wheelhouse -name '*.whl' | wc -l) wheels"

# The containers run as uid 10001 and read the checkout through a bind mount, so its top
# folder must be open to others, as an operator's clone is under the usual umask. A clone
# made by `mktemp -d` (0700) is not: the stack runs from a copy of the working tree (what git
# tracks or would track, and the wheels) with every folder 0755 and every file 0644.
CHECKOUT="$TMP/checkout"
mkdir -p "$CHECKOUT"
{ git ls-files -z --cached --others --exclude-standard; find docker/wheelhouse -name '*.whl' -print0; } \
    | tar --null --files-from=- --ignore-failed-read -cf - 2>/dev/null \
    | tar -xf - -C "$CHECKOUT" || fail "copying the checkout"
chmod -R u=rwX,go=rX "$CHECKOUT" && chmod 755 "$CHECKOUT"

fake_module="newsletter.devtools.fake_provider"
[ -f newsletter/devtools/fake_provider.py ] || fake_module="newsletter.fake_provider"
free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
web_port="$(free_port)"
prometheus_port="$(free_port)"
metrics_token="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
week="$(find items -mindepth 1 -maxdepth 1 -type d -name '????-W??' | sort | tail -1)"
week="${week#items/}"
[ -n "$week" ] || fail "no edition under items/"
cat >"$TMP/ci.env" <<EOF
NEWSLETTER_ENV_FILE=$TMP/ci.env
CI_DIR=$TMP/ci
CI_PYTHON_IMAGE=newsletter-ci/python:3.11
CI_POSTGRES_IMAGE=newsletter-ci/postgres:15
CI_PROMETHEUS_IMAGE=newsletter-ci/prometheus:2
FAKE_MODULE=$fake_module
FAKE_LATENCY_MS=${TEST_COMPOSE_FAKE_LATENCY_MS:-400}
WEB_PORT=$web_port
PROMETHEUS_PORT=$prometheus_port
NEWSLETTER_METRICS_TOKEN=$metrics_token
POSTGRES_PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
NEWSLETTER_SECRET_KEY=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
NEWSLETTER_SCHEDULE=0 3 1 1 *
NEWSLETTER_MISFIRE_GRACE=1
EOF
# The dev profile exactly as .env.example documents it: its "Development" block, uncommented.
sed -n '/^# Development:/,$p' .env.example | sed -n 's/^# \([A-Z_]*=\)/\1/p' >>"$TMP/ci.env"
grep -q '^COMPOSE_PROFILES=dev$' "$TMP/ci.env" || fail ".env.example has no Development block"
checks make-csv "$TMP/ci/subscribers.csv" "$N" >/dev/null || fail "make-csv"
checks make-bad-csv "$TMP/ci/bad.csv"
chmod 644 "$TMP/ci/"*.csv

step "build the images (Dockerfile, docker/mailcatcher/Dockerfile)"
compose build migrate mailcatcher >"$LOG_DIR/build.log" 2>&1 \
    || { tail -30 "$LOG_DIR/build.log" >&2; fail "docker-compose build"; }
user="$(docker image inspect -f '{{.Config.User}}' newsletter-ci/app:latest)"
[ "$user" = newsletter ] || fail "the image runs as '$user', not the unprivileged newsletter user"
docker image inspect -f '{{.Config.Healthcheck.Test}}' newsletter-ci/app:latest | grep -q healthcheck \
    || fail "the image has no HEALTHCHECK"
say "   newsletter-ci/app: user $user, $(docker image inspect -f '{{.Size}}' newsletter-ci/app:latest | awk '{printf "%.0f MB", $1/1e6}')"

step "up from a clean state: db, migrate, web, worker, mailcatcher, fake"
compose down --volumes --remove-orphans >/dev/null 2>&1 || true
compose up -d --no-build >"$LOG_DIR/up.log" 2>&1 || { cat "$LOG_DIR/up.log" >&2; fail "up"; }
wait_healthy db 120
migrate_state="$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$(cid migrate)")"
[ "$migrate_state" = "exited 0" ] || fail "migrate: $migrate_state"
say "   migrate ran once and exited 0: $(docker logs "$(cid migrate)" 2>&1 | tail -1)"
wait_healthy worker 120
wait_healthy mailcatcher 60
deadline=$((SECONDS + 60))
until docker exec "$(cid fake)" python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8025/_fake/stats', timeout=2)" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "the fake provider does not answer"
    sleep 0.5
done
say "   fake provider ($fake_module) answers"

step "import subscribers inside the worker container"
worker="$(cid worker)"
expect_exit 0 docker exec "$worker" newsletter subscribers import /ci/subscribers.csv
say "   $(printf '%s' "$OUT" | tail -1)"
expect_exit 0 docker exec "$worker" newsletter subscribers count --format json
checks count "$OUT" active "$N" || fail "import"
expect_exit 1 docker exec "$worker" newsletter subscribers import /ci/bad.csv
case "$OUT" in *Traceback*) fail "a bad CSV gave a traceback: $OUT" ;; esac
case "$OUT" in *not-an-address*) ;; *) fail "the error does not name the bad address: $OUT" ;; esac
expect_exit 0 docker exec "$worker" newsletter subscribers count --format json
checks count "$OUT" active "$N" || fail "a rejected import changed the list"
say "   a bad row aborts the import, exit 1, list unchanged"

expect_exit 0 docker exec "$worker" newsletter subscribers import --dry-run subscribers/sample.csv
say "   paths resolve in the project folder: $(printf '%s' "$OUT" | tail -1)"

step "dry run inside the worker container"
expect_exit 0 docker exec "$worker" newsletter send --dry-run --week "$week"
say "   $OUT"
docker cp "$worker:/data/outbox/dry-run/$week" "$TMP/dry-run" >/dev/null
token="$("$PYTHON" docker/ci/checks.py dry-run "$TMP/dry-run" "$N" "jose@bücher.example")" || fail "dry run"
say "   $N messages; José's unsubscribe token taken from his List-Unsubscribe"

step "a test edition through the dev mail catcher"
expect_exit 0 compose run --rm worker newsletter send --test --to you@example.com \
    --to "leser@bücher.example" --week "$week"
say "   $(printf '%s' "$OUT" | grep -E '^(sent|failed)' | tr '\n' ';')"
docker cp "$(cid mailcatcher):/mail" "$TMP/mail" >/dev/null
checks caught "$TMP/mail" you@example.com "leser@bücher.example" || fail "test edition"

step "kill a container mid-send, rerun: everyone exactly once"
compose run -d --name "$SENDER" "${fake_env[@]}" worker newsletter send --week "$week" >/dev/null
fake="$(cid fake)"
recorded() { docker exec "$fake" sh -c 'cat /data/sent.jsonl 2>/dev/null | wc -l'; }
deadline=$((SECONDS + 180))
while [ "$(recorded)" -lt 20 ]; do
    [ "$(docker inspect -f '{{.State.Running}}' "$SENDER")" = true ] \
        || fail "the send ended before it could be killed: $(docker logs --tail 5 "$SENDER" 2>&1)"
    [ $SECONDS -lt $deadline ] || fail "the send recorded nothing within 180 s"
    sleep 0.2
done
docker kill "$SENDER" >/dev/null || fail "could not kill the sending container"
at_kill="$(recorded)"
docker rm "$SENDER" >/dev/null
[ "$at_kill" -lt "$N" ] || fail "all $N were sent before the kill landed"
say "   killed with $at_kill of $N accepted by the provider"
expect_exit 0 compose run --rm worker newsletter status --week "$week"
checks status-unfinished "$OUT" || fail "status after the kill"
expect_exit 0 compose run --rm "${fake_env[@]}" worker newsletter send --week "$week"
say "   rerun: $(printf '%s' "$OUT" | grep "^$week" || true)"
docker cp "$fake:/data/sent.jsonl" "$TMP/sent.jsonl" >/dev/null
checks exactly-once "$TMP/sent.jsonl" "$N" || fail "after the rerun"
expect_exit 0 compose run --rm worker newsletter status --week "$week"
case "$OUT" in *"$N sent"*) ;; *) fail "status after the rerun: $OUT" ;; esac

step "back up the database, change it, restore the backup (README commands)"
compose exec -T db pg_dump -U newsletter -Fc newsletter >"$TMP/backup.dump" || fail "pg_dump"
expect_exit 0 docker exec "$worker" newsletter subscribers add "after-backup@example.com"
compose stop web worker >/dev/null 2>&1 || fail "stop web worker"
compose exec -T db pg_restore -U newsletter -d newsletter --clean --if-exists \
    <"$TMP/backup.dump" || fail "pg_restore"
compose start web worker >/dev/null 2>&1 || fail "start web worker"
wait_healthy worker 120
expect_exit 0 docker exec "$worker" newsletter subscribers count --format json
checks count "$OUT" active "$N" || fail "the restored database"
expect_exit 1 docker exec "$worker" newsletter subscribers show "after-backup@example.com"
say "   $(wc -c <"$TMP/backup.dump") bytes; restored: $N active, the later addition gone"

step "web: /healthz and one-click unsubscribe through 127.0.0.1:$web_port"
wait_healthy web 90
checks http "http://127.0.0.1:$web_port/healthz" 200 || fail "healthz"
checks http "http://127.0.0.1:$web_port/unsubscribe/$token" 200 "List-Unsubscribe=One-Click" \
    || fail "one-click unsubscribe"
expect_exit 0 docker exec "$worker" newsletter subscribers show "jose@bücher.example"
printf '%s' "$OUT" | grep -Eq '^status: +unsubscribed' || fail "José is not unsubscribed: $OUT"
say "   José is unsubscribed"

step "monitoring: Prometheus scrapes web's /metrics with the bearer token"
compose --profile monitoring up -d --no-build prometheus >"$LOG_DIR/up-monitoring.log" 2>&1 \
    || { cat "$LOG_DIR/up-monitoring.log" >&2; fail "up prometheus"; }
wait_healthy prometheus 90
prometheus="http://127.0.0.1:$prometheus_port"
CHECK_SECRET="$metrics_token" checks prometheus-up "$prometheus" newsletter 90 \
    || fail "Prometheus does not scrape the web app"
checks prometheus-query "$prometheus" 'newsletter_sends{status="done"}' || fail "no figures"
checks prometheus-query "$prometheus" 'newsletter_messages_sent' || fail "no figures"
checks prometheus-dashboard "$prometheus" docker/grafana/dashboards/newsletter.json \
    || fail "the Grafana dashboard's queries"
prometheus_log="$(docker logs "$(cid prometheus)" 2>&1)"
case "$prometheus_log" in *"$metrics_token"*) fail "the metrics token is in Prometheus's log" ;; esac
say "   the token reached Prometheus through its tmpfs file only"

step "down -v"
compose "${every_profile[@]}" down --volumes --remove-orphans --timeout 20 >/dev/null 2>&1 || fail "down"
[ -z "$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")" ] \
    || fail "volumes left after down -v"
