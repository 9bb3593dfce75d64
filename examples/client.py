#!/usr/bin/env python3
"""client.py — a minimal vigild client, Python standard library only (urllib).

    python3 examples/client.py [--url http://127.0.0.1:8000] [POLICY.inv TRACE.json]

Talks to vigild's native API (/v1: stateless check, sessions, stored policies, monitors) and to
the invariant-server-compatible route POST /api/policy/analyze. Without arguments it runs a demo
with examples/email-after-inbox.{inv,json}. Exit status: 0 when every call answered as expected.

Use as a library:

    from client import Vigil
    v = Vigil("http://127.0.0.1:8000")
    print(v.check(open("p.inv").read(), trace)["violations"])
"""
import argparse
import json
import os
import sys
import urllib.error
import urllib.request


class VigilError(Exception):
    """An error answer: HTTP status, the code and message of {"error": {...}} (or the body)."""

    def __init__(self, status, body):
        self.status = status
        self.body = body
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            self.code = err.get("code")
            self.message = err.get("message")
            self.diagnostics = err.get("diagnostics") or []
        else:
            self.code, self.message, self.diagnostics = None, str(body), []
        super().__init__(f"HTTP {status}: {self.code}: {self.message}")


class Vigil:
    def __init__(self, url="http://127.0.0.1:8000", timeout=30.0, token=None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.token = token

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = raw.decode("utf-8", "replace")
            raise VigilError(e.code, payload) from None
        return json.loads(raw) if raw else None

    # --- native API -------------------------------------------------------------------------
    def health(self):
        return self.request("GET", "/healthz")

    def check(self, policy, trace, parameters=None, language="invariant"):
        body = {"policy": policy, "trace": trace, "language": language}
        if parameters:
            body["parameters"] = parameters
        return self.request("POST", "/v1/check", body)

    def compile(self, policy, language="invariant", emit_lua=False):
        return self.request("POST", "/v1/compile",
                            {"policy": policy, "language": language, "emit_lua": emit_lua})

    def create_session(self, ttl=None, session_id=None):
        body = {}
        if ttl:
            body["ttl"] = ttl
        if session_id:
            body["id"] = session_id
        return self.request("POST", "/v1/sessions", body)

    def delete_session(self, sid):
        return self.request("DELETE", f"/v1/sessions/{sid}")

    def add_policy(self, sid, policy, name=None, language="invariant"):
        body = {"policy": policy, "language": language}
        if name:
            body["name"] = name
        return self.request("POST", f"/v1/sessions/{sid}/policies", body)

    def analyze(self, sid, pid, trace, parameters=None):
        body = {"trace": trace}
        if parameters:
            body["parameters"] = parameters
        return self.request("POST", f"/v1/sessions/{sid}/policies/{pid}/analyze", body)

    def create_monitor(self, sid, policy_id=None, policy=None, parameters=None):
        body = {"policy_id": policy_id} if policy_id is not None else {"policy": policy}
        if parameters:
            body["parameters"] = parameters
        return self.request("POST", f"/v1/sessions/{sid}/monitors", body)

    def push(self, sid, mid, events, seq=None):
        body = {"events": events}
        if seq is not None:
            body["seq"] = seq
        return self.request("POST", f"/v1/sessions/{sid}/monitors/{mid}/events", body)

    # --- invariant-server compatibility -----------------------------------------------------
    def server_analyze(self, policy, trace):
        """POST /api/policy/analyze, exactly as invariant-server's own client sends it."""
        return self.request("POST", "/api/policy/analyze", {"trace": trace, "policy": policy})


def demo(v, policy, trace):
    ok = True
    print("healthz:", v.health())

    r = v.check(policy, trace)
    print(f"POST /v1/check: {len(r['violations'])} violation(s)")
    for x in r["violations"]:
        print(f"  rule {x['rule']['index']} (line {x['rule']['line']}): {x.get('message')}")
        print(f"    key {x['key']}  ranges {', '.join(x['ranges'])}")

    try:
        v.compile('raise "x" if:\n    (m: Mesage)\n')
        print("POST /v1/compile: expected a 422 for a bad policy")
        ok = False
    except VigilError as e:
        print(f"POST /v1/compile (bad policy): HTTP {e.status} {e.code}")
        for d in e.diagnostics:
            print(f"  line {d['line']}, column {d['column']}: {d['message']}")

    s = v.create_session(ttl=600)
    sid = s["id"]
    print("session:", sid, "worker pid", s.get("worker_pid"))
    try:
        p = v.add_policy(sid, policy, name="demo")
        r = v.analyze(sid, p["id"], trace)
        print(f"stored policy {p['id']}: {len(r['violations'])} violation(s)")
        m = v.create_monitor(sid, policy_id=p["id"])
        total = 0
        for i, ev in enumerate(trace):  # one event per chunk
            r = v.push(sid, m["id"], [ev], seq=i)
            for x in r["violations"]:
                total += 1
                print(f"  monitor: new violation after event {i}: {x['key']}")
        print(f"monitor: {total} violation(s) reported over {len(trace)} chunks")
        if total != len(v.analyze(sid, p["id"], trace)["violations"]):
            print("monitor and whole-trace analysis disagree")
            ok = False
    finally:
        v.delete_session(sid)

    r = v.server_analyze(policy, trace)
    print("POST /api/policy/analyze (invariant-server):")
    print("  " + json.dumps(r))
    return ok


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("VIGIL_URL", "http://127.0.0.1:8000"))
    ap.add_argument("policy", nargs="?", default=os.path.join(here, "email-after-inbox.inv"))
    ap.add_argument("trace", nargs="?", default=os.path.join(here, "email-after-inbox.json"))
    a = ap.parse_args()
    with open(a.policy, encoding="utf-8") as f:
        policy = f.read()
    with open(a.trace, encoding="utf-8") as f:
        trace = json.load(f)
    try:
        ok = demo(Vigil(a.url), policy, trace)
    except VigilError as e:
        print("error:", e, file=sys.stderr)
        return 1
    except urllib.error.URLError as e:
        print(f"cannot reach {a.url}: {e.reason}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
