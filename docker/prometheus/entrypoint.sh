#!/bin/sh
# The monitoring profile's Prometheus entry point: the bearer token of the web app's /metrics,
# from NEWSLETTER_METRICS_TOKEN, into the file prometheus.yml names (a tmpfs in the container,
# readable by Prometheus's user alone), then Prometheus itself with the arguments given. The
# token is never echoed, and is taken out of the environment Prometheus runs with.
#
#   sh entrypoint.sh --config.file=... [PROMETHEUS ARGS...]
# METRICS_TOKEN_FILE (default /run/newsletter/metrics_token) and PROMETHEUS (default
# `prometheus` on PATH) are for the tests.
set -eu

file="${METRICS_TOKEN_FILE:-/run/newsletter/metrics_token}"
if [ -z "${NEWSLETTER_METRICS_TOKEN:-}" ]; then
    echo "prometheus: NEWSLETTER_METRICS_TOKEN is not set: set it in .env (the web app serves /metrics only with a token)" >&2
    exit 1
fi
umask 077
mkdir -p "$(dirname "$file")"
# Written beside the file, then renamed: a restart never lets Prometheus read half a token.
printf '%s' "$NEWSLETTER_METRICS_TOKEN" >"$file.tmp"
mv "$file.tmp" "$file"
unset NEWSLETTER_METRICS_TOKEN
exec "${PROMETHEUS:-prometheus}" "$@"
