#!/usr/bin/env bash
# Measures the lab: time from start to its JSON line, and requests per second with the lab
# pinned to one core (wrk on the other). Needs wrk (apt-get install wrk). Prints a small table.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "bench-lab: installing wrk"; apt-get install -y -qq wrk >/dev/null; }
cargo build --release -p ferry-cli >/dev/null
bin=target/release/ferry
duration=${BENCH_SECONDS:-10}

# Startup: 10 runs, median of the time until the JSON line is printed.
starts=()
for _ in $(seq 10); do
  t0=$(date +%s%N)
  coproc LAB { exec "$bin" lab --listen 127.0.0.1:0; }
  read -r line <&"${LAB[0]}"
  t1=$(date +%s%N)
  kill "$LAB_PID"; wait "$LAB_PID" 2>/dev/null || true
  starts+=($(( (t1 - t0) / 1000 )))
done
startup_us=$(printf '%s\n' "${starts[@]}" | sort -n | sed -n 5p)

coproc LAB { exec taskset -c 0 "$bin" lab --listen 127.0.0.1:0; }
read -r line <&"${LAB[0]}"
trap 'kill $LAB_PID 2>/dev/null || true' EXIT
control=$(printf '%s' "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["control"])')
neosc=$(printf '%s' "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["neosc"])')
tb=$(printf '%s' "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tunnelbyte"])')
accounts=$(curl -s "$control/accounts")
tb_token=$(printf '%s' "$accounts" | python3 -c 'import json,sys; a=json.load(sys.stdin)["tunnelbyte"]; print([x for x in a if x["tier"]=="paid"][0]["token"])')
neo_user=$(printf '%s' "$accounts" | python3 -c 'import json,sys; a=json.load(sys.stdin)["neosc"][0]; print(json.dumps({"email":a["email"],"password":a["password"]}))')
neo_token=$(curl -s -H 'content-type: application/json' -d "$neo_user" "$neosc/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

rps() { wrk -t1 -c16 -d"${duration}s" -H "Authorization: Bearer $2" "$1" | awk '/Requests\/sec/ {print $2}'; }
r_usage=$(taskset -c 1 bash -c "$(declare -f rps); duration=$duration; rps '$tb/usage' '$tb_token'")
r_ws=$(taskset -c 1 bash -c "$(declare -f rps); duration=$duration; rps '$neosc/sessions/active' '$neo_token'")
printf '%-40s %12s\n' "measure" "value"
printf '%-40s %12s\n' "startup to JSON line (median of 10)" "$((startup_us / 1000)).$(( (startup_us % 1000) / 100 )) ms"
printf '%-40s %12s\n' "GET tunnelbyte /usage, lab on 1 core" "$r_usage req/s"
printf '%-40s %12s\n' "GET neosc /sessions/active, 1 core" "$r_ws req/s"
