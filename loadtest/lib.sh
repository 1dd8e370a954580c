# Shared by the load-test scripts (sourced, not run): starting the server, creating clients,
# and building pools of tokens for introspection. Callers set BIN, DATA, PUB, ADM, SERVER_CPUS
# and SERVER_ENV first, and trap EXIT to kill $SERVER.

# Starts `hydra serve all` with SERVER_ENV on SERVER_CPUS and waits until it is ready. Its log
# goes to $DATA/server.log, or with LOG_SINK=pipe through a pipe to a process that only counts the
# lines (into $DATA/server.lines when the server exits), as under a supervisor that reads stderr:
# no log file competes on the disk with the store's synchronous writes.
start_server() {
  if [ "${LOG_SINK:-file}" = pipe ]; then
    env "${SERVER_ENV[@]}" taskset -c "$SERVER_CPUS" "$BIN" serve all > >(wc -l >"$DATA/server.lines") 2>&1 &
  else
    env "${SERVER_ENV[@]}" taskset -c "$SERVER_CPUS" "$BIN" serve all >"$DATA/server.log" 2>&1 &
  fi
  SERVER=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PUB/health/ready" >/dev/null 2>&1 && break
    sleep 0.1
  done
}

# A string field of a JSON document: json_field JSON NAME
json_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# Creates a client through the CLI and prints its JSON: new_client hydra-create-flags...
new_client() { "$BIN" create oauth2-client -e "http://127.0.0.1:$ADM" --format json "$@"; }

# Appends N fresh client_credentials tokens of client ID:SECRET to FILE as introspection bodies
# (`token=...`, one per line): token_pool ID SECRET N FILE
token_pool() {
  python3 - "$PUB" "$1" "$2" "$3" >>"$4" <<'PY'
import base64, http.client, json, sys, urllib.parse
port, cid, secret, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
auth = base64.b64encode(f"{urllib.parse.quote_plus(cid)}:{urllib.parse.quote_plus(secret)}".encode()).decode()
c = http.client.HTTPConnection("127.0.0.1", int(port))
for _ in range(n):
    c.request("POST", "/oauth2/token", "grant_type=client_credentials&scope=read",
              {"Authorization": "Basic " + auth, "Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse()
    body = json.loads(r.read())
    assert r.status == 200, body
    print("token=" + body["access_token"])
PY
}

# Fails the script unless every request of an oha run answered 2xx (oha's cut-off of the
# requests in flight at the end of the run excepted): check_run JSON WHAT LOG
check_run() {
  python3 - "$1" "$2" <<'PY' || { echo "--- last lines of $3:" >&2; tail -n 20 "$3" >&2; exit 1; }
import json, sys
j = json.load(open(sys.argv[1]))
codes = j.get("statusCodeDistribution", {})
bad = {k: v for k, v in codes.items() if not k.startswith("2")}
errs = {k: v for k, v in j.get("errorDistribution", {}).items() if "deadline" not in k}
ok = sum(v for k, v in codes.items() if k.startswith("2"))
print(f"{sys.argv[2]}: {j['summary']['requestsPerSec']:.0f} req/s, {ok} x 2xx", file=sys.stderr)
if bad or errs or ok == 0:
    print(f"{sys.argv[2]} answered non-2xx or errors: status {bad}, errors {errs}", file=sys.stderr)
    sys.exit(1)
PY
}

# BIN as given, or this tree's release build; sets BIN_GIVEN (for the run line) and BIN_NOTE
# (for the result file). Callers define `die` first.
select_bin() {
  BIN_GIVEN=${BIN:+BIN=<binary> }
  if [ -z "${BIN:-}" ]; then
    cargo build --release --bin hydra
    BIN=target/release/hydra
    BIN_NOTE="target/release/hydra, built by this script (\`cargo build --release --bin hydra\`)"
  else
    BIN_NOTE="a prebuilt binary (BIN=<binary>), not built by this script"
  fi
  [ -x "$BIN" ] || die "no hydra binary at $BIN"
}
