#!/usr/bin/env bash
# App-mode benchmark (not a test). Two network namespaces joined by a veth pair (198.18.0.0/24);
# in B an HTTP server (scripts/bench-appmode.py: GET /blob by sendfile, PUT discarded) and an idle
# line server behind Ferry system-mode peers. In A:
#   socks / http   Ferry app mode (`ferry up --proxy 127.0.0.1:11080`, HTTP CONNECT on 11081) ->
#                  Ferry system mode in B; curl downloads and uploads MB (200) MB through SOCKS5
#                  (--socks5) and HTTP CONNECT (-p -x)
#   system         Ferry system mode at both ends, the same curl transfers without a proxy
#   gotatun        gotatun-cli at both ends (as bench-tunnel.sh installs it), same transfers
# Then IDLE_N (500) SOCKS5 connections are opened through app mode (one exchange each) and held:
# a download with them open, CPU of the app-mode process over IDLE_S (10) s while they sit idle,
# RSS under load / with them open / after they close (and the stack's sockets reaped).
# Medians over ROUNDS (3) rounds, interleaved across scenarios.
# Usage: sudo scripts/bench-appmode.sh
#   env: ROUNDS=3 MB=200 IDLE_N=500 IDLE_S=10 FERRY_BIN=target/release/ferry (default: built here)
#        SCENARIOS="socks http system gotatun" INSTALL_PEERS=1 PEER_BIN=target/bench-tools/bin
#        PERF_DIR=DIR (perf record of the app-mode process during the first SOCKS5 transfers)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
MB=${MB:-200}
IDLE_N=${IDLE_N:-500}
IDLE_S=${IDLE_S:-10}
TOOLS=$(pwd)/target/bench-tools
PEER_BIN=${PEER_BIN:-$TOOLS/bin}
SCEN=(${SCENARIOS:-socks http system gotatun})
[ "$(id -u)" = 0 ] || { echo "bench-appmode: needs root (network namespaces)"; exit 1; }
for t in ip wg curl python3; do
  command -v "$t" >/dev/null || { echo "bench-appmode: $t missing (scripts/deps.sh installs it)"; exit 1; }
done
if [ -z "${FERRY_BIN:-}" ]; then
  cargo build --release -p ferry-cli
  FERRY_BIN=target/release/ferry
fi
FERRY=$(realpath "$FERRY_BIN")
HELPER=$(realpath scripts/bench-appmode.py)
has_scen() { local s; for s in "${SCEN[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
drop_scen() { local s keep=(); for s in "${SCEN[@]}"; do [ "$s" = "$1" ] || keep+=("$s"); done; SCEN=("${keep[@]}"); }

GOTATUN=
if has_scen gotatun; then
  if [ -x "$PEER_BIN/gotatun" ]; then GOTATUN=$PEER_BIN/gotatun
  elif command -v gotatun >/dev/null; then GOTATUN=$(command -v gotatun)
  elif [ "${INSTALL_PEERS:-1}" = 1 ]; then
    echo "bench-appmode: installing gotatun-cli into $TOOLS (cargo install; takes minutes)"
    mkdir -p "$TOOLS"
    if cargo install --locked --root "$TOOLS" gotatun-cli >"$TOOLS.gotatun-cli.log" 2>&1; then GOTATUN=$TOOLS/bin/gotatun; fi
  fi
  [ -x "$GOTATUN" ] || { echo "bench-appmode: skipping gotatun: not installed"; drop_scen gotatun; }
fi

A=fapp-a-$$ B=fapp-b-$$
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  exec 9>&- 2>/dev/null || true
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
ip link add fpa0 netns "$A" type veth peer name fpb0 netns "$B"
inA ip addr add 198.18.0.1/24 dev fpa0; inB ip addr add 198.18.0.2/24 dev fpb0
inA ip link set fpa0 up; inB ip link set fpb0 up

kA=$(wg genkey); kB=$(wg genkey); pA=$(echo "$kA" | wg pubkey); pB=$(echo "$kB" | wg pubkey)
conf_server() { # file addr port peer-pub peer-ip
  printf '[Interface]\nPrivateKey = %s\nAddress = %s/24\nListenPort = %s\n[Peer]\nPublicKey = %s\nAllowedIPs = %s/32\n' "$kB" "$2" "$3" "$4" "$5" >"$1"
}
conf_client() { # file addr port net
  printf '[Interface]\nPrivateKey = %s\nAddress = %s/32\n[Peer]\nPublicKey = %s\nEndpoint = 198.18.0.2:%s\nAllowedIPs = %s\n' "$kA" "$2" "$pB" "$3" "$4" >"$1"
}
wait_addr() { for _ in $(seq 100); do ip netns exec "$1" ip addr show "$2" 2>/dev/null | grep -q "$3" && return 0; sleep 0.05; done; return 1; }

# App mode: 10.94.0.1 (stack in A) -> ferry system mode in B (10.94.0.2, UDP 51824).
conf_server "$WORK/fc.conf" 10.94.0.2 51824 "$pA" 10.94.0.1
conf_client "$WORK/fapp.conf" 10.94.0.1 51824 10.94.0.0/24
# System mode: ferrya 10.98.0.1 in A -> ferryb 10.98.0.2 in B (UDP 51821).
conf_server "$WORK/fb.conf" 10.98.0.2 51821 "$pA" 10.98.0.1
conf_client "$WORK/fa.conf" 10.98.0.1 51821 10.98.0.2/32
chmod 600 "$WORK"/*.conf
ip netns exec "$B" "$FERRY" up --all --interface ferryc --state-dir "$WORK/stc" --stats-interval 0 "$WORK/fc.conf" >"$WORK/fc.log" 2>&1 & PIDS+=($!)
wait_addr "$B" ferryc 10.94.0.2
truncate -s "${MB}M" "$WORK/blob"
ip netns exec "$B" python3 "$HELPER" server 8080 9000 "$WORK/blob" >"$WORK/srv.log" 2>&1 & PIDS+=($!)
ip netns exec "$A" "$FERRY" up --proxy 127.0.0.1:11080 --stats-interval 0 "$WORK/fapp.conf" >"$WORK/fapp.log" 2>&1 & APP=$!; PIDS+=($APP)
declare -A URL=([socks]=http://10.94.0.2:8080 [http]=http://10.94.0.2:8080) OPTS=([socks]="--socks5 127.0.0.1:11080" [http]="-p -x http://127.0.0.1:11081")
ok=0
for _ in $(seq 100); do inA curl -s -o /dev/null --max-time 2 --socks5 127.0.0.1:11080 -r 0-0 http://10.94.0.2:8080/blob && { ok=1; break; }; sleep 0.1; done
[ "$ok" = 1 ] || { echo "bench-appmode: app mode does not answer ($(tail -n 3 "$WORK/fapp.log" | tr '\n' ' '))"; exit 1; }

if has_scen system; then
  ip netns exec "$B" "$FERRY" up --all --interface ferryb --state-dir "$WORK/stb" --stats-interval 0 "$WORK/fb.conf" >"$WORK/fb.log" 2>&1 & PIDS+=($!)
  wait_addr "$B" ferryb 10.98.0.2
  ip netns exec "$A" "$FERRY" up --all --interface ferrya --state-dir "$WORK/sta" --stats-interval 0 "$WORK/fa.conf" >"$WORK/fa.log" 2>&1 & PIDS+=($!)
  wait_addr "$A" ferrya 10.98.0.1
  for _ in $(seq 100); do inA ping -c1 -W1 -q 10.98.0.2 >/dev/null 2>&1 && break; sleep 0.05; done
  URL[system]=http://10.98.0.2:8080; OPTS[system]=""
fi
if has_scen gotatun; then
  rm -f /var/run/wireguard/gota.sock /var/run/wireguard/gotb.sock
  ip netns exec "$A" env WG_SUDO=1 "$GOTATUN" -f --disable-drop-privileges gota >"$WORK/gota.log" 2>&1 & PIDS+=($!)
  ip netns exec "$B" env WG_SUDO=1 "$GOTATUN" -f --disable-drop-privileges gotb >"$WORK/gotb.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 200); do [ -S /var/run/wireguard/gota.sock ] && [ -S /var/run/wireguard/gotb.sock ] && break; sleep 0.05; done
  printf '[Interface]\nPrivateKey = %s\n[Peer]\nPublicKey = %s\nEndpoint = 198.18.0.2:51823\nAllowedIPs = 10.96.0.2/32\n' "$kA" "$pB" >"$WORK/gota.conf"
  printf '[Interface]\nPrivateKey = %s\nListenPort = 51823\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.96.0.1/32\n' "$kB" "$pA" >"$WORK/gotb.conf"
  if inA wg setconf gota "$WORK/gota.conf" && inB wg setconf gotb "$WORK/gotb.conf"; then
    inA ip addr add 10.96.0.1/24 dev gota; inB ip addr add 10.96.0.2/24 dev gotb
    inA ip link set gota mtu 1420 up; inB ip link set gotb mtu 1420 up
    if inA ping -c1 -W3 -q 10.96.0.2 >/dev/null 2>&1; then URL[gotatun]=http://10.96.0.2:8080; OPTS[gotatun]=""
    else echo "bench-appmode: skipping gotatun: no ping through it"; drop_scen gotatun; fi
  else echo "bench-appmode: skipping gotatun: wg setconf failed"; drop_scen gotatun; fi
fi

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{n += $1} END {printf "%.0f\n", n}'; }
mbit() { awk -v b="$1" 'BEGIN {printf "%.0f\n", b * 8 / 1e6}'; }
# Transfers: down/up, Mbit/s (curl's average over the whole transfer).
xfer() { # scenario dir
  local s=$1 out
  if [ "$2" = down ]; then
    out=$(inA curl -s -o /dev/null --max-time 120 -w '%{speed_download}' ${OPTS[$s]} "${URL[$s]}/blob" || echo 0)
  else
    out=$(inA curl -s -o /dev/null --max-time 120 -w '%{speed_upload}' -T "$WORK/blob" ${OPTS[$s]} "${URL[$s]}/up" || echo 0)
  fi
  mbit "$out"
}
# Peak RSS of the app-mode process while a command runs (sampled every 50 ms).
peak_rss() { # file cmd...
  local f=$1; shift
  ( peak=0; while kill -0 "$APP" 2>/dev/null; do r=$(rss_kib "$APP"); [ "$r" -gt "$peak" ] && { peak=$r; echo "$peak" >"$f"; }; sleep 0.05; done ) & local mon=$!
  "$@"
  kill "$mon" 2>/dev/null || true; wait "$mon" 2>/dev/null || true
}
# With PERF_DIR set, the first round's SOCKS5 transfers are profiled (perf record -g) into it.
profiled() { # tag cmd...
  local tag=$1; shift
  if [ -z "${PERF_DIR:-}" ] || [ -z "$tag" ]; then "$@"; return; fi
  mkdir -p "$PERF_DIR"
  perf record -q -F 1999 -g -p "$APP" -o "$PERF_DIR/$tag.data" >/dev/null 2>&1 & local p=$!
  "$@"
  kill -INT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
}
RSS0=$(rss_kib "$APP")
for r in $(seq "$ROUNDS"); do
  for s in "${SCEN[@]}"; do
    for d in down up; do
      if [ "$s" = socks ] || [ "$s" = http ]; then
        perf_tag=
        [ "$r" = 1 ] && [ "$s" = socks ] && perf_tag=$d
        peak_rss "$WORK/peak" profiled "$perf_tag" xfer "$s" "$d" >"$WORK/last"
        cat "$WORK/peak" >>"$WORK/rss_load"
      else
        xfer "$s" "$d" >"$WORK/last"
      fi
      cat "$WORK/last" >>"$WORK/res_${s}_$d"
      printf 'round %d  %-8s %-4s %6s Mbit/s\n' "$r" "$s" "$d" "$(cat "$WORK/last")"
    done
  done
done

# IDLE_N idle connections through SOCKS5, held by a helper whose stdin is fd 9. Each round
# opens them, measures with them open, closes them, and measures the same transfers without
# them, so the two are compared side by side in time (the machine's speed drifts).
idle_open() {
  rm -f "$WORK/hold" "$WORK/ready"; mkfifo "$WORK/hold"
  ip netns exec "$A" python3 "$HELPER" idle 127.0.0.1:11080 10.94.0.2 9000 "$IDLE_N" "$WORK/ready" <"$WORK/hold" >"$WORK/idle.log" 2>&1 & IDLER=$!; PIDS+=($IDLER)
  exec 9>"$WORK/hold"
  for _ in $(seq 1200); do [ -s "$WORK/ready" ] && break; sleep 0.05; done
  read -r OPEN FAILED <"$WORK/ready" || { OPEN=0; FAILED=$IDLE_N; }
}
idle_close() {
  exec 9>&-
  wait "$IDLER" 2>/dev/null || true
  # Closed connections linger in the stack until their FIN handshake ends; give them 5 s.
  for _ in $(seq 50); do sleep 0.1; done
}
for r in $(seq "$ROUNDS"); do
  idle_open
  if [ "$r" = 1 ]; then
    echo "idle connections: $OPEN open, $FAILED failed"
    sleep 1
    RSS_IDLE=$(rss_kib "$APP")
    c0=$(cpu_ns "$APP")
    sleep "$IDLE_S"
    CPU_IDLE=$(awk -v c=$(( $(cpu_ns "$APP") - c0 )) -v t="$IDLE_S" 'BEGIN {printf "%.3f", c / 1e9 / t * 100}')
  fi
  for d in down up; do
    perf_tag=
    [ "$r" = 1 ] && perf_tag=idle-$d
    peak_rss "$WORK/peak" profiled "$perf_tag" xfer socks "$d" >"$WORK/last"
    cat "$WORK/peak" >>"$WORK/rss_idle_load"
    cat "$WORK/last" >>"$WORK/idle_$d"
    printf 'round %d  socks+%d idle %-4s %6s Mbit/s\n' "$r" "$OPEN" "$d" "$(cat "$WORK/last")"
  done
  idle_close
  [ "$r" = 1 ] && RSS_AFTER=$(rss_kib "$APP")
  for d in down up; do
    xfer socks "$d" >"$WORK/last"
    cat "$WORK/last" >>"$WORK/alone_$d"
    printf 'round %d  socks, none idle %-4s %6s Mbit/s\n' "$r" "$d" "$(cat "$WORK/last")"
  done
done

median() { [ -f "$1" ] || { echo 0; return; }; sort -g "$1" | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print 0}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
echo
echo "== medians over $ROUNDS rounds, curl ${MB} MB, A -> B (Mbit/s)"
printf '%-10s %9s %9s %9s\n' scenario down up up/down
for s in "${SCEN[@]}"; do
  dn=$(median "$WORK/res_${s}_down"); up=$(median "$WORK/res_${s}_up")
  printf '%-10s %9s %9s %9s\n' "$s" "$dn" "$up" "$(ratio "$up" "$dn")"
done
dn=$(median "$WORK/idle_down"); up=$(median "$WORK/idle_up")
printf '%-10s %9s %9s %9s\n' "socks+idle" "$dn" "$up" "$(ratio "$up" "$dn")"
# Up / down of the same round (transfers next to each other in time), then their median.
for s in "${SCEN[@]}"; do
  paste "$WORK/res_${s}_up" "$WORK/res_${s}_down" 2>/dev/null | awk '$2 > 0 {printf "%.3f\n", $1 / $2}' >"$WORK/pair_$s"
done
printf 'up / down per round, median:'
for s in "${SCEN[@]}"; do printf '  %s %s' "$s" "$(median "$WORK/pair_$s")"; done
echo
echo
sd=$(median "$WORK/res_socks_down")
for s in "${SCEN[@]}"; do
  [ "$s" = socks ] && continue
  printf 'socks / %-8s down %s  up %s\n' "$s" "$(ratio "$sd" "$(median "$WORK/res_${s}_down")")" "$(ratio "$(median "$WORK/res_socks_up")" "$(median "$WORK/res_${s}_up")")"
done
printf 'socks with %d idle / socks alone, same rounds: down %s  up %s\n' "$OPEN" "$(ratio "$(median "$WORK/idle_down")" "$(median "$WORK/alone_down")")" "$(ratio "$(median "$WORK/idle_up")" "$(median "$WORK/alone_up")")"
echo
echo "== ferry app-mode process (A)"
echo "RSS at start:                        $(mib "$RSS0") MiB"
echo "RSS under load (peak, median):       $(mib "$(median "$WORK/rss_load")") MiB   (goal < 32 MiB)"
echo "RSS with $OPEN idle connections:     $(mib "$RSS_IDLE") MiB   ($(awk -v a="$RSS_IDLE" -v b="$RSS0" -v n="$OPEN" 'BEGIN {if (n > 0) printf "%.1f", (a - b) / n; else print "-"}') KiB per connection over start; goal < 64)"
echo "RSS under load with them (peak):     $(mib "$(median "$WORK/rss_idle_load")") MiB"
echo "RSS after they closed:               $(mib "$RSS_AFTER") MiB"
echo "CPU while $OPEN sit idle (${IDLE_S} s):  ${CPU_IDLE} % of one core   (goal: none)"
