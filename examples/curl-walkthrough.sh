#!/bin/sh
# curl-walkthrough.sh — vigild's native API, step by step, with curl.
#
#   make run                                  # in one terminal: vigild on 127.0.0.1:8000
#   sh examples/curl-walkthrough.sh           # in another (VIGIL_URL=http://host:port to change)
#
# Creates a session, stores a policy, analyzes a trace with it, creates a monitor and pushes a
# trace to it in two chunks (only the second reports the new violation), then asks the
# stateless route and the invariant-server-compatible route, and deletes the session.
set -eu
URL=${VIGIL_URL:-http://127.0.0.1:8000}
DIR=$(cd "$(dirname "$0")" && pwd)

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# call METHOD PATH [JSON]: prints the answer (and the status on stderr)
call() {
    if [ $# -ge 3 ]; then
        curl -sS -m 30 -X "$1" -H 'Content-Type: application/json' --data-binary "$3" \
            -w '\n(HTTP %{http_code})\n' "$URL$2"
    else
        curl -sS -m 30 -X "$1" -w '\n(HTTP %{http_code})\n' "$URL$2"
    fi
}
# json_str FILE: the file's text as a JSON string (python3 if present, else sed)
json_str() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$1"
    else
        printf '"%s"' "$(sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' "$1" | awk '{ printf "%s\\n", $0 }')"
    fi
}
id_of() { sed -n 's/.*"id" *: *"\([^"]*\)".*/\1/p' | head -n 1; }
# show_id: shows the answer (on stderr: stdout is captured) and prints its "id"
show_id() { r=$(cat); printf '%s\n' "$r" >&2; printf '%s\n' "$r" | id_of; }

POLICY=$(json_str "$DIR/email-after-inbox.inv")
TRACE=$(cat "$DIR/email-after-inbox.json")

step "health"
call GET /healthz
call GET /readyz

step "create a session"
SID=$(call POST /v1/sessions '{"ttl": 600}' | show_id)
echo "session: $SID"

step "store a policy in it"
PID=$(call POST "/v1/sessions/$SID/policies" "{\"name\": \"inbox mail\", \"policy\": $POLICY}" | show_id)
echo "policy: $PID"

step "analyze a whole trace with the stored policy"
call POST "/v1/sessions/$SID/policies/$PID/analyze" "{\"trace\": $TRACE}"

step "create a monitor from the stored policy"
MID=$(call POST "/v1/sessions/$SID/monitors" "{\"policy_id\": \"$PID\"}" | show_id)
echo "monitor: $MID"

step "push the first chunk: the inbox is read, a mail goes to peter@acme.io (no violation)"
call POST "/v1/sessions/$SID/monitors/$MID/events" '{"seq": 0, "events": [
  {"role": "user", "content": "Summarise my inbox and send it to Peter."},
  {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_inbox", "arguments": {}}}]},
  {"role": "tool", "tool_call_id": "c1", "content": "Q3 numbers (confidential)"},
  {"role": "assistant", "content": null, "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "send_email", "arguments": {"to": "peter@acme.io"}}}]}
]}'

step "push the second chunk: a mail to gmail.com (one new violation)"
call POST "/v1/sessions/$SID/monitors/$MID/events" '{"seq": 1, "events": [
  {"role": "assistant", "content": null, "tool_calls": [{"id": "c3", "type": "function", "function": {"name": "send_email", "arguments": {"to": "peter.private@gmail.com"}}}]}
]}'

step "everything the monitor has reported"
call GET "/v1/sessions/$SID/monitors/$MID/violations"
call GET "/v1/sessions/$SID/monitors/$MID"

step "stateless check, no session"
call POST /v1/check "{\"policy\": $POLICY, \"trace\": $TRACE}"

step "a policy that does not compile: 422 with located diagnostics"
call POST /v1/compile '{"policy": "raise \"x\" if:\n    (m: Mesage)\n"}' || true

step "the invariant-server-compatible route"
call POST /api/policy/analyze "{\"policy\": $POLICY, \"trace\": $TRACE}"

step "delete the session (kills its worker)"
call DELETE "/v1/sessions/$SID"
