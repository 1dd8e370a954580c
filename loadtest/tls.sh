#!/usr/bin/env bash
# TLS load test: the same data directory served once as plain HTTP and once with a throwaway
# self-signed certificate (TLS 1.3, rustls), ONE server process per variant and round, the
# variants measured in the same run so that their ratios compare. Per variant, with oha for
# $DURATION each at $CONNS connections:
#   ceiling          GET /health/alive, keep-alive
#   issuance         POST /oauth2/token (client_credentials, client_secret_basic), keep-alive
#   introspect       POST /admin/oauth2/introspect (a pool of valid tokens), keep-alive
#   ceiling-new      GET /health/alive, `--disable-keepalive`: a new connection per request
#   issuance-new     POST /oauth2/token, a new connection per request
# and with TLS only:
#   ceiling-full     as ceiling-new, with a FULL handshake (certificate, signature, key exchange)
#   issuance-full    as issuance-new, with a full handshake: a client-credentials grant per TLS connection
# oha (rustls) resumes TLS 1.3 sessions: it keeps the server's session tickets per server name
# and offers one on the next connection, so `--disable-keepalive` alone measures resumed
# handshakes (PSK with an X25519 key exchange, no certificate and no signature). The -full
# scenarios defeat that: the URL's host is one of 1000 names (h000.loadtest ... h999.loadtest,
# oha's --rand-regex-url), each mapped to 127.0.0.1 with --connect-to; a name comes round again
# long after the server's session cache (256 entries in rustls) has dropped its ticket. A short
# census after the rounds sniffs the ServerHellos on the loopback interface (needs CAP_NET_RAW)
# and counts full and resumed handshakes of both modes, with the cipher suite and group.
# Every run records the server's CPU time (utime+stime of all its threads, /proc/PID/stat), oha's
# (/usr/bin/time) and the busy share of the CPUs of both (/proc/stat): rates per server core
# (the count of SERVER_CPUS) and per server CPU-second, and which side was saturated.
# The client and the pool of tokens are made once, on the plain server; both variants reuse
# the data directory and SECRETS_SYSTEM, so the tokens stay valid across the restarts.
# Rounds are interleaved and alternate the order (plain, TLS; TLS, plain; ...) so that neither
# variant always meets the larger store (every issuance run adds its tokens). Every request must
# answer 2xx: any non-2xx or error other than oha's own cut-off at the end of a run (errors
# containing "deadline") fails the script. Prints the tables and writes them, with the exact
# commands, to loadtest/runs/<UTC stamp>-<commit>-tls.md.
#
#   loadtest/tls.sh                                # builds target/release/hydra first
#   BIN=path/to/hydra DURATION=3s ROUNDS=1 loadtest/tls.sh
#
# Env: BIN (a hydra binary; unset: `cargo build --release --bin hydra` and target/release/hydra),
#      DURATION (15s), CONNS (64), ROUNDS (2), POOL (2000 tokens), SERVER_CPUS (0), LOAD_CPUS (1),
#      CERT_KEY (ecdsa: P-256; rsa: RSA 2048), LOG_LEVEL (info, the default configuration),
#      ENGINE_WORKERS (default: CPUs in SERVER_CPUS), EXTRA_ENV (extra server env), PUBLIC_PORT
#      (14744), ADMIN_PORT (14745), LABEL (added to the run file name). Needs oha (`cargo
#      install --locked oha` when missing), openssl and GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-2}
POOL=${POOL:-2000}
SERVER_CPUS=${SERVER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
CERT_KEY=${CERT_KEY:-ecdsa}
PUB=${PUBLIC_PORT:-14744}
ADM=${ADMIN_PORT:-14745}

die() { echo "tls: $*" >&2; exit 1; }

case "$CERT_KEY" in
  ecdsa) CERT_NEWKEY=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) CERT_DESC="ECDSA P-256" ;;
  rsa) CERT_NEWKEY=(-newkey rsa:2048) CERT_DESC="RSA 2048" ;;
  *) die "CERT_KEY is ecdsa or rsa, not $CERT_KEY" ;;
esac
source loadtest/lib.sh
select_bin
command -v oha >/dev/null || cargo install --locked oha
command -v openssl >/dev/null || die "needs openssl"
[ -x /usr/bin/time ] || die "needs GNU time at /usr/bin/time (apt-get install -y time)"

DATA=$(mktemp -d)
SERVER= SNIFFER=
cleanup() {
  for pid in $SERVER $SNIFFER; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$DATA"
}
trap cleanup EXIT

# The throwaway certificate: self-signed, for 127.0.0.1 and localhost, valid for a day.
openssl req -x509 "${CERT_NEWKEY[@]}" -nodes -days 1 -subj /CN=localhost \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$DATA/key.pem" -out "$DATA/cert.pem" 2>/dev/null ||
  die "openssl could not make the certificate"

# The CPUs of a taskset list ("0", "0-1", "0,2-3"), space-separated.
cpu_ids() {
  python3 -c '
import sys
ids = []
for part in sys.argv[1].split(","):
    a, _, b = part.partition("-")
    ids += range(int(a), int(b or a) + 1)
print(" ".join(map(str, ids)))' "$1"
}
SERVER_IDS=$(cpu_ids "$SERVER_CPUS")
LOAD_IDS=$(cpu_ids "$LOAD_CPUS")
# Busy and total ticks of some CPUs since boot, every process (and steal) counted: core_ticks "0 1"
core_ticks() {
  awk -v ids=" $1 " '$1 ~ /^cpu[0-9]+$/ && index(ids, " " substr($1, 4) " ") {
    busy += $2 + $3 + $4 + $7 + $8 + $9; total += $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }
    END { print busy, total }' /proc/stat
}
# The server's CPU time in ticks (utime + stime, all threads).
server_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }

BASE_ENV=(DSN="redb://$DATA/store" SECRETS_SYSTEM=loadtest-system-secret-0123456789
  SERVE_PUBLIC_HOST=127.0.0.1 SERVE_PUBLIC_PORT="$PUB" SERVE_ADMIN_HOST=127.0.0.1 SERVE_ADMIN_PORT="$ADM"
  LOG_LEVEL=${LOG_LEVEL:-info} ${ENGINE_WORKERS:+ENGINE_WORKERS=$ENGINE_WORKERS} ${EXTRA_ENV:-})
TLS_ENV=(SERVE_TLS_CERT_PATH="$DATA/cert.pem" SERVE_TLS_KEY_PATH="$DATA/key.pem")

# Starts `hydra serve all` as plain HTTP or with the certificate on both listeners, waits until
# both answer, and fails unless they do: start_variant plain|tls
start_variant() {
  if [ "$1" = tls ]; then
    SCHEME=https SERVER_ENV=("${BASE_ENV[@]}" "${TLS_ENV[@]}")
  else
    SCHEME=http SERVER_ENV=("${BASE_ENV[@]}")
  fi
  env "${SERVER_ENV[@]}" taskset -c "$SERVER_CPUS" "$BIN" serve all >"$DATA/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do
    curl -sfk "$SCHEME://127.0.0.1:$PUB/health/ready" >/dev/null 2>&1 &&
      curl -sfk "$SCHEME://127.0.0.1:$ADM/health/ready" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sfk "$SCHEME://127.0.0.1:$PUB/health/ready" >/dev/null && curl -sfk "$SCHEME://127.0.0.1:$ADM/health/ready" >/dev/null ||
    { tail -n 20 "$DATA/server.log" >&2; die "the $1 server did not start"; }
  grep -q "tls=$([ "$1" = tls ] && echo true || echo false)" "$DATA/server.log" ||
    { tail -n 20 "$DATA/server.log" >&2; die "the $1 server does not log the expected tls= state"; }
  [ -n "${DRIVER:-}" ] || DRIVER=$(grep -m1 -o 'driver=[^ ]*' "$DATA/server.log" || echo "not in the log")
}
# Stops the server and keeps the count of its log lines above info by message: stop_variant plain|tls
stop_variant() {
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=
  { grep -v 'level=info' "$DATA/server.log" | grep -o 'level=[a-z]* msg="[^"]*"' || true; } | sed "s/^/$1 /" >>"$DATA/warnings"
}

# Introspects the first and the last token of the pool over $SCHEME and fails unless both are
# active (the introspection scenario must measure real hits, on both variants).
pool_active() {
  python3 - "$SCHEME://127.0.0.1:$ADM/admin/oauth2/introspect" "$DATA/pool.txt" <<'PY'
import json, ssl, sys, urllib.request
url, pool = sys.argv[1], open(sys.argv[2]).read().split()
ctx = ssl._create_unverified_context()
for body in (pool[0], pool[-1]):
    req = urllib.request.Request(url, body.encode(), {"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, context=ctx) as r:
        if not json.loads(r.read()).get("active"):
            sys.exit(f"tls: a pool token is not active at {url}")
PY
}

# Runs one oha command (its JSON to $DATA/NAME.json) and records, in $DATA/NAME.cpu: the wall
# clock before and after, the server's CPU ticks before and after, oha's user and system
# seconds, and the busy/total ticks of SERVER_CPUS and LOAD_CPUS before and after: measure NAME CMD...
measure() {
  local name=$1; shift
  local sc0 lc0 s0 t0 t1 s1 sc1 lc1
  sc0=$(core_ticks "$SERVER_IDS"); lc0=$(core_ticks "$LOAD_IDS"); s0=$(server_ticks); t0=$(date +%s.%N)
  /usr/bin/time -f '%U %S' -o "$DATA/$name.time" "$@" >"$DATA/$name.json"
  t1=$(date +%s.%N); s1=$(server_ticks); sc1=$(core_ticks "$SERVER_IDS"); lc1=$(core_ticks "$LOAD_IDS")
  echo "$t0 $t1 $s0 $s1 $(tail -n 1 "$DATA/$name.time") $sc0 $sc1 $lc0 $lc1" >"$DATA/$name.cpu"
  check_run "$DATA/$name.json" "$name" "$DATA/server.log"
  sleep 1
}

# The client and the pool of tokens, on the plain server.
start_variant plain
CLIENT=$(new_client --grant-type client_credentials --scope read --name loadtest-tls)
ID=$(json_field "$CLIENT" client_id)
SECRET=$(json_field "$CLIENT" client_secret)
token_pool "$ID" "$SECRET" "$POOL" "$DATA/pool.txt"
pool_active
stop_variant plain
sleep 1

OHA=(taskset -c "$LOAD_CPUS" oha --no-tui --output-format json -z "$DURATION" -c "$CONNS")
FORM=(-m POST -T application/x-www-form-urlencoded)
BODY='grant_type=client_credentials&scope=read'
# 1000 server names for the full-handshake scenarios, all of them 127.0.0.1.
NAMES=()
for i in $(seq -w 0 999); do NAMES+=(--connect-to "h$i.loadtest:$PUB:127.0.0.1:$PUB"); done
ROTATE="https://h[0-9]{3}.loadtest:$PUB" # oha's --rand-regex-url: `.` is literal there

# All scenarios of one variant on one server process: variant plain|tls ROUND
variant() {
  local v=$1 r=$2 tls=()
  start_variant "$v"
  [ "$v" = tls ] && tls=(--insecure)
  if [ "$v" = tls ] && [ -z "${CLI_CHECK:-}" ]; then
    # The CLI against the self-signed admin endpoint.
    got=$("$BIN" get oauth2-client "$ID" -e "https://127.0.0.1:$ADM" --skip-tls-verify --format json)
    [ "$(json_field "$got" client_id)" = "$ID" ] || die "hydra get oauth2-client over https returned another client"
    CLI_CHECK=ok
  fi
  pool_active
  local base="$SCHEME://127.0.0.1"
  measure "$v.ceiling.$r" "${OHA[@]}" "${tls[@]}" "$base:$PUB/health/alive"
  measure "$v.issuance.$r" "${OHA[@]}" "${tls[@]}" "${FORM[@]}" -a "$ID:$SECRET" -d "$BODY" "$base:$PUB/oauth2/token"
  measure "$v.introspect.$r" "${OHA[@]}" "${tls[@]}" "${FORM[@]}" -Z "$DATA/pool.txt" "$base:$ADM/admin/oauth2/introspect"
  measure "$v.ceiling-new.$r" "${OHA[@]}" "${tls[@]}" --disable-keepalive "$base:$PUB/health/alive"
  measure "$v.issuance-new.$r" "${OHA[@]}" "${tls[@]}" --disable-keepalive "${FORM[@]}" -a "$ID:$SECRET" -d "$BODY" "$base:$PUB/oauth2/token"
  if [ "$v" = tls ]; then
    measure "$v.ceiling-full.$r" "${OHA[@]}" "${tls[@]}" --disable-keepalive "${NAMES[@]}" --rand-regex-url "$ROTATE/health/alive"
    measure "$v.issuance-full.$r" "${OHA[@]}" "${tls[@]}" --disable-keepalive "${NAMES[@]}" "${FORM[@]}" -a "$ID:$SECRET" -d "$BODY" \
      --rand-regex-url "$ROTATE/oauth2/token"
  fi
  pool_active
  stop_variant "$v"
  sleep 1
}

for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then variant plain "$r"; variant tls "$r"; else variant tls "$r"; variant plain "$r"; fi
done

# The census: which handshakes oha makes in both new-connection modes, with which cipher suite
# and group, from the ServerHellos on the loopback interface (TLS 1.3 sends them in the clear; a
# resumed handshake's carries the pre_shared_key extension). Not measured; a sample when the
# sniffer cannot keep up. Plus openssl s_client once, for the certificate's signature type.
census() { # census OUT OHA-ARGS...
  local out=$1; shift
  python3 - "$PUB" 5 >"$out" 2>"$out.err" <<'PY' &
import collections, json, socket, struct, sys, time
port, secs = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
s.bind(("lo", 0))
s.settimeout(0.2)
print("ready", file=sys.stderr, flush=True)
full = resumed = 0
suites, groups, versions = collections.Counter(), collections.Counter(), collections.Counter()
end = time.time() + secs
while time.time() < end:
    try:
        pkt, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    if addr[2] == socket.PACKET_OUTGOING or len(pkt) < 54 or pkt[12:14] != b"\x08\x00":
        continue
    ip = pkt[14:]
    if ip[9] != 6:
        continue
    tcp = ip[(ip[0] & 15) * 4:]
    if struct.unpack("!H", tcp[0:2])[0] != port:
        continue
    p = tcp[(tcp[12] >> 4) * 4:]
    if len(p) < 44 or p[0] != 0x16 or p[5] != 0x02:  # a handshake record starting with ServerHello
        continue
    try:
        i = 9 + 2 + 32
        i += 1 + p[i]
        suite = struct.unpack("!H", p[i:i + 2])[0]
        i += 3
        end_ext = i + 2 + struct.unpack("!H", p[i:i + 2])[0]
        i += 2
        psk, group, version = False, None, "TLS 1.2"
        while i + 4 <= end_ext:
            t, n = struct.unpack("!HH", p[i:i + 4])
            body = p[i + 4:i + 4 + n]
            i += 4 + n
            if t == 41:
                psk = True
            elif t == 51 and n >= 2:
                group = struct.unpack("!H", body[:2])[0]
            elif t == 43 and body == b"\x03\x04":
                version = "TLS 1.3"
    except (IndexError, struct.error):
        continue
    SUITES = {0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384", 0x1303: "TLS_CHACHA20_POLY1305_SHA256"}
    GROUPS = {0x1d: "X25519", 0x17: "secp256r1", 0x18: "secp384r1", 0x11ec: "X25519MLKEM768", None: "none"}
    suites[SUITES.get(suite, hex(suite))] += 1
    groups[GROUPS.get(group, hex(group))] += 1
    versions[version] += 1
    resumed += psk
    full += not psk
print(json.dumps({"full": full, "resumed": resumed, "suites": suites, "groups": groups, "versions": versions}))
PY
  SNIFFER=$!
  for _ in $(seq 50); do grep -q ready "$out.err" 2>/dev/null && break; kill -0 "$SNIFFER" 2>/dev/null || break; sleep 0.1; done
  if grep -q ready "$out.err" 2>/dev/null; then
    taskset -c "$LOAD_CPUS" oha --no-tui --output-format json -z 3s -c "$CONNS" --insecure --disable-keepalive "$@" >"$out.oha"
  fi
  wait "$SNIFFER" || true
  SNIFFER=
}
start_variant tls
census "$DATA/census-new.json" "https://127.0.0.1:$PUB/health/alive"
sleep 1
census "$DATA/census-full.json" "${NAMES[@]}" --rand-regex-url "$ROTATE/health/alive"
S_CLIENT=$(openssl s_client -connect "127.0.0.1:$PUB" -servername localhost </dev/null 2>/dev/null |
  grep -E '^(New,|Peer signature type|Peer signing digest|Server Temp Key)' | paste -sd ';' | sed 's/;/; /g' || true)
stop_variant tls

CLK_TCK=$(getconf CLK_TCK)
NS=$(wc -w <<<"$SERVER_IDS")
NL=$(wc -w <<<"$LOAD_IDS")
TABLE=$(python3 - "$DATA" "$ROUNDS" "$CLK_TCK" "$NS" "$NL" <<'PY'
import json, os, statistics, sys
d, rounds, tck, ns, nl = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
R = range(1, rounds + 1)
med = statistics.median
def load(v, s, r):
    return json.load(open(f"{d}/{v}.{s}.{r}.json"))
def rate(v, s, r):
    return load(v, s, r)["summary"]["requestsPerSec"]
def counts(j):
    codes = j.get("statusCodeDistribution", {})
    dist = j.get("errorDistribution", {})
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    errors = sum(v for k, v in codes.items() if not k.startswith("2")) + sum(v for k, v in dist.items() if "deadline" not in k)
    cut = sum(v for k, v in dist.items() if "deadline" in k)
    return ok, errors, cut
def cpu(v, s, r):
    t0, t1, s0, s1, ou, osys, sb0, st0, sb1, st1, lb0, lt0, lb1, lt1 = map(float, open(f"{d}/{v}.{s}.{r}.cpu").read().split())
    wall = t1 - t0
    server = (s1 - s0) / tck
    return {"wall": wall, "server": server, "oha": ou + osys,
            "server_util": server / (wall * ns), "oha_util": (ou + osys) / (wall * nl),
            "server_busy": (sb1 - sb0) / max(st1 - st0, 1), "load_busy": (lb1 - lb0) / max(lt1 - lt0, 1)}
def median_round(v, s):
    return sorted(R, key=lambda r: rate(v, s, r))[rounds // 2]
def lat(j):
    p = j.get("latencyPercentiles", {})
    return f"{p.get('p50', 0) * 1000:.2f} / {p.get('p99', 0) * 1000:.2f}"
def bottleneck(c):
    s, o = c["server_util"] >= 0.9, c["oha_util"] >= 0.9
    if s and o:
        return "both"
    if s:
        return "server"
    if o:
        return "oha"
    return "neither (CPUs shared)" if max(c["server_busy"], c["load_busy"]) >= 0.9 else "neither"

print("Keep-alive: plain HTTP and TLS on the same data directory, the same client and pool.")
print()
print("| scenario | plain req/s | TLS req/s | TLS / plain | plain p50 / p99 ms | TLS p50 / p99 ms | server CPU µs/req plain / TLS | server CPU % plain / TLS | oha CPU % plain / TLS | errors | cut at end |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
ratios = {}
for s in ["ceiling", "issuance", "introspect"]:
    ratios[s] = med([rate("tls", s, r) / rate("plain", s, r) for r in R])
    rp, rt = median_round("plain", s), median_round("tls", s)
    jp, jt = load("plain", s, rp), load("tls", s, rt)
    cp, ct = cpu("plain", s, rp), cpu("tls", s, rt)
    okp, ep, cutp = counts(jp)
    okt, et, cutt = counts(jt)
    print(f"| {s} | {rate('plain', s, rp):,.0f} | {rate('tls', s, rt):,.0f} | {ratios[s]:.2f} | {lat(jp)} | {lat(jt)} "
          f"| {cp['server'] / okp * 1e6:.1f} / {ct['server'] / okt * 1e6:.1f} "
          f"| {cp['server_util'] * 100:.0f} / {ct['server_util'] * 100:.0f} | {cp['oha_util'] * 100:.0f} / {ct['oha_util'] * 100:.0f} "
          f"| {ep} / {et} | {cutp} / {cutt} |")
print()
verdict = lambda x: "met" if x >= 0.85 else "NOT met"
print(f"Goal (TLS ≥ 0.85× plain, same run): issuance {ratios['issuance']:.2f} ({verdict(ratios['issuance'])}), "
      f"introspection {ratios['introspect']:.2f} ({verdict(ratios['introspect'])}).")
print()

print(f"A new connection per request (`--disable-keepalive`); per server core = req/s / {ns} (the CPUs of SERVER_CPUS);")
print("per server CPU-second = 2xx responses / the server's CPU time (utime+stime) over the run.")
print()
print("| scenario | handshake | req/s | per server core | per server CPU-second | server CPU µs/req | p50 / p99 ms | server CPU % | oha CPU % | server / load CPUs busy % (all processes) | saturated | errors | cut at end |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
rows = [("plain", "ceiling-new", "none (plain HTTP)"), ("plain", "issuance-new", "none (plain HTTP)"),
        ("tls", "ceiling-new", "oha's default: resumed when it holds a ticket (census)"),
        ("tls", "issuance-new", "oha's default: resumed when it holds a ticket (census)"),
        ("tls", "ceiling-full", "full (1000 rotating server names)"), ("tls", "issuance-full", "full (1000 rotating server names)")]
res = {}
for v, s, hs in rows:
    r = median_round(v, s)
    j, c = load(v, s, r), cpu(v, s, r)
    ok, e, cut = counts(j)
    res[(v, s)] = (rate(v, s, r), ok / c["server"], c)
    print(f"| {v} {s} | {hs} | {rate(v, s, r):,.0f} | {rate(v, s, r) / ns:,.0f} | {ok / c['server']:,.0f} | {c['server'] / ok * 1e6:.0f} "
          f"| {lat(j)} | {c['server_util'] * 100:.0f} | {c['oha_util'] * 100:.0f} | {c['server_busy'] * 100:.0f} / {c['load_busy'] * 100:.0f} "
          f"| {bottleneck(c)} | {e} | {cut} |")
print()
for key in ["new", "full"]:
    try:
        c = json.load(open(f"{d}/census-{key}.json"))
        n = c["full"] + c["resumed"]
        fmt = lambda m: ", ".join(f"{k} {v}" for k, v in m.items())
        print(f"Census, oha `--disable-keepalive`{' with 1000 rotating server names' if key == 'full' else ''} (3 s, GET /health/alive, "
              f"{n} ServerHellos sampled): {c['full']} full, {c['resumed']} resumed ({c['resumed'] / max(n, 1) * 100:.1f}% resumed); "
              f"{fmt(c['versions'])}; {fmt(c['suites'])}; key exchange {fmt(c['groups'])}.")
    except (OSError, ValueError, KeyError):
        err = open(f"{d}/census-{key}.json.err").read().strip().splitlines() if os.path.exists(f"{d}/census-{key}.json.err") else []
        print(f"Census ({key}): not taken ({err[-1] if err else 'no output'}; the sniffer needs CAP_NET_RAW).")
    print()
rate_full, cpus_full, _ = res[("tls", "issuance-full")]
print(f"Grants with a full TLS handshake each: {rate_full / ns:,.0f} per server core, {cpus_full:,.0f} per server CPU-second "
      f"({rate_full / ns / 120:.0f}× and {cpus_full / 120:.0f}× the 120 client-credentials grants per vCPU that Keycloak's sizing "
      f"guide plans when every grant opens a TLS connection).")
print()
warnings = {}
if os.path.exists(f"{d}/warnings"):
    for line in open(f"{d}/warnings"):
        warnings[line.strip()] = warnings.get(line.strip(), 0) + 1
if warnings:
    print("Server log lines above info (variant, level, message: count over the run):")
    print()
    for k, v in sorted(warnings.items()):
        print(f"- {k}: {v}")
else:
    print("Server log lines above info: none.")
if rounds > 1:
    print()
    print("Every round (req/s; TLS / plain in that round):")
    print()
    for r in R:
        parts = [f"{s} plain {rate('plain', s, r):,.0f}, TLS {rate('tls', s, r):,.0f} ({rate('tls', s, r) / rate('plain', s, r):.2f})"
                 for s in ["ceiling", "issuance", "introspect", "ceiling-new", "issuance-new"]]
        parts += [f"{s} TLS {rate('tls', s, r):,.0f}" for s in ["ceiling-full", "issuance-full"]]
        print(f"- round {r} ({'plain first' if r % 2 else 'TLS first'}): " + "; ".join(parts))
PY
)
echo "$TABLE"

STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git diff --quiet HEAD -- src storage protocol Cargo.toml Cargo.lock 2>/dev/null || echo " (the tree had uncommitted changes to the server's sources)")
OUT="loadtest/runs/$STAMP-$COMMIT-tls${LABEL:+-$LABEL}.md"
redact() { sed "s|$DATA|<temp dir>|g; s|SECRETS_SYSTEM=[^ ]*|SECRETS_SYSTEM=<secret>|"; }
{
  echo "# TLS load test $STAMP ($COMMIT)"
  echo
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r)."
  echo "Server: $BIN_NOTE ($("$BIN" version 2>/dev/null | head -1 | xargs)), the tree at commit $COMMIT$DIRTY; \`taskset -c $SERVER_CPUS\`, store \`$DRIVER\`, durable commits (a write-ahead log record written with O_DSYNC before every 2xx);"
  echo "env: \`$(printf '%s ' "${BASE_ENV[@]}" | redact | xargs)\`, and for TLS also \`$(printf '%s ' "${TLS_ENV[@]}" | redact | xargs)\`."
  echo "Certificate: $CERT_DESC (CERT_KEY=$CERT_KEY), self-signed for IP 127.0.0.1 and localhost, made by \`openssl req -x509 ${CERT_NEWKEY[*]} -nodes -days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost\`."
  echo "TLS: rustls with ring on the server (TLS 1.2 and 1.3; every handshake here was TLS 1.3); oha $(oha --version | awk '{print $2}') with rustls and aws-lc-rs, \`--insecure\` (no certificate check)."
  echo "\`openssl s_client\` once: ${S_CLIENT:-no answer}."
  echo "Load: oha, \`taskset -c $LOAD_CPUS\`, $CONNS connections, $DURATION per scenario, $ROUNDS round(s) interleaved, the order alternating (plain, TLS; TLS, plain; ...); the tables show each scenario's median round (by req/s), the TLS / plain ratio is the median of the rounds' ratios."
  echo
  echo "$TABLE"
  echo
  echo "Setup: one server process per variant and round on the same data directory (restarted between the"
  echo "variants, with or without the certificate); the client and a pool of $POOL tokens were made once, on the"
  echo "plain server (\`token_pool\` of loadtest/lib.sh), and reused by both variants; the first and the last pool"
  echo "token are introspected over each variant before and after its runs and must be active. The CLI was checked"
  echo "once against the TLS admin endpoint: \`hydra get oauth2-client <id> -e https://127.0.0.1:$ADM --skip-tls-verify\`."
  echo "CPU: the server's utime+stime (all threads) from /proc/PID/stat, oha's user+system time from \`/usr/bin/time\`,"
  echo "both over the wall time of the oha command; the busy share of the CPUs counts every process and steal"
  echo "(the machine is shared). \"saturated\": which side used at least 90% of its CPUs."
  echo
  echo "Commands (round $ROUNDS; the plain variant has http:// and no \`--insecure\`):"
  echo
  echo "- ceiling: \`${OHA[*]} --insecure https://127.0.0.1:$PUB/health/alive\`"
  echo "- issuance: \`${OHA[*]} --insecure ${FORM[*]} -a $ID:<secret> -d $BODY https://127.0.0.1:$PUB/oauth2/token\`"
  echo "- introspect: \`${OHA[*]} --insecure ${FORM[*]} -Z <pool of $POOL token bodies> https://127.0.0.1:$ADM/admin/oauth2/introspect\`"
  echo "- ceiling-new, issuance-new: as ceiling and issuance, with \`--disable-keepalive\`"
  echo "- ceiling-full: \`${OHA[*]} --insecure --disable-keepalive --connect-to h000.loadtest:$PUB:127.0.0.1:$PUB … --connect-to h999.loadtest:$PUB:127.0.0.1:$PUB --rand-regex-url '$ROTATE/health/alive'\`"
  echo "- issuance-full: \`${OHA[*]} --insecure --disable-keepalive <the same 1000 --connect-to> ${FORM[*]} -a $ID:<secret> -d $BODY --rand-regex-url '$ROTATE/oauth2/token'\`"
  echo "- census: the new-connection and full modes against /health/alive with \`-z 3s\`, unmeasured, with a packet sniffer on lo (Python, AF_PACKET) reading the ServerHellos"
  echo "- client: \`hydra create oauth2-client -e http://127.0.0.1:$ADM --format json --grant-type client_credentials --scope read --name loadtest-tls\`"
  echo
  echo "Run: \`${BIN_GIVEN}DURATION=$DURATION CONNS=$CONNS ROUNDS=$ROUNDS POOL=$POOL SERVER_CPUS=$SERVER_CPUS LOAD_CPUS=$LOAD_CPUS CERT_KEY=$CERT_KEY loadtest/tls.sh\`"
} >"$OUT"
echo "wrote $OUT"
