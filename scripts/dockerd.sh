#!/usr/bin/env bash
# A private Docker engine for the docker sandbox backend, and its image.
#
#   scripts/dockerd.sh start    start dockerd (installs docker.io as root if missing)
#   scripts/dockerd.sh stop     stop it (its containers stop with it)
#   scripts/dockerd.sh status   exit 0 and print DOCKER_HOST if it answers
#   scripts/dockerd.sh image    build agentspace-sandbox:latest if missing, in the engine at
#                               $DOCKER_HOST if set, else in this one (started if need be)
#
# Why a private engine: a stock dockerd rewrites host networking (bridge, iptables,
# masquerading). This one runs with --bridge=none --iptables=false --ip-masq=false and its
# own data/exec roots and socket under $AGENTSPACE_DOCKER_DIR (default /tmp/agentspace-docker),
# so it touches nothing else. Sandboxes use network "none" (or "host" by opt-in) anyway.
# Why `docker import`: there is no registry here; a busybox-static rootfs is ~2 MB.
# Every command is idempotent and returns at once when there is nothing to do.
set -euo pipefail

DIR="${AGENTSPACE_DOCKER_DIR:-/tmp/agentspace-docker}"
SOCK="$DIR/docker.sock"
HOST="unix://$SOCK"
IMAGE="${AGENTSPACE_SANDBOX_IMAGE:-agentspace-sandbox:latest}"
# Bumped when the image's contents change: an older image is rebuilt by `image`.
# 2: the unprivileged sandbox user (uid/gid $SANDBOX_UID, "sandbox") has a name.
VERSION=2
SANDBOX_UID="${AGENTSPACE_SANDBOX_UID:-65532}"
PIDFILE="$DIR/dockerd.pid"
LOG="$DIR/dockerd.log"

say() { echo "dockerd.sh: $*" >&2; }
die() { say "$*"; exit 1; }

answers() { command -v docker >/dev/null && docker -H "$HOST" info >/dev/null 2>&1; }

install_packages() {
    # $@: Debian packages. Only as root; otherwise say exactly what to run.
    if [ "$(id -u)" != 0 ]; then
        die "missing $*; run as root: apt-get install -y $* (then: sudo $0 start)"
    fi
    say "installing $* ..."
    export DEBIAN_FRONTEND=noninteractive
    # Keep the package from starting the system dockerd (bridge + iptables): policy-rc.d says no.
    local policy=/usr/sbin/policy-rc.d ours=""
    if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; ours=1; fi
    apt-get install -y -q "$@" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null 2>&1
        apt-get install -y -q "$@" >/dev/null || { [ -z "$ours" ] || rm -f "$policy"; die "apt-get install $* failed"; }
    }
    [ -z "$ours" ] || rm -f "$policy"
}

start() {
    if answers; then echo "DOCKER_HOST=$HOST"; return 0; fi
    if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
        install_packages docker.io
    fi
    [ "$(id -u)" = 0 ] || die "dockerd needs root: sudo $0 start (or use the bubblewrap backend)"
    mkdir -p "$DIR"
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        say "dockerd (pid $(cat "$PIDFILE")) is starting; waiting for it"
    else
        rm -f "$PIDFILE" "$SOCK"
        # setsid: the engine outlives this shell and the caller's process group.
        setsid dockerd \
            --bridge=none --iptables=false --ip-masq=false --ip6tables=false \
            --data-root "$DIR/data" --exec-root "$DIR/exec" --pidfile "$PIDFILE" \
            -H "$HOST" >>"$LOG" 2>&1 </dev/null &
    fi
    for _ in $(seq 300); do   # 300 x 0.1 s = 30 s at most
        if answers; then echo "DOCKER_HOST=$HOST"; return 0; fi
        sleep 0.1
    done
    tail -n 20 "$LOG" >&2 || true
    die "dockerd did not answer on $SOCK within 30 s (log: $LOG)"
}

stop() {
    [ -f "$PIDFILE" ] || { say "not running"; return 0; }
    local pid
    pid="$(cat "$PIDFILE")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; say "stopped"; return 0; }
        sleep 0.1
    done
    die "dockerd (pid $pid) did not stop within 30 s"
}

status() {
    if answers; then echo "DOCKER_HOST=$HOST"; return 0; fi
    say "not running (start it: $0 start)"
    return 1
}

image() {
    if [ -n "${DOCKER_HOST:-}" ]; then HOST="$DOCKER_HOST"; else answers || start >/dev/null; fi
    command -v docker >/dev/null || install_packages docker.io
    local built
    built="$(docker -H "$HOST" image inspect --format '{{index .Config.Labels "agentspace.image"}}' "$IMAGE" 2>/dev/null || true)"
    if [ "$built" = "$VERSION" ]; then
        echo "DOCKER_HOST=$HOST"; return 0
    fi
    local busybox=""
    for candidate in /bin/busybox /usr/bin/busybox; do
        if [ -x "$candidate" ] && ! ldd "$candidate" >/dev/null 2>&1; then busybox=$candidate; fi
    done
    if [ -z "$busybox" ]; then
        install_packages busybox-static
        busybox=/bin/busybox
    fi
    root="$(mktemp -d)"
    trap 'rm -rf "$root"' EXIT
    mkdir -p "$root"/{bin,etc,tmp,workspace,root,proc,sys,dev}
    chmod 1777 "$root/tmp"
    cp "$busybox" "$root/bin/busybox"
    # Relative links (not `busybox --install`, which points at the host's absolute path).
    for applet in $("$busybox" --list); do
        [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
    done
    if [ ! -e "$root/bin/nohup" ]; then   # Debian's busybox has none; agents expect one
        printf '#!/bin/sh\ntrap "" HUP\nexec "$@"\n' >"$root/bin/nohup"
        chmod 755 "$root/bin/nohup"
    fi
    # Containers run as the sandbox user (root only owns the read-only image).
    printf 'root:x:0:0:root:/root:/bin/sh\nsandbox:x:%s:%s:agentspace sandbox:/workspace:/bin/sh\n' \
        "$SANDBOX_UID" "$SANDBOX_UID" >"$root/etc/passwd"
    printf 'root:x:0:\nsandbox:x:%s:\n' "$SANDBOX_UID" >"$root/etc/group"
    tar --numeric-owner --owner=0 --group=0 -C "$root" -cf - . | docker -H "$HOST" import \
        --change 'ENV PATH=/bin' --change 'WORKDIR /workspace' \
        --change "LABEL agentspace.image=$VERSION" --change "USER $SANDBOX_UID:$SANDBOX_UID" \
        --change 'CMD ["sleep", "2147483647"]' - "$IMAGE" >/dev/null
    say "built $IMAGE"
    echo "DOCKER_HOST=$HOST"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    image) image ;;
    *) echo "usage: $0 start|stop|status|image" >&2; exit 2 ;;
esac
