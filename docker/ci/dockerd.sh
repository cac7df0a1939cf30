# A private Docker daemon for the container tests; sourced by test-compose.sh.
#
# It has its own socket, pid file and exec root under $RUN_DIR and keeps its images under
# $CACHE/data (so base images survive between runs). It never touches the host's network
# set-up: no iptables rules, no default bridge, no IP forwarding, no masquerading. Containers
# still reach each other on the compose network's own bridge, published ports go through
# docker-proxy, and builds that need the Debian mirror use the host's network.
#
# dockerd_start, dockerd_stop and dockerd_leftovers need RUN_DIR, CACHE and LOG_DIR.

dockerd_pidfile() { printf '%s/dockerd.pid' "$RUN_DIR"; }

dockerd_running() {
    local pid
    pid="$(cat "$(dockerd_pidfile)" 2>/dev/null)" || return 1
    # The pid must still be a dockerd: after a reboot the number may belong to anything.
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]
}

iptables_docker_rules() {
    if command -v iptables >/dev/null; then
        iptables -S 2>/dev/null | grep -c DOCKER || true
    fi
}

dockerd_start() {
    mkdir -p "$RUN_DIR" "$CACHE/data"
    # A daemon left by a run that was killed outright: it is ours (our pid file), stop it.
    dockerd_running && dockerd_stop
    ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' | sort \
        >"$RUN_DIR/bridges.before"
    iptables_docker_rules >"$RUN_DIR/iptables.before"
    export DOCKER_HOST="unix://$RUN_DIR/docker.sock"
    setsid dockerd \
        --data-root "$CACHE/data" \
        --exec-root "$RUN_DIR/exec" \
        --pidfile "$(dockerd_pidfile)" \
        --host "$DOCKER_HOST" \
        --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
        --bridge=none \
        >"$LOG_DIR/dockerd.log" 2>&1 </dev/null &
    local deadline=$((SECONDS + 60))
    until docker info >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            tail -20 "$LOG_DIR/dockerd.log" >&2
            echo "dockerd did not answer within 60 s (log: $LOG_DIR/dockerd.log)" >&2
            return 1
        fi
        sleep 0.5
    done
}

dockerd_stop() {
    local pid deadline
    dockerd_running || return 0
    pid="$(cat "$(dockerd_pidfile)")"
    kill -TERM "$pid" 2>/dev/null || return 0
    deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
        if [ $SECONDS -ge $deadline ]; then
            echo "dockerd $pid did not stop within 30 s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null
            break
        fi
        sleep 0.2
    done
}

# Remove what a crashed daemon could have left, then report anything still there (exit 1).
dockerd_leftovers() {
    local left=0 bridge
    if dockerd_running; then
        echo "leftover: dockerd $(cat "$(dockerd_pidfile)") still runs" >&2
        left=1
    fi
    if [ -f "$RUN_DIR/bridges.before" ]; then
        for bridge in $(ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' \
                | sort | comm -13 "$RUN_DIR/bridges.before" -); do
            case "$bridge" in
                br-*) echo "removing leftover bridge $bridge" >&2
                      ip link delete "$bridge" 2>/dev/null || left=1 ;;
            esac
        done
    fi
    if [ "$(iptables_docker_rules)" != "$(cat "$RUN_DIR/iptables.before" 2>/dev/null)" ]; then
        echo "leftover: iptables rules naming DOCKER were added" >&2
        left=1
    fi
    # dockerd keeps the host's network namespace bind-mounted in its exec root after exit.
    local mnt
    for mnt in $(awk -v run="$RUN_DIR/" 'index($2, run) == 1 {print $2}' /proc/mounts | sort -r); do
        umount "$mnt" 2>/dev/null || true
    done
    if grep -q -e " $CACHE/data" -e " $RUN_DIR" /proc/mounts; then
        echo "leftover: mounts under $CACHE/data or $RUN_DIR" >&2
        left=1
    fi
    return $left
}
