#!/usr/bin/env bash
# Tunnel throughput benchmark (not a test). Two network namespaces joined by veth pairs; iperf3
# TCP runs of DURATION s, ROUNDS rounds interleaved across scenarios, 1 and 4 streams:
#   veth        the bare veth path (MTU 1500, offloads on)
#   veth1420    a second veth pair at MTU 1420 with TSO/GSO/GRO off
#   wggo        Debian's wireguard-go at both ends
#   boringtun   Cloudflare's boringtun-cli at both ends (`cargo install boringtun-cli`)
#   gotatun     Mullvad's gotatun-cli at both ends (`cargo install gotatun-cli`)
#   ferry       Ferry's system mode at both ends (`ferry up --all` in each namespace)
# Per scenario: median Mbit/s, TCP retransmits (iperf3's sender count), RSS and CPU-seconds per
# GB of both daemons under load, UDP receive-buffer errors and TUN tx drops during the runs.
# Also: time from `ferry up` to the first ping through the tunnel, ping RTT, idle CPU and RSS,
# and app mode's throughput: curl through Ferry's SOCKS5 proxy (app mode, namespace A) and a
# third Ferry (system mode, namespace B) downloading APP_MB (200) MB from an HTTP server in B.
# The peer daemons are looked up in PEER_BIN (default target/bench-tools/bin, then PATH); a
# missing one is installed there with `cargo install --locked --root target/bench-tools` unless
# INSTALL_PEERS=0. A peer that cannot be installed or started is reported and skipped.
# Background processes are started with `ip netns exec` directly (it execs), so $! is the daemon.
# Usage: sudo scripts/bench-tunnel.sh
#   env: ROUNDS=3 DURATION=10 FERRY_BIN=target/release/ferry (default: built here)
#        SCENARIOS="veth veth1420 wggo boringtun gotatun ferry" INSTALL_PEERS=1
#        FERRY_UDP_OFFLOAD=0 (Ferry without UDP GSO/GRO, for comparison)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DUR=${DURATION:-10}
TOOLS=$(pwd)/target/bench-tools
PEER_BIN=${PEER_BIN:-$TOOLS/bin}
SCEN=(${SCENARIOS:-veth veth1420 wggo boringtun gotatun ferry})
[ "$(id -u)" = 0 ] || { echo "bench-tunnel: needs root (network namespaces)"; exit 1; }
for t in ip iperf3 wireguard-go wg ethtool ping; do
  command -v "$t" >/dev/null || { echo "bench-tunnel: $t missing (scripts/deps.sh installs it)"; exit 1; }
done
if [ -z "${FERRY_BIN:-}" ]; then
  cargo build --release -p ferry-cli
  FERRY_BIN=target/release/ferry
fi
FERRY=$(realpath "$FERRY_BIN")

has_scen() { local s; for s in "${SCEN[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
drop_scen() { local s keep=(); for s in "${SCEN[@]}"; do [ "$s" = "$1" ] || keep+=("$s"); done; SCEN=("${keep[@]}"); }

# Find (or install) a peer daemon; prints its path, or nothing with the reason on stderr.
peer_tool() { # crate binary
  local crate=$1 bin=$2
  if [ -x "$PEER_BIN/$bin" ]; then echo "$PEER_BIN/$bin"; return; fi
  if command -v "$bin" >/dev/null; then command -v "$bin"; return; fi
  if [ "${INSTALL_PEERS:-1}" = 1 ] && command -v cargo >/dev/null; then
    echo "bench-tunnel: installing $crate into $TOOLS (cargo install; takes minutes)" >&2
    if cargo install --locked --root "$TOOLS" "$crate" >"$TOOLS.$crate.log" 2>&1 && [ -x "$TOOLS/bin/$bin" ]; then
      echo "$TOOLS/bin/$bin"; return
    fi
    echo "bench-tunnel: skipping $crate: cargo install failed (last lines of $TOOLS.$crate.log):" >&2
    tail -n 3 "$TOOLS.$crate.log" >&2 || true
    return
  fi
  echo "bench-tunnel: skipping $crate: $bin not found and INSTALL_PEERS=0 or no cargo" >&2
}
declare -A BIN=([wggo]=$(command -v wireguard-go))
mkdir -p "$TOOLS"
if has_scen boringtun; then BIN[boringtun]=$(peer_tool boringtun-cli boringtun-cli); [ -n "${BIN[boringtun]}" ] || drop_scen boringtun; fi
if has_scen gotatun; then BIN[gotatun]=$(peer_tool gotatun-cli gotatun); [ -n "${BIN[gotatun]}" ] || drop_scen gotatun; fi

A=fbench-a-$$ B=fbench-b-$$
WORK=$(mktemp -d)
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
# veth pair 1: the path the tunnels ride on, and the bare baseline.
ip link add fba0 netns "$A" type veth peer name fbb0 netns "$B"
inA ip addr add 198.18.0.1/24 dev fba0; inB ip addr add 198.18.0.2/24 dev fbb0
inA ip link set fba0 up; inB ip link set fbb0 up
# veth pair 2: MTU 1420, offloads off (what a tunnel without offloads can at best hope for).
ip link add fba1 netns "$A" type veth peer name fbb1 netns "$B"
inA ip addr add 198.18.1.1/24 dev fba1; inB ip addr add 198.18.1.2/24 dev fbb1
inA ip link set fba1 mtu 1420 up; inB ip link set fbb1 mtu 1420 up
inA ethtool -K fba1 tso off gso off gro off >/dev/null 2>&1 || true
inB ethtool -K fbb1 tso off gso off gro off >/dev/null 2>&1 || true

kA=$(wg genkey); kB=$(wg genkey); pA=$(echo "$kA" | wg pubkey); pB=$(echo "$kB" | wg pubkey)

declare -A TARGET=([veth]=198.18.0.2 [veth1420]=198.18.1.2) DAEMONS=() TUNS=()

# A UAPI daemon (wireguard-go, boringtun-cli, gotatun) at both ends: NET.1 (A) <-> NET.2 (B),
# UDP PORT on B. Interfaces ${ifp}a / ${ifp}b. Returns non-zero if it did not come up.
uapi_pair() { # scenario ifprefix net port cmd...
  local s=$1 ifp=$2 net=$3 port=$4; shift 4
  local ia=${ifp}a ib=${ifp}b da db
  rm -f "/var/run/wireguard/$ia.sock" "/var/run/wireguard/$ib.sock"
  ip netns exec "$A" env WG_SUDO=1 "$@" "$ia" >"$WORK/$ia.log" 2>&1 & PIDS+=($!); da=$!
  ip netns exec "$B" env WG_SUDO=1 "$@" "$ib" >"$WORK/$ib.log" 2>&1 & PIDS+=($!); db=$!
  for _ in $(seq 200); do [ -S "/var/run/wireguard/$ia.sock" ] && [ -S "/var/run/wireguard/$ib.sock" ] && break; sleep 0.05; done
  if ! [ -S "/var/run/wireguard/$ia.sock" ] || ! [ -S "/var/run/wireguard/$ib.sock" ]; then
    echo "bench-tunnel: skipping $s: its UAPI sockets did not appear ($(tail -n 2 "$WORK/$ia.log" | tr '\n' ' '))"
    return 1
  fi
  printf '[Interface]\nPrivateKey = %s\n[Peer]\nPublicKey = %s\nEndpoint = 198.18.0.2:%s\nAllowedIPs = %s.2/32\n' "$kA" "$pB" "$port" "$net" >"$WORK/$ia.conf"
  printf '[Interface]\nPrivateKey = %s\nListenPort = %s\n[Peer]\nPublicKey = %s\nAllowedIPs = %s.1/32\n' "$kB" "$port" "$pA" "$net" >"$WORK/$ib.conf"
  inA wg setconf "$ia" "$WORK/$ia.conf" && inB wg setconf "$ib" "$WORK/$ib.conf" || { echo "bench-tunnel: skipping $s: wg setconf failed"; return 1; }
  inA ip addr add "$net.1/24" dev "$ia"; inB ip addr add "$net.2/24" dev "$ib"
  inA ip link set "$ia" mtu 1420 up; inB ip link set "$ib" mtu 1420 up
  if ! inA ping -c1 -W3 -q "$net.2" >/dev/null 2>&1; then
    echo "bench-tunnel: skipping $s: no ping through the tunnel"
    return 1
  fi
  TARGET[$s]=$net.2; DAEMONS[$s]="$da $db"; TUNS[$s]="$ia $ib"
}
if has_scen wggo; then uapi_pair wggo wgg 10.97.0 51820 "${BIN[wggo]}" -f || drop_scen wggo; fi
if has_scen boringtun; then uapi_pair boringtun btn 10.95.0 51822 "${BIN[boringtun]}" -f --disable-drop-privileges || drop_scen boringtun; fi
if has_scen gotatun; then uapi_pair gotatun got 10.96.0 51823 "${BIN[gotatun]}" -f --disable-drop-privileges || drop_scen gotatun; fi

# Ferry at both ends: 10.98.0.1 (A) <-> 10.98.0.2 (B), UDP 51821 on B.
printf '[Interface]\nPrivateKey = %s\nAddress = 10.98.0.2/24\nListenPort = 51821\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.98.0.1/32\n' "$kB" "$pA" >"$WORK/fb.conf"
printf '[Interface]\nPrivateKey = %s\nAddress = 10.98.0.1/24\n[Peer]\nPublicKey = %s\nEndpoint = 198.18.0.2:51821\nAllowedIPs = 10.98.0.2/32\n' "$kA" "$pB" >"$WORK/fa.conf"
chmod 600 "$WORK"/*.conf
ip netns exec "$B" "$FERRY" up --all --interface ferryb --state-dir "$WORK/stb" --stats-interval 0 "$WORK/fb.conf" >"$WORK/fb.log" 2>&1 & PIDS+=($!); FB=$!
for _ in $(seq 100); do inB ip link show ferryb >/dev/null 2>&1 && break; sleep 0.05; done
t0=$(date +%s%N)
ip netns exec "$A" "$FERRY" up --all --interface ferrya --state-dir "$WORK/sta" --stats-interval 0 "$WORK/fa.conf" >"$WORK/fa.log" 2>&1 & PIDS+=($!); FA=$!
for _ in $(seq 5000); do inA ping -c1 -W1 -q 10.98.0.2 >/dev/null 2>&1 && break; sleep 0.001; done
t1=$(date +%s%N)
UP_MS=$(( (t1 - t0) / 1000000 ))
TARGET[ferry]=10.98.0.2; DAEMONS[ferry]="$FA $FB"; TUNS[ferry]="ferrya ferryb"

# App mode: Ferry's SOCKS5 proxy in A (client 10.94.0.1) -> a Ferry system-mode peer in B
# (10.94.0.2, UDP 51824) -> an HTTP server in B serving a sparse APP_MB-MB file.
APP_MB=${APP_MB:-200}
APP=0
if command -v curl >/dev/null && command -v python3 >/dev/null; then
  kC=$(wg genkey); pC=$(echo "$kC" | wg pubkey)
  printf '[Interface]\nPrivateKey = %s\nAddress = 10.94.0.2/24\nListenPort = 51824\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.94.0.1/32\n' "$kB" "$pC" >"$WORK/fc.conf"
  printf '[Interface]\nPrivateKey = %s\nAddress = 10.94.0.1/32\n[Peer]\nPublicKey = %s\nEndpoint = 198.18.0.2:51824\nAllowedIPs = 10.94.0.0/24\n' "$kC" "$pB" >"$WORK/fapp.conf"
  chmod 600 "$WORK"/*.conf
  mkdir -p "$WORK/www"; truncate -s "${APP_MB}M" "$WORK/www/blob"
  ip netns exec "$B" "$FERRY" up --all --interface ferryc --state-dir "$WORK/stc" --stats-interval 0 "$WORK/fc.conf" >"$WORK/fc.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 100); do inB ip addr show ferryc 2>/dev/null | grep -q 10.94.0.2 && break; sleep 0.05; done
  ip netns exec "$B" python3 -m http.server --bind 10.94.0.2 --directory "$WORK/www" 8080 >/dev/null 2>&1 & PIDS+=($!)
  ip netns exec "$A" "$FERRY" up --proxy 127.0.0.1:11080 --stats-interval 0 "$WORK/fapp.conf" >"$WORK/fapp.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 100); do inA curl -s -o /dev/null --max-time 2 --socks5 127.0.0.1:11080 http://10.94.0.2:8080/ && { APP=1; break; }; sleep 0.1; done
  [ "$APP" = 1 ] || echo "bench-tunnel: skipping app mode: no HTTP response through the SOCKS5 proxy ($(tail -n 2 "$WORK/fapp.log" | tr '\n' ' '))"
else
  echo "bench-tunnel: skipping app mode: needs curl and python3"
fi

ip netns exec "$B" iperf3 -s >/dev/null 2>&1 & PIDS+=($!)
sleep 0.3

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)
# UdpRcvbufErrors of both namespaces, and tx_dropped of a scenario's TUN interfaces.
rcvbuf_errs() { local n=0 ns v; for ns in "$A" "$B"; do v=$(ip netns exec "$ns" awk '/^Udp:/ {n++} n==2 && /^Udp:/ {print $6; exit}' /proc/net/snmp); n=$((n + v)); done; echo "$n"; }
tun_drops() { # scenario
  local n=0 i ns v; set -- ${TUNS[$1]:-}
  [ $# = 2 ] || { echo 0; return; }
  for i in 1 2; do ns=$([ $i = 1 ] && echo "$A" || echo "$B"); v=$(ip netns exec "$ns" cat "/sys/class/net/${!i}/statistics/tx_dropped" 2>/dev/null || echo 0); n=$((n + v)); done
  echo "$n"
}

for r in $(seq "$ROUNDS"); do
  for s in "${SCEN[@]}"; do
    for p in 1 4; do
      before=0; for d in ${DAEMONS[$s]:-}; do before=$((before + $(cpu_ticks "$d"))); done
      u0=$(rcvbuf_errs); t0=$(tun_drops "$s")
      ( sleep $((DUR / 2)); rss=0; for d in ${DAEMONS[$s]:-}; do rss=$((rss + $(rss_kib "$d"))); done; echo "$rss" >>"$WORK/rss_${s}_$p" ) &
      out=$(inA iperf3 -c "${TARGET[$s]}" -t "$DUR" -P "$p" -f m 2>&1 || true)
      wait $! 2>/dev/null || true
      mbps=$(echo "$out" | awk '/receiver$/ {v=$(NF-2)} END {print v + 0}')
      retr=$(echo "$out" | awk '/sender$/ {v=$(NF-1)} END {print v + 0}')
      after=0; for d in ${DAEMONS[$s]:-}; do after=$((after + $(cpu_ticks "$d"))); done
      echo "$mbps" >>"$WORK/res_${s}_$p"
      echo "$retr" >>"$WORK/retr_${s}_$p"
      echo $(( $(rcvbuf_errs) - u0 + $(tun_drops "$s") - t0 )) >>"$WORK/drop_${s}_$p"
      if [ -n "${DAEMONS[$s]:-}" ]; then
        awk -v c=$((after - before)) -v hz="$HZ" -v m="$mbps" -v d="$DUR" 'BEGIN {gb = m * d / 8 / 1000; if (gb > 0) printf "%.2f\n", c / hz / gb}' >>"$WORK/cpu_${s}_$p"
      fi
      printf 'round %d  %-9s P=%d  %8s Mbit/s  retr %6s\n' "$r" "$s" "$p" "$mbps" "$retr"
    done
  done
done

if [ "$APP" = 1 ]; then
  for r in $(seq "$ROUNDS"); do
    bps=$(inA curl -s -o /dev/null --max-time $((DUR * 6)) -w '%{speed_download}' --socks5 127.0.0.1:11080 "http://10.94.0.2:8080/blob" || echo 0)
    awk -v b="$bps" 'BEGIN {printf "%.0f\n", b * 8 / 1e6}' >>"$WORK/app"
    printf 'round %d  app mode (SOCKS5 download of %s MB)  %s Mbit/s\n' "$r" "$APP_MB" "$(tail -n 1 "$WORK/app")"
  done
fi

median() { [ -f "$1" ] || { echo -; return; }; sort -g "$1" | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "-"}'; }
echo
echo "== medians over $ROUNDS rounds, ${DUR}s iperf3 TCP, A -> B"
printf '%-10s %9s %9s %8s %8s %9s %9s %9s %9s\n' scenario "P=1 Mb/s" "P=4 Mb/s" "retr P=1" "retr P=4" "drops P=1" "RSS MiB" "CPUs/GB1" "CPUs/GB4"
for s in "${SCEN[@]}"; do
  rss=$(median "$WORK/rss_${s}_1"); [ "$rss" = - ] || rss=$(awk -v r="$rss" 'BEGIN {printf "%.1f", r / 1024}')
  [ -n "${DAEMONS[$s]:-}" ] || rss=-
  printf '%-10s %9s %9s %8s %8s %9s %9s %9s %9s\n' "$s" "$(median "$WORK/res_${s}_1")" "$(median "$WORK/res_${s}_4")" \
    "$(median "$WORK/retr_${s}_1")" "$(median "$WORK/retr_${s}_4")" "$(median "$WORK/drop_${s}_1")" "$rss" \
    "$(median "$WORK/cpu_${s}_1")" "$(median "$WORK/cpu_${s}_4")"
done
echo "(RSS and CPU: both ends' daemons together; drops: UdpRcvbufErrors of both namespaces + TUN tx_dropped)"
echo
if has_scen ferry; then
  for p in 1 4; do
    f=$(median "$WORK/res_ferry_$p")
    for s in "${SCEN[@]}"; do
      [ "$s" = ferry ] && continue
      printf 'P=%d  ferry / %-9s = %s\n' "$p" "$s" "$(awk -v a="$f" -v b="$(median "$WORK/res_${s}_$p")" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}')"
    done
  done
  echo
fi
echo "ferry: up -> first ping through the tunnel: ${UP_MS} ms (process start, TUN, routes, handshake)"
echo "ferry: handshake completed $(sed -n 's/^handshake: completed \([0-9]*\) ms after start.*/\1/p' "$WORK/fa.log" | head -n 1) ms after process start (ferry's own log; the queued first packet leaves with it)"
[ "$APP" = 1 ] && echo "ferry: app mode through SOCKS5 (curl download, median of $ROUNDS): $(median "$WORK/app") Mbit/s"
for s in "${SCEN[@]}"; do
  printf '%-10s ping RTT: %s\n' "$s" "$(inA ping -c 50 -i 0.01 -q "${TARGET[$s]}" | awk -F/ '/rtt/ {print $5 " ms avg"}')"
done
ticks() { local n=0 d; for d in "$@"; do n=$((n + $(cpu_ticks "$d"))); done; echo "$n"; }
declare -A I0
for s in "${SCEN[@]}"; do [ -n "${DAEMONS[$s]:-}" ] && I0[$s]=$(ticks ${DAEMONS[$s]}); done
sleep 5
for s in "${SCEN[@]}"; do
  [ -n "${DAEMONS[$s]:-}" ] || continue
  rss=0; for d in ${DAEMONS[$s]}; do rss=$((rss + $(rss_kib "$d"))); done
  printf '%-10s idle CPU of both ends over 5 s: %s, idle RSS %s MiB\n' "$s" \
    "$(awk -v c=$(( $(ticks ${DAEMONS[$s]}) - ${I0[$s]} )) -v hz="$HZ" 'BEGIN {printf "%.2f%%", c / hz / 5 * 100}')" $((rss / 1024))
done
