#!/usr/bin/env bash
# System mode through ferry-helper vs. as root (a benchmark, not a test). Namespaces A and B
# joined by a veth pair; a Ferry system-mode peer (`ferry up --all`, root) in B; in A, rounds
# alternate between `ferry up --all` as root and the same command as `nobody` through a
# ferry-helper in A (the TUN device and the marked UDP socket handed over SCM_RIGHTS, the kill
# switch on). Each round: iperf3 TCP for DURATION s, 1 stream, A -> B through the tunnel.
# Prints each round and the medians, and helper/root as a ratio (the issue's bar: >= 0.95).
# Usage: sudo scripts/bench-helper.sh     env: ROUNDS=3 DURATION=10 FERRY_BIN=target/release/ferry
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DUR=${DURATION:-10}
[ "$(id -u)" = 0 ] || { echo "bench-helper: needs root (network namespaces)"; exit 1; }
for t in ip iperf3 wg nft setpriv; do
  command -v "$t" >/dev/null || { echo "bench-helper: $t missing (scripts/deps.sh installs it)"; exit 1; }
done
if [ -z "${FERRY_BIN:-}" ]; then
  cargo build --release -p ferry-cli -p ferry-helper
  FERRY_BIN=target/release/ferry
fi
FERRY=$(realpath "$FERRY_BIN")
HELPER=$(dirname "$FERRY")/ferry-helper
[ -x "$HELPER" ] || { echo "bench-helper: $HELPER missing"; exit 1; }

A=fhb-a-$$ B=fhb-b-$$
WORK=$(mktemp -d)
chmod 711 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
inA() { ip netns exec "$A" "$@"; }
inB() { ip netns exec "$B" "$@"; }

ip netns add "$A"; ip netns add "$B"
inA ip link set lo up; inB ip link set lo up
ip link add fhba netns "$A" type veth peer name fhbb netns "$B"
inA ip addr add 198.19.0.1/24 dev fhba; inB ip addr add 198.19.0.2/24 dev fhbb
inA ip link set fhba up; inB ip link set fhbb up

kA=$(wg genkey); kB=$(wg genkey); pA=$(echo "$kA" | wg pubkey); pB=$(echo "$kB" | wg pubkey)
printf '[Interface]\nPrivateKey = %s\nAddress = 10.95.0.2/24\nListenPort = 51830\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.95.0.1/32\n' "$kB" "$pA" >"$WORK/b.conf"
mkdir -m 755 "$WORK/a"
printf '[Interface]\nPrivateKey = %s\nAddress = 10.95.0.1/24\n[Peer]\nPublicKey = %s\nEndpoint = 198.19.0.2:51830\nAllowedIPs = 10.95.0.0/24\nPersistentKeepalive = 25\n' "$kA" "$pB" >"$WORK/a/a.conf"
chmod 600 "$WORK/b.conf"; chown nobody "$WORK/a/a.conf"; chmod 600 "$WORK/a/a.conf"

ip netns exec "$B" "$FERRY" up --all --interface fhbt --state-dir "$WORK/stb" --stats-interval 0 "$WORK/b.conf" >"$WORK/b.log" 2>&1 & PIDS+=($!)
ip netns exec "$B" iperf3 -s >/dev/null 2>&1 & PIDS+=($!)
# The helper serves nobody's primary group; its socket directory is reachable by nobody.
ip netns exec "$A" "$HELPER" --socket "$WORK/a/helper.sock" --group nogroup --state-dir "$WORK/hst" --journal-dir "$WORK/hj" >"$WORK/helper.log" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do [ -S "$WORK/a/helper.sock" ] && break; sleep 0.05; done

run_round() { # mode -> Mbit/s
  local mode=$1 pid out
  if [ "$mode" = root ]; then
    ip netns exec "$A" "$FERRY" up --all --interface fhat --state-dir "$WORK/sta" --stats-interval 0 "$WORK/a/a.conf" >"$WORK/a-$mode.log" 2>&1 & pid=$!
  else
    ip netns exec "$A" setpriv --reuid=nobody --regid=nogroup --init-groups -- env FERRY_HELPER_SOCKET="$WORK/a/helper.sock" HOME=/nonexistent \
      "$FERRY" up --all --interface fhat --stats-interval 0 "$WORK/a/a.conf" >"$WORK/a-$mode.log" 2>&1 & pid=$!
  fi
  for _ in $(seq 200); do inA ping -c1 -W1 -q 10.95.0.2 >/dev/null 2>&1 && break; sleep 0.05; done
  out=$(inA iperf3 -c 10.95.0.2 -t "$DUR" -f m 2>&1 || true)
  kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  echo "$out" | awk '/receiver$/ {v=$(NF-2)} END {print v + 0}'
}

for r in $(seq "$ROUNDS"); do
  for mode in root helper; do
    m=$(run_round "$mode")
    echo "$m" >>"$WORK/res_$mode"
    printf 'round %d  %-6s %8s Mbit/s\n' "$r" "$mode" "$m"
  done
done
median() { sort -g "$1" | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print 0}'; }
root=$(median "$WORK/res_root"); helper=$(median "$WORK/res_helper")
echo
echo "== medians over $ROUNDS rounds, ${DUR}s iperf3 TCP, 1 stream, A -> B"
echo "root (ferry up --all as root):              $root Mbit/s"
echo "helper (ferry up --all as nobody + helper): $helper Mbit/s"
awk -v h="$helper" -v r="$root" 'BEGIN {if (r > 0) printf "helper / root = %.2f\n", h / r}'
