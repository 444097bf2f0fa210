#!/usr/bin/env bash
# `make docker-engine`: Docker engines for the tests, on a Debian machine where we are root. Idempotent.
#
# The main engine is a user's Docker: dockerd with its default bridge network (docker0, 172.17.0.0/16, NAT). On
# these machines a bridge on the host would hand out private addresses on the machine's own network, so the
# engine runs in a network namespace of its own (NETNS): docker0 and its containers exist only there. The
# namespace reaches out through slirp4netns (user-mode NAT, --disable-host-loopback): containers reach the package
# registries, never this machine's 127.0.0.1. Its socket is SOCKET: DOCKER_HOST=unix://$SOCKET (make test sets it).
#
# The second engine is the one a rootless or `--bridge=none` Docker is: dockerd on the host without a bridge, on
# the default socket. The tests of the kit's Docker paths without a bridge use it.
#
# `nsenter --net=...`, not `ip netns exec`: the latter remounts /sys, and dockerd then finds no cgroups.
set -euo pipefail

NETNS=layerkit-docker
STATE=/var/lib/layerkit-docker
RUN=/run/layerkit-docker
SOCKET=$RUN/docker.sock
LOG=/var/log/layerkit-dockerd-bridge.log

say() { echo "make: $*"; }

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "the Docker tests need an engine: start Docker (or run 'make docker-engine' as root on Debian)" >&2
    exit 0
fi
missing=()
for tool in dockerd debootstrap slirp4netns nsenter ip; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing docker.io, debootstrap, slirp4netns and iproute2 (for ${missing[*]})"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap slirp4netns \
        iproute2 util-linux >/dev/null
fi

# -- the engine with a bridge, in its own network namespace ------------------------------------------------
if DOCKER_HOST=unix://$SOCKET docker info >/dev/null 2>&1; then
    say "the Docker engine with a bridge answers already on $SOCKET (network namespace $NETNS)"
else
    say "starting dockerd with its default bridge in network namespace $NETNS (socket $SOCKET)"
    mkdir -p "$STATE" "$RUN/exec"
    ip netns list | grep -qw "$NETNS" || ip netns add "$NETNS"
    ip -n "$NETNS" link set lo up
    setsid nohup nsenter --net=/run/netns/$NETNS dockerd --data-root "$STATE" --exec-root "$RUN/exec" \
        --pidfile "$RUN/dockerd.pid" -H "unix://$SOCKET" </dev/null >"$LOG" 2>&1 &
    for _ in $(seq 1 60); do DOCKER_HOST=unix://$SOCKET docker info >/dev/null 2>&1 && break; sleep 1; done
    DOCKER_HOST=unix://$SOCKET docker info >/dev/null 2>&1 || { say "dockerd did not start; see $LOG" >&2; exit 1; }
fi
# Nothing of the machine's link-local range (an instance metadata endpoint) for the engine's containers.
for chain in DOCKER-USER OUTPUT; do
    nsenter --net=/run/netns/$NETNS iptables -C "$chain" -d 169.254.0.0/16 -j DROP 2>/dev/null \
        || nsenter --net=/run/netns/$NETNS iptables -I "$chain" -d 169.254.0.0/16 -j DROP
done
# Outbound for the namespace: one slirp4netns, no route to this machine's loopback.
if ! ip -n "$NETNS" link show tap0 >/dev/null 2>&1; then
    setsid nohup slirp4netns --configure --mtu=65520 --disable-host-loopback --netns-type=path \
        "/run/netns/$NETNS" tap0 </dev/null >"$RUN/slirp4netns.log" 2>&1 &
    for _ in $(seq 1 20); do ip -n "$NETNS" link show tap0 >/dev/null 2>&1 && break; sleep 0.5; done
    say "network namespace $NETNS reaches out through slirp4netns (never this machine's 127.0.0.1)"
fi

# -- the engine without a bridge, on the host --------------------------------------------------------------
if DOCKER_HOST=unix:///var/run/docker.sock docker info >/dev/null 2>&1; then
    say "the Docker engine without a bridge answers already on /var/run/docker.sock"
else
    say "starting dockerd without a bridge network on /var/run/docker.sock"
    setsid nohup dockerd --bridge=none --iptables=false </dev/null >/var/log/layerkit-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do DOCKER_HOST=unix:///var/run/docker.sock docker info >/dev/null 2>&1 && break; sleep 1; done
    DOCKER_HOST=unix:///var/run/docker.sock docker info >/dev/null 2>&1 || {
        say "dockerd did not start; see /var/log/layerkit-dockerd.log" >&2; exit 1; }
fi
say "Docker engines running: unix://$SOCKET (bridge, the tests' default) and unix:///var/run/docker.sock (no bridge)"
