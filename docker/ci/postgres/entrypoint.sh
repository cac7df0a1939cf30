#!/bin/sh
# On the first start, create the cluster in $PGDATA with the POSTGRES_USER superuser (password
# POSTGRES_PASSWORD, required) and the POSTGRES_DB database, as the official image does; then
# run the server on port 5432 on every interface. Other commands run as given.
set -eu

init_cluster() {
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
    user="${POSTGRES_USER:-postgres}"
    db="${POSTGRES_DB:-$user}"
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb --username="$user" --pwfile="$pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
        # Unix socket only while setting up, so nothing connects to a half-made database.
        pg_ctl -w -o "-c listen_addresses= -c port=5432" start >/dev/null
        createdb -p 5432 -U "$user" "$db"
        pg_ctl -w -m fast stop >/dev/null
    fi
    echo "initialised $PGDATA: user $user, database $db"
}

if [ "${1:-}" = postgres ]; then
    shift
    [ -s "$PGDATA/PG_VERSION" ] || init_cluster
    exec postgres -c port=5432 -c listen_addresses='*' "$@"
fi
exec "$@"
