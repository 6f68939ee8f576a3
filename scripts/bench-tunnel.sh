#!/usr/bin/env bash
# Tunnel throughput benchmark (not a test). Two network namespaces joined by veth pairs; iperf3
# TCP runs of DURATION s, ROUNDS rounds interleaved across scenarios, 1 and 4 streams:
#   veth        the bare veth path (MTU 1500, offloads on)
#   veth1420    a second veth pair at MTU 1420 with TSO/GSO/GRO off
#   wggo        Debian's wireguard-go at both ends
#   ferry       Ferry's system mode at both ends (`ferry up --all` in each namespace)
# Also: time from `ferry up` to the first ping through the tunnel, ping RTT, RSS and CPU-seconds
# per GB of each daemon under load, idle CPU, UDP receive-buffer errors and TUN drops.
# Background processes are started with `ip netns exec` directly (it execs), so $! is the daemon.
# Usage: sudo scripts/bench-tunnel.sh     (env: ROUNDS=3 DURATION=10 FERRY_BIN=target/release/ferry)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DUR=${DURATION:-10}
FERRY=${FERRY_BIN:-target/release/ferry}
[ "$(id -u)" = 0 ] || { echo "bench-tunnel: needs root (network namespaces)"; exit 1; }
for t in ip iperf3 wireguard-go wg ethtool ping; do
  command -v "$t" >/dev/null || { echo "bench-tunnel: $t missing (scripts/deps.sh installs it)"; exit 1; }
done
[ -x "$FERRY" ] || cargo build --release -p ferry-cli
FERRY=$(realpath "$FERRY")

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

# wireguard-go at both ends: 10.97.0.1 (A) <-> 10.97.0.2 (B), UDP 51820 on B.
rm -f /var/run/wireguard/wgga.sock /var/run/wireguard/wggb.sock
ip netns exec "$A" wireguard-go -f wgga >/dev/null 2>&1 & PIDS+=($!); WGA=$!
ip netns exec "$B" wireguard-go -f wggb >/dev/null 2>&1 & PIDS+=($!); WGB=$!
for _ in $(seq 200); do [ -S /var/run/wireguard/wgga.sock ] && [ -S /var/run/wireguard/wggb.sock ] && break; sleep 0.05; done
printf '[Interface]\nPrivateKey = %s\n[Peer]\nPublicKey = %s\nEndpoint = 198.18.0.2:51820\nAllowedIPs = 10.97.0.2/32\n' "$kA" "$pB" >"$WORK/wga.conf"
printf '[Interface]\nPrivateKey = %s\nListenPort = 51820\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.97.0.1/32\n' "$kB" "$pA" >"$WORK/wgb.conf"
inA wg setconf wgga "$WORK/wga.conf"; inB wg setconf wggb "$WORK/wgb.conf"
inA ip addr add 10.97.0.1/24 dev wgga; inB ip addr add 10.97.0.2/24 dev wggb
inA ip link set wgga mtu 1420 up; inB ip link set wggb mtu 1420 up

# Ferry at both ends: 10.98.0.1 (A) <-> 10.98.0.2 (B), UDP 51821 on B.
printf '[Interface]\nPrivateKey = %s\nAddress = 10.98.0.2/24\nListenPort = 51821\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.98.0.1/32\n' "$kB" "$pA" >"$WORK/fb.conf"
printf '[Interface]\nPrivateKey = %s\nAddress = 10.98.0.1/24\n[Peer]\nPublicKey = %s\nEndpoint = 198.18.0.2:51821\nAllowedIPs = 10.98.0.2/32\n' "$kA" "$pB" >"$WORK/fa.conf"
chmod 600 "$WORK"/*.conf
ip netns exec "$B" "$FERRY" up --all --interface ferryb --state-dir "$WORK/stb" --stats-interval 0 "$WORK/fb.conf" >"$WORK/fb.log" 2>&1 & PIDS+=($!); FB=$!
for _ in $(seq 100); do inB ip link show ferryb >/dev/null 2>&1 && break; sleep 0.05; done
t0=$(date +%s%N)
ip netns exec "$A" "$FERRY" up --all --interface ferrya --state-dir "$WORK/sta" --stats-interval 0 "$WORK/fa.conf" >"$WORK/fa.log" 2>&1 & PIDS+=($!); FA=$!
until inA ping -c1 -W1 -q 10.98.0.2 >/dev/null 2>&1; do sleep 0.001; done
t1=$(date +%s%N)
UP_MS=$(( (t1 - t0) / 1000000 ))
inA ping -c1 -W2 -q 10.97.0.2 >/dev/null   # wireguard-go handshake

ip netns exec "$B" iperf3 -s >/dev/null 2>&1 & PIDS+=($!)
sleep 0.3

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)

declare -A TARGET=([veth]=198.18.0.2 [veth1420]=198.18.1.2 [wggo]=10.97.0.2 [ferry]=10.98.0.2)
declare -A DAEMONS=([wggo]="$WGA $WGB" [ferry]="$FA $FB")
SCEN=(veth veth1420 wggo ferry)

for r in $(seq "$ROUNDS"); do
  for s in "${SCEN[@]}"; do
    for p in 1 4; do
      before=0; for d in ${DAEMONS[$s]:-}; do before=$((before + $(cpu_ticks "$d"))); done
      ( sleep $((DUR / 2)); rss=0; for d in ${DAEMONS[$s]:-}; do rss=$((rss + $(rss_kib "$d"))); done; echo "$rss" >>"$WORK/rss_${s}_$p" ) &
      mbps=$(inA iperf3 -c "${TARGET[$s]}" -t "$DUR" -P "$p" -f m | awk '/receiver/ {v=$(NF-2)} END {print v}')
      wait $! 2>/dev/null || true
      after=0; for d in ${DAEMONS[$s]:-}; do after=$((after + $(cpu_ticks "$d"))); done
      echo "$mbps" >>"$WORK/res_${s}_$p"
      if [ -n "${DAEMONS[$s]:-}" ]; then
        awk -v c=$((after - before)) -v hz="$HZ" -v m="$mbps" -v d="$DUR" 'BEGIN {gb = m * d / 8 / 1000; if (gb > 0) printf "%.2f\n", c / hz / gb}' >>"$WORK/cpu_${s}_$p"
      fi
      printf 'round %d  %-9s P=%d  %8s Mbit/s\n' "$r" "$s" "$p" "$mbps"
    done
  done
done

median() { sort -g "$1" | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "-"}'; }
echo
echo "== medians over $ROUNDS rounds, ${DUR}s iperf3 TCP, A -> B"
printf '%-10s %12s %12s %14s %14s %12s\n' scenario "P=1 Mbit/s" "P=4 Mbit/s" "RSS P=1 (MiB)" "CPU-s/GB P=1" "CPU-s/GB P=4"
for s in "${SCEN[@]}"; do
  rss=$( [ -f "$WORK/rss_${s}_1" ] && median "$WORK/rss_${s}_1" | awk '{printf "%.1f", $1/1024}' || echo -)
  c1=$( [ -f "$WORK/cpu_${s}_1" ] && median "$WORK/cpu_${s}_1" || echo -)
  c4=$( [ -f "$WORK/cpu_${s}_4" ] && median "$WORK/cpu_${s}_4" || echo -)
  printf '%-10s %12s %12s %14s %14s %12s\n' "$s" "$(median "$WORK/res_${s}_1")" "$(median "$WORK/res_${s}_4")" "$rss" "$c1" "$c4"
done
echo "(RSS and CPU are the sum of both ends' daemons)"
echo
for p in 1 4; do
  f=$(median "$WORK/res_ferry_$p")
  for s in wggo veth1420 veth; do
    printf 'P=%d  ferry / %-9s = %s\n' "$p" "$s" "$(awk -v a="$f" -v b="$(median "$WORK/res_${s}_$p")" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}')"
  done
done
echo
echo "ferry: up -> first ping through the tunnel: ${UP_MS} ms (process start, TUN, routes, handshake)"
echo "ferry: ping RTT through the tunnel: $(inA ping -c 50 -i 0.01 -q 10.98.0.2 | awk -F/ '/rtt/ {print $5 " ms avg"}')"
echo "wggo:  ping RTT through the tunnel: $(inA ping -c 50 -i 0.01 -q 10.97.0.2 | awk -F/ '/rtt/ {print $5 " ms avg"}')"
echo "bare:  ping RTT over veth:          $(inA ping -c 50 -i 0.01 -q 198.18.0.2 | awk -F/ '/rtt/ {print $5 " ms avg"}')"
i0=$(( $(cpu_ticks "$FA") + $(cpu_ticks "$FB") )); sleep 5; i1=$(( $(cpu_ticks "$FA") + $(cpu_ticks "$FB") ))
echo "ferry: idle CPU of both ends over 5 s: $(awk -v c=$((i1 - i0)) -v hz="$HZ" 'BEGIN {printf "%.2f%%", c / hz / 5 * 100}'), idle RSS $(( ($(rss_kib "$FA") + $(rss_kib "$FB")) / 1024 )) MiB"
echo "drops: UdpRcvbufErrors A=$(inA awk '/^Udp:/ {n++} n==2 && /^Udp:/ {print $6; exit}' /proc/net/snmp) B=$(inB awk '/^Udp:/ {n++} n==2 && /^Udp:/ {print $6; exit}' /proc/net/snmp); TUN tx_dropped ferrya=$(inA cat /sys/class/net/ferrya/statistics/tx_dropped) ferryb=$(inB cat /sys/class/net/ferryb/statistics/tx_dropped)"
