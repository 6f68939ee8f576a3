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
# Also: handshake -> first packet for Ferry, HS_ROUNDS (5) times: a UDP sender in A (every
# 0.2 ms, running before `ferry up` starts) and a receiver in B stamp the first datagram through
# the tunnel; Ferry logs "handshake initiation sent" / "handshake completed" with unix_us=
# (FERRY_LOG=ferry_tunnel=debug): all on the same wall clock, µs resolution. Ping RTT, idle CPU and RSS,
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
#        HS_ROUNDS=5 (handshake measurements) IDLE_S=10 (idle CPU window) APP_MB=200
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
for _ in $(seq 100); do inB ip addr show ferryb 2>/dev/null | grep -q 10.98.0.2 && break; sleep 0.05; done
# Handshake -> first packet, HS_ROUNDS (5) times: ferry A is started, measured and (but the
# last time) stopped again. A probe receiver in B writes the wall-clock µs of the first datagram
# it gets; a probe sender in A, ready before `ferry up` starts, tries every 0.2 ms (sends fail
# until ferrya has its address and route). Both run the real interpreter, not a pyenv shim.
PROBE_PORT=40999
cat >"$WORK/probe.py" <<'PY'
import socket, sys, time
mode, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if mode == "recv":
    s.bind(("0.0.0.0", int(sys.argv[3])))
    s.settimeout(15)
    open(out + ".ready", "w").close()
    try:
        s.recv(64)
        t = time.time_ns() // 1000
    except OSError:
        t = 0
    open(out, "w").write(str(t))
else:
    open(out + ".ready", "w").close()
    end = time.time() + 15
    while time.time() < end:
        try:
            s.sendto(b"probe", (sys.argv[3], int(sys.argv[4])))
        except OSError:
            pass
        time.sleep(0.0002)
PY
PY3=$(command -v python3 >/dev/null && python3 -c 'import sys; print(sys.executable)' || true)
HS_ROUNDS=${HS_ROUNDS:-5}
# unix_us of the first log line of ferry A matching $1.
hs_us() { sed 's/\x1b\[[0-9;]*m//g' "$WORK/fa.log" | grep "$1" | grep -o 'unix_us=[0-9]*' | head -n 1 | cut -d= -f2 || true; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN {if (a > 0 && b > 0) printf "%.3f\n", (a - b) / 1000; else print "-"}'; }
for r in $(seq "$HS_ROUNDS"); do
  probe=0
  if [ -n "$PY3" ]; then
    rm -f "$WORK"/first* "$WORK"/sent*
    ip netns exec "$B" "$PY3" "$WORK/probe.py" recv "$WORK/first" "$PROBE_PORT" & PROBE_RX=$!
    ip netns exec "$A" "$PY3" "$WORK/probe.py" send "$WORK/sent" 10.98.0.2 "$PROBE_PORT" & PROBE_TX=$!
    for _ in $(seq 250); do [ -f "$WORK/first.ready" ] && [ -f "$WORK/sent.ready" ] && { probe=1; break; }; sleep 0.02; done
  fi
  t0=$(( $(date +%s%N) / 1000 ))
  ip netns exec "$A" env FERRY_LOG=ferry_tunnel=debug NO_COLOR=1 "$FERRY" up --all --interface ferrya --state-dir "$WORK/sta" --stats-interval 0 "$WORK/fa.conf" >"$WORK/fa.log" 2>&1 & FA=$!; PIDS+=($FA)
  if [ "$probe" = 1 ]; then
    wait "$PROBE_RX" 2>/dev/null || true
    kill "$PROBE_TX" 2>/dev/null || true; wait "$PROBE_TX" 2>/dev/null || true
    first=$(cat "$WORK/first" 2>/dev/null || echo 0)
    ms "$first" "$t0" >>"$WORK/hs_up"
    ms "$first" "$(hs_us "handshake initiation sent")" >>"$WORK/hs_init"
    ms "$first" "$(hs_us "handshake completed")" >>"$WORK/hs_done"
    printf 'handshake %d: completed -> first packet %s ms, initiation -> first packet %s ms\n' "$r" "$(tail -n 1 "$WORK/hs_done")" "$(tail -n 1 "$WORK/hs_init")"
  fi
  [ "$r" = "$HS_ROUNDS" ] && break
  kill -INT "$FA"; wait "$FA" 2>/dev/null || true
done
for _ in $(seq 5000); do inA ping -c1 -W1 -q 10.98.0.2 >/dev/null 2>&1 && break; sleep 0.001; done
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
[ "$APP" = 1 ] && echo "ferry: app mode through SOCKS5 (curl download, median of $ROUNDS): $(median "$WORK/app") Mbit/s"
declare -A RTT IDLE IRSS
for s in "${SCEN[@]}"; do
  RTT[$s]=$(inA ping -c 50 -i 0.01 -q "${TARGET[$s]}" | awk -F/ '/rtt/ {print $5}')
done
# CPU time in ns of all threads of the given processes (schedstat: finer than clock ticks).
ticks() { local d; for d in "$@"; do cat /proc/"$d"/task/*/schedstat 2>/dev/null; done | awk '{n += $1} END {printf "%.0f\n", n}'; }
declare -A I0
IDLE_S=${IDLE_S:-10}
for s in "${SCEN[@]}"; do [ -n "${DAEMONS[$s]:-}" ] && I0[$s]=$(ticks ${DAEMONS[$s]}); done
sleep "$IDLE_S"
for s in "${SCEN[@]}"; do
  [ -n "${DAEMONS[$s]:-}" ] || continue
  rss=0; for d in ${DAEMONS[$s]}; do rss=$((rss + $(rss_kib "$d"))); done
  IDLE[$s]=$(awk -v c=$(( $(ticks ${DAEMONS[$s]}) - ${I0[$s]} )) -v t="$IDLE_S" 'BEGIN {printf "%.3f%%", c / 1e9 / t / 2 * 100}')
  IRSS[$s]=$(awk -v r="$rss" 'BEGIN {printf "%.1f", r / 2 / 1024}')
done
echo "== latency and idle (idle: connected tunnels, no traffic, over ${IDLE_S} s; CPU and RSS per daemon, the mean of both ends)"
printf '%-10s %12s %12s %12s\n' scenario "ping RTT ms" "idle CPU" "idle RSS MiB"
for s in "${SCEN[@]}"; do
  printf '%-10s %12s %12s %12s\n' "$s" "${RTT[$s]:--}" "${IDLE[$s]:--}" "${IRSS[$s]:--}"
done
echo
if has_scen ferry; then
  echo "== ferry: handshake -> first packet (veth pair; UDP probe every 0.2 ms from A, stamped on arrival in B)"
  range() { [ -f "$1" ] && grep -v '^-' "$1" | sort -g | awk '{a[NR]=$1} END {if (NR) printf "median %s ms (min %s, max %s, n=%d)", a[int((NR+1)/2)], a[1], a[NR], NR; else printf "-"}' || printf -; }
  echo "handshake completed (A) -> first packet received (B):   $(range "$WORK/hs_done")   (target < 5 ms)"
  echo "handshake initiation sent (A) -> first packet (B):      $(range "$WORK/hs_init")"
  echo "ferry up started (A) -> first packet (B):               $(range "$WORK/hs_up")   (process start, TUN, routes, handshake)"
  echo "idle CPU of a connected tunnel (per daemon):            ${IDLE[ferry]:--}   (target < 1 %)"
fi
