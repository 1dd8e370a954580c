#!/usr/bin/env python3
"""Conformity harness: re-creates the checks of the OpenID Foundation's
oidcc-basic-certification-test-plan (client_secret_basic and client_secret_post
variants) and oidcc-config-certification-test-plan against a freshly started
server. Login and consent are driven through the admin API, as a login &
consent app would. ID tokens and the JWKS are checked with joserfc.

Usage: run.py [path-to-hydra-binary]   (or HYDRA_BIN=...; default target/debug/hydra)
See README.md in this directory.
"""
from __future__ import annotations

import argparse
import base64
import concurrent.futures
import hashlib
import json
import math
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable

import requests
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, KeySet

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

LOGIN_URL = "https://login.example/login"
CONSENT_URL = "https://login.example/consent"
REDIRECT_URI = "https://rp.example/cb"
SUBJECT = "foo@bar.com"
ALL_SCOPES = "openid offline_access profile email address phone"
HTTP_TIMEOUT = 20
CLOCK_SKEW = 300  # seconds allowed for "not in the future" checks, as the suite does

VARIANTS = ("client_secret_basic", "client_secret_post")

# Characters RFC 6749 allows in error_description / error_uri: %x20-21 / %x23-5B / %x5D-7E
ERROR_DESC_RE = re.compile(r"^[\x20\x21\x23-\x5b\x5d-\x7e]*$")
VSCHAR_RE = re.compile(r"^[\x20-\x7e]+$")

# Fake standard claims per scope, as Hydra's login & consent app injects in conformity mode.
SCOPE_CLAIMS: dict[str, dict[str, Any]] = {
    "profile": {
        "name": "Foo Bar",
        "given_name": "Foo",
        "family_name": "Bar",
        "middle_name": "Baz",
        "nickname": "foobar",
        "preferred_username": "foo",
        "profile": "https://profile.example/foo",
        "picture": "https://profile.example/foo.png",
        "website": "https://foo.example",
        "gender": "other",
        "birthdate": "1970-01-01",
        "zoneinfo": "Europe/Berlin",
        "locale": "en-US",
        "updated_at": 1700000000,
    },
    "email": {"email": "foo@bar.com", "email_verified": True},
    "address": {
        "address": {
            "formatted": "1 Main Street\n12345 Springfield\nUS",
            "street_address": "1 Main Street",
            "locality": "Springfield",
            "region": "XX",
            "postal_code": "12345",
            "country": "US",
        }
    },
    "phone": {"phone_number": "+1 555 0100", "phone_number_verified": True},
}
STRING_CLAIMS = {
    "sub", "name", "given_name", "family_name", "middle_name", "nickname", "preferred_username",
    "profile", "picture", "website", "email", "gender", "birthdate", "zoneinfo", "locale",
    "phone_number",
}
BOOL_CLAIMS = {"email_verified", "phone_number_verified"}


# --------------------------------------------------------------------------- results

class Fail(Exception):
    pass


class Skip(Exception):
    pass


@dataclass
class Outcome:
    status: str  # PASSED, WARNING, SKIPPED, FAILED
    note: str = ""
    warnings: list[str] = field(default_factory=list)


class Run:
    """Per-module state: collects warnings and notes."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.notes: list[str] = []

    def warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)

    def note(self, msg: str) -> None:
        self.notes.append(msg)


def require(cond: bool, msg: str) -> None:
    if not cond:
        raise Fail(msg)


# --------------------------------------------------------------------------- server

def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.public_port = free_port()
        self.admin_port = free_port()
        while self.admin_port == self.public_port:
            self.admin_port = free_port()
        self.public = f"http://127.0.0.1:{self.public_port}"
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        self.issuer = f"https://127.0.0.1:{self.public_port}/"
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="conformity-server-", suffix=".log", delete=False)

    def start(self) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DSN": os.environ.get("CONFORMITY_DSN", "memory"),
            "SECRETS_SYSTEM": "conformity-system-secret-0123456789",
            "SERVE_PUBLIC_HOST": "127.0.0.1",
            "SERVE_PUBLIC_PORT": str(self.public_port),
            "SERVE_ADMIN_HOST": "127.0.0.1",
            "SERVE_ADMIN_PORT": str(self.admin_port),
            "URLS_SELF_ISSUER": self.issuer,
            "URLS_LOGIN": LOGIN_URL,
            "URLS_CONSENT": CONSENT_URL,
            "OAUTH2_HASHERS_PBKDF2_ITERATIONS": "1000",
            "LOG_LEVEL": "warn",
            # As an operator would (Hydra's `webfinger.oidc_discovery.*`): the standard scopes and
            # claims the login & consent app fills in.
            "WEBFINGER_OIDC_DISCOVERY_SUPPORTED_SCOPE": "profile,email,address,phone",
            "WEBFINGER_OIDC_DISCOVERY_SUPPORTED_CLAIMS": "name,given_name,family_name,email,email_verified,address,phone_number,phone_number_verified",
        }
        self.proc = subprocess.Popen(
            [self.binary, "serve", "all"], env=env, stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; log: {self.log.name}\n" + self.tail())
            try:
                r = requests.get(self.public + "/health/ready", timeout=2)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after 60 s; log: {self.log.name}\n" + self.tail())

    def tail(self) -> str:
        try:
            with open(self.log.name, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-20:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------- context

@dataclass
class Client:
    client_id: str
    client_secret: str
    auth_method: str


class Context:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.disco: dict[str, Any] = {}
        self.disco_error: str | None = None
        self.jwks: dict[str, Any] = {}
        self.keyset: KeySet | None = None
        self.setup_error: str | None = None
        self.clients: dict[str, Client] = {}
        self.client2: Client | None = None
        self.ignore_scopes_supported = False

    # The server speaks plain HTTP; the advertised https://127.0.0.1:<port> URLs are taken as
    # served through a TLS-terminating proxy, so requests go to http://127.0.0.1:<port>.
    def internal(self, url: str) -> str:
        origin = self.server.issuer.rstrip("/")
        if url.startswith(origin):
            return self.server.public + url[len(origin):]
        return url

    @property
    def issuer(self) -> str:
        return self.disco.get("issuer", self.server.issuer)

    def setup(self) -> None:
        # Discovery + JWKS (shared setup of every module).
        try:
            r = requests.get(self.server.public + "/.well-known/openid-configuration", timeout=HTTP_TIMEOUT)
            self.disco_response = r
            require(r.status_code == 200, f"discovery returned HTTP {r.status_code}")
            self.disco = r.json()
            require(isinstance(self.disco, dict), "discovery is not a JSON object")
            jwks_uri = self.disco.get("jwks_uri")
            require(isinstance(jwks_uri, str), "discovery has no jwks_uri")
            jr = requests.get(self.internal(jwks_uri), timeout=HTTP_TIMEOUT)
            require(jr.status_code == 200, f"jwks_uri returned HTTP {jr.status_code}")
            self.jwks = jr.json()
            check_jwks(self.jwks)
            self.keyset = KeySet.import_key_set(self.jwks)
        except (Fail, ValueError, JoseError, requests.RequestException) as e:
            self.setup_error = f"setup (discovery/JWKS): {e}"
            return
        # Static clients through the admin API.
        try:
            for method in VARIANTS:
                self.clients[method] = self.create_client(f"conformity-{method}", method)
            self.client2 = self.create_client("conformity-secondary", "client_secret_basic")
        except (Fail, ValueError, requests.RequestException) as e:
            self.setup_error = f"setup (client registration): {e}"

    def create_client(self, name: str, method: str) -> Client:
        body = {
            "client_name": name,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "redirect_uris": [REDIRECT_URI],
            "scope": ALL_SCOPES,
            "token_endpoint_auth_method": method,
        }
        r = requests.post(self.server.admin + "/admin/clients", json=body, timeout=HTTP_TIMEOUT)
        require(r.status_code == 201, f"POST /admin/clients returned HTTP {r.status_code}: {r.text[:200]}")
        j = r.json()
        require(bool(j.get("client_id")) and bool(j.get("client_secret")), "client without client_id/client_secret")
        return Client(j["client_id"], j["client_secret"], method)


def check_jwks(jwks: Any) -> None:
    require(isinstance(jwks, dict) and isinstance(jwks.get("keys"), list), "JWKS has no keys array")
    require(len(jwks["keys"]) > 0, "JWKS is empty")
    kids = set()
    for k in jwks["keys"]:
        require(isinstance(k, dict), "JWK is not an object")
        kid = k.get("kid")
        require(isinstance(kid, str) and kid != "", "JWK without kid (OIDCC 10.1)")
        require(kid not in kids, f"duplicate kid {kid}")
        kids.add(kid)
        try:
            JWKRegistry.import_key(k)
        except (JoseError, ValueError, TypeError) as e:
            raise Fail(f"JWK {kid} is not valid: {e}")
        private = {"d", "p", "q", "dp", "dq", "qi", "k"} & set(k)
        require(not private, f"JWK {kid} publishes private key material {sorted(private)}")


# --------------------------------------------------------------------------- browser

@dataclass
class Hop:
    kind: str  # request, login, consent, callback, page, foreign
    url: str
    status: int = 0


@dataclass
class AuthResult:
    kind: str  # callback, page, foreign
    url: str
    params: dict[str, str]
    status: int = 0
    body: str = ""
    logins: list[dict[str, Any]] = field(default_factory=list)   # admin login requests seen
    consents: list[dict[str, Any]] = field(default_factory=list)  # admin consent requests seen
    hops: list[Hop] = field(default_factory=list)


class Browser:
    """A cookie-keeping user agent that does not follow redirects by itself.

    Cookies are set with Secure by the server; the harness talks plain HTTP to the
    (proxied) https issuer, so it keeps its own jar keyed by cookie name."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cookies: dict[str, str] = {}

    def _store(self, resp: requests.Response) -> None:
        for header in resp.raw.headers.getlist("Set-Cookie"):
            parts = [p.strip() for p in header.split(";")]
            if "=" not in parts[0]:
                continue
            name, value = parts[0].split("=", 1)
            expired = False
            for attr in parts[1:]:
                low = attr.lower()
                if low.startswith("max-age="):
                    try:
                        expired = int(attr.split("=", 1)[1]) <= 0
                    except ValueError:
                        pass
            if expired or value == "":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def request(self, method: str, url: str, **kw: Any) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        r = requests.request(method, self.ctx.internal(url), headers=headers, allow_redirects=False,
                             timeout=HTTP_TIMEOUT, **kw)
        self._store(r)
        return r


def query_params(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True))


def fragment_params(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).fragment, keep_blank_values=True))


def claims_for_scopes(scopes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in scopes:
        out.update(SCOPE_CLAIMS.get(s, {}))
    return out


def authorize(ctx: Context, browser: Browser, params: dict[str, str] | list[tuple[str, str]],
              method: str = "GET", acr: str = "1", raw_query: str | None = None) -> AuthResult:
    """Sends an authorization request and plays the login & consent app until the browser
    leaves the OP (callback to the client, an OP page, or a foreign URL)."""
    endpoint = ctx.disco["authorization_endpoint"]
    res = AuthResult(kind="", url="", params={})
    if method == "POST":
        resp = browser.request("POST", endpoint, data=params)
    elif raw_query is not None:
        resp = browser.request("GET", endpoint + "?" + raw_query)
    else:
        resp = browser.request("GET", endpoint + "?" + urllib.parse.urlencode(params))
    res.hops.append(Hop("request", endpoint, resp.status_code))
    for _ in range(30):
        if resp.status_code not in (301, 302, 303, 307, 308):
            res.kind, res.url, res.status, res.body = "page", resp.url, resp.status_code, resp.text
            res.params = query_params(resp.url)
            return res
        loc = urllib.parse.urljoin(resp.url, resp.headers.get("Location", ""))
        if loc.startswith(LOGIN_URL + "?"):
            res.hops.append(Hop("login", loc, resp.status_code))
            challenge = query_params(loc).get("login_challenge", "")
            lr = requests.get(ctx.server.admin + "/admin/oauth2/auth/requests/login",
                              params={"login_challenge": challenge}, timeout=HTTP_TIMEOUT)
            require(lr.status_code == 200, f"GET login request returned HTTP {lr.status_code}: {lr.text[:200]}")
            login = lr.json()
            res.logins.append(login)
            if login.get("skip"):
                body: dict[str, Any] = {"subject": login.get("subject")}
            else:
                body = {"subject": SUBJECT, "remember": True, "remember_for": 3600, "acr": acr}
            ar = requests.put(ctx.server.admin + "/admin/oauth2/auth/requests/login/accept",
                              params={"login_challenge": challenge}, json=body, timeout=HTTP_TIMEOUT)
            require(ar.status_code == 200, f"accept login returned HTTP {ar.status_code}: {ar.text[:200]}")
            resp = browser.request("GET", ar.json()["redirect_to"])
            continue
        if loc.startswith(CONSENT_URL + "?"):
            res.hops.append(Hop("consent", loc, resp.status_code))
            challenge = query_params(loc).get("consent_challenge", "")
            cr = requests.get(ctx.server.admin + "/admin/oauth2/auth/requests/consent",
                              params={"consent_challenge": challenge}, timeout=HTTP_TIMEOUT)
            require(cr.status_code == 200, f"GET consent request returned HTTP {cr.status_code}: {cr.text[:200]}")
            consent = cr.json()
            res.consents.append(consent)
            scopes = consent.get("requested_scope") or []
            body = {"grant_scope": scopes, "session": {"id_token": claims_for_scopes(scopes)}}
            if not consent.get("skip"):
                body.update({"remember": True, "remember_for": 3600})
            ar = requests.put(ctx.server.admin + "/admin/oauth2/auth/requests/consent/accept",
                              params={"consent_challenge": challenge}, json=body, timeout=HTTP_TIMEOUT)
            require(ar.status_code == 200, f"accept consent returned HTTP {ar.status_code}: {ar.text[:200]}")
            resp = browser.request("GET", ar.json()["redirect_to"])
            continue
        if loc.startswith("https://rp.example/"):
            res.hops.append(Hop("callback", loc, resp.status_code))
            res.kind, res.url, res.params = "callback", loc, query_params(loc)
            return res
        if ctx.internal(loc) != loc:  # the OP itself
            res.hops.append(Hop("op", loc, resp.status_code))
            resp = browser.request("GET", loc)
            continue
        res.hops.append(Hop("foreign", loc, resp.status_code))
        res.kind, res.url, res.params = "foreign", loc, query_params(loc)
        return res
    raise Fail("more than 30 redirects in the authorization chain")


# --------------------------------------------------------------------------- checks

def new_auth_params(ctx: Context, client: Client, scope: str = "openid", nonce: bool = True,
                    **extra: str) -> dict[str, str]:
    p = {
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "response_type": "code",
        "state": generate_token(32),
    }
    if nonce:
        p["nonce"] = generate_token(32)
    p.update(extra)
    return p


def check_callback_success(ctx: Context, res: AuthResult, params: dict[str, str]) -> str:
    if res.kind != "callback":
        raise Fail(f"authorization did not return to the client (ended at {res.kind} {res.url[:120]} "
                   f"HTTP {res.status})")
    q = res.params
    if "error" in q:
        raise Fail(f"authorization returned error={q['error']}: {q.get('error_description', '')}")
    require(urllib.parse.urlsplit(res.url)._replace(query="", fragment="").geturl() == params.get(
        "redirect_uri", REDIRECT_URI), f"callback went to {res.url[:100]}, not the redirect_uri")
    require(q.get("state") == params.get("state"), "state in the callback does not match the request")
    if "iss" in q:
        require(q["iss"] == ctx.issuer, f"callback iss {q['iss']!r} != issuer {ctx.issuer!r}")
    require(not fragment_params(res.url), "callback carries a fragment for response_type=code")
    require(bool(q.get("code")), "callback has no code")
    return q["code"]


def check_error_redirect(ctx: Context, run: Run, res: AuthResult, params: dict[str, str]) -> str:
    q = res.params
    require(q.get("state") == params.get("state"), "state not echoed in the error redirect")
    if "iss" in q:
        require(q["iss"] == ctx.issuer, f"error redirect iss {q['iss']!r} != issuer")
    require("error" in q, "error redirect has no error parameter")
    require("code" not in q, "error redirect carries a code")
    for k in ("error_description", "error_uri"):
        if k in q:
            require(bool(ERROR_DESC_RE.match(q[k])), f"{k} uses characters RFC 6749 does not allow")
    extra = set(q) - {"error", "error_description", "error_uri", "state", "iss", "error_hint", "error_debug"}
    if extra:
        run.warn(f"unexpected parameters in the error redirect: {sorted(extra)}")
    return q["error"]


def shannon_bits(s: str) -> float:
    if not s:
        return 0.0
    counts: dict[str, int] = {}
    for ch in s:
        counts[ch] = counts.get(ch, 0) + 1
    per_char = -sum((c / len(s)) * math.log2(c / len(s)) for c in counts.values())
    return per_char * len(s)


def half_hash(value: str) -> str:
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def check_claim_types(claims: dict[str, Any], where: str) -> None:
    for k, v in claims.items():
        if k in STRING_CLAIMS:
            require(isinstance(v, str), f"{where}: claim {k} is not a string")
        elif k in BOOL_CLAIMS:
            require(isinstance(v, bool), f"{where}: claim {k} is not a boolean")
        elif k == "updated_at":
            require(isinstance(v, (int, float)) and not isinstance(v, bool), f"{where}: updated_at is not a number")
        elif k == "address":
            require(isinstance(v, dict), f"{where}: address is not a JSON object")
            for sub, sv in v.items():
                require(isinstance(sv, str), f"{where}: address.{sub} is not a string")


def verify_id_token(ctx: Context, run: Run, id_token: str, client: Client, nonce: str | None,
                    access_token: str | None = None) -> dict[str, Any]:
    """PerformStandardIdTokenChecks, signature verified with joserfc against jwks_uri."""
    require(isinstance(id_token, str) and id_token.count(".") == 2, "id_token is not a compact JWS")
    try:
        tok = jwt.decode(id_token, ctx.keyset, algorithms=["RS256", "RS384", "RS512", "PS256", "ES256"])
    except (JoseError, ValueError) as e:
        raise Fail(f"id_token signature does not verify against jwks_uri: {e!r}")
    h, c = tok.header, tok.claims
    require(h.get("alg") in (ctx.disco.get("id_token_signing_alg_values_supported") or ["RS256"]),
            f"id_token alg {h.get('alg')} not advertised")
    require(bool(h.get("kid")), "id_token header has no kid")
    now = time.time()
    require(c.get("iss") == ctx.issuer, f"id_token iss {c.get('iss')!r} != issuer {ctx.issuer!r}")
    aud = c.get("aud")
    require(aud == client.client_id or (isinstance(aud, list) and client.client_id in aud),
            f"id_token aud {aud!r} does not contain the client_id")
    if isinstance(aud, list) and len(aud) > 1:
        require(c.get("azp") == client.client_id, "id_token with several audiences needs azp = client_id")
    exp, iat = c.get("exp"), c.get("iat")
    require(isinstance(exp, (int, float)), "id_token has no numeric exp")
    require(exp > now - CLOCK_SKEW, "id_token has expired")
    require(exp < now + 50 * 365 * 86400, "id_token exp is more than 50 years ahead")
    require(isinstance(iat, (int, float)), "id_token has no numeric iat")
    require(iat <= now + CLOCK_SKEW, "id_token iat is in the future")
    if "auth_time" in c:
        at = c["auth_time"]
        require(isinstance(at, (int, float)), "auth_time is not a number")
        require(at <= now + CLOCK_SKEW, "auth_time is in the future")
        require(at >= now - 366 * 86400, "auth_time is more than a year old")
    if nonce is not None:
        require(c.get("nonce") == nonce, f"id_token nonce {c.get('nonce')!r} != request nonce")
    if "acr" in c:
        require(c["acr"] != "", "id_token acr is an empty string")
    require(isinstance(c.get("sub"), str) and c["sub"] != "", "id_token has no sub")
    check_claim_types(c, "id_token")
    if "at_hash" in c and access_token:
        require(c["at_hash"] == half_hash(access_token), "id_token at_hash does not match the access token")
    return c


@dataclass
class Tokens:
    status: int
    body: dict[str, Any]
    headers: Any
    raw: str


def token_request(ctx: Context, client: Client, data: dict[str, str]) -> Tokens:
    data = dict(data)
    headers = {"Accept": "application/json"}
    if client.auth_method == "client_secret_basic":
        cred = f"{urllib.parse.quote_plus(client.client_id)}:{urllib.parse.quote_plus(client.client_secret)}"
        headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
    else:
        data["client_id"] = client.client_id
        data["client_secret"] = client.client_secret
    r = requests.post(ctx.internal(ctx.disco["token_endpoint"]), data=data, headers=headers, timeout=HTTP_TIMEOUT)
    try:
        body = r.json()
    except ValueError:
        body = {}
    return Tokens(r.status_code, body if isinstance(body, dict) else {}, r.headers, r.text)


def check_token_response(run: Run, t: Tokens, want_id_token: bool = True) -> None:
    require(t.status == 200, f"token endpoint returned HTTP {t.status}: {t.raw[:200]}")
    require(t.headers.get("Content-Type", "").startswith("application/json"), "token response is not JSON")
    require(bool(t.body.get("access_token")), "token response has no access_token")
    require(str(t.body.get("token_type", "")).lower() == "bearer", f"token_type is {t.body.get('token_type')!r}")
    if want_id_token:
        require(bool(t.body.get("id_token")), "token response has no id_token")
    if "expires_in" in t.body:
        ei = t.body["expires_in"]
        require(isinstance(ei, int) and not isinstance(ei, bool) and ei > 0, f"invalid expires_in {ei!r}")
    else:
        run.warn("token response has no expires_in")


def redeem(ctx: Context, run: Run, client: Client, code: str, extra: dict[str, str] | None = None) -> Tokens:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    data.update(extra or {})
    t = token_request(ctx, client, data)
    check_token_response(run, t)
    return t


def userinfo(ctx: Context, access_token: str, how: str = "get") -> requests.Response:
    url = ctx.internal(ctx.disco["userinfo_endpoint"])
    if how == "get":
        return requests.get(url, headers={"Authorization": f"Bearer {access_token}"}, timeout=HTTP_TIMEOUT)
    if how == "post-header":
        return requests.post(url, headers={"Authorization": f"Bearer {access_token}"}, timeout=HTTP_TIMEOUT)
    return requests.post(url, data={"access_token": access_token}, timeout=HTTP_TIMEOUT)


def check_userinfo(r: requests.Response, sub: str) -> dict[str, Any]:
    require(r.status_code == 200, f"userinfo returned HTTP {r.status_code}: {r.text[:200]}")
    require(r.headers.get("Content-Type", "").startswith("application/json"),
            f"userinfo Content-Type is {r.headers.get('Content-Type')!r}")
    ui = r.json()
    require(isinstance(ui, dict), "userinfo is not a JSON object")
    require(ui.get("sub") == sub, f"userinfo sub {ui.get('sub')!r} != id_token sub {sub!r}")
    check_claim_types(ui, "userinfo")
    names, sources = ui.get("_claim_names"), ui.get("_claim_sources")
    if names is not None or sources is not None:
        require(isinstance(names, dict) and isinstance(sources, dict), "_claim_names/_claim_sources inconsistent")
        for src in names.values():
            require(src in sources, f"_claim_names refers to unknown source {src}")
    return ui


@dataclass
class Flow:
    params: dict[str, str]
    auth: AuthResult
    code: str
    tokens: Tokens
    id_claims: dict[str, Any]


def happy_flow(ctx: Context, run: Run, client: Client, browser: Browser | None = None,
               scope: str = "openid", nonce: bool = True, method: str = "GET", acr: str = "1",
               params: dict[str, str] | None = None, call_userinfo: bool = True, **extra: str) -> Flow:
    browser = browser or Browser(ctx)
    if params is None:
        params = new_auth_params(ctx, client, scope=scope, nonce=nonce, **extra)
    res = authorize(ctx, browser, params, method=method, acr=acr)
    code = check_callback_success(ctx, res, params)
    t = redeem(ctx, run, client, code)
    claims = verify_id_token(ctx, run, t.body["id_token"], client, params.get("nonce"), t.body["access_token"])
    if call_userinfo:
        check_userinfo(userinfo(ctx, t.body["access_token"]), claims["sub"])
    return Flow(params, res, code, t, claims)


def setup_guard(ctx: Context) -> None:
    if ctx.setup_error:
        raise Fail(ctx.setup_error)


# --------------------------------------------------------------------------- modules

ModuleFn = Callable[[Context, Run, Client, str], str | None]


@dataclass
class Module:
    name: str
    fn: ModuleFn
    variants: tuple[str, ...]


MODULES: list[Module] = []


def module(name: str, variants: tuple[str, ...] = VARIANTS) -> Callable[[ModuleFn], ModuleFn]:
    def deco(fn: ModuleFn) -> ModuleFn:
        MODULES.append(Module(name, fn, variants))
        return fn
    return deco


@module("oidcc-server")
def m_server(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    f = happy_flow(ctx, run, client)
    # oidcc-server extras
    require(len(f.code.encode()) * 8 >= 128, "authorization code shorter than 128 bits")
    require(shannon_bits(f.code) >= 96, f"authorization code entropy {shannon_bits(f.code):.0f} bits < 96")
    if "name" in f.id_claims:
        run.warn("id_token contains name although it was not requested")
    standard = {"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash",
                "c_hash", "sid", "jti", "rat"}
    unrequested = set(f.id_claims) - standard
    if unrequested:
        run.warn(f"id_token contains claims nobody asked for: {sorted(unrequested)}")
    return None


@module("oidcc-server-client-secret-post", variants=("client_secret_post",))
def m_server_post(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    happy_flow(ctx, run, client)
    return None


@module("oidcc-response-type-missing")
def m_response_type_missing(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    params = new_auth_params(ctx, client)
    del params["response_type"]
    res = authorize(ctx, Browser(ctx), params)
    if res.kind == "callback":
        require(not fragment_params(res.url), "error returned in the fragment, not the query")
        err = check_error_redirect(ctx, run, res, params)
        require(err in ("unsupported_response_type", "invalid_request"),
                f"error {err!r} is neither unsupported_response_type nor invalid_request")
        return f"redirected with error={err}"
    return error_page_verdict(ctx, res, bad_uris=())


def error_page_verdict(ctx: Context, res: AuthResult, bad_uris: tuple[str, ...]) -> str:
    """Screenshot proxy: the OP must show an error page and never redirect to the client."""
    for hop in res.hops:
        for bad in bad_uris + (REDIRECT_URI,):
            if hop.kind in ("callback", "foreign") and hop.url.startswith(bad):
                raise Fail(f"OP redirected to {hop.url[:100]}")
    require(not res.logins and not res.consents, "the login/consent UI was shown before the error")
    require(res.kind == "page", f"chain ended at {res.kind} {res.url[:100]}, not an OP page")
    require(res.status == 200 or 400 <= res.status < 500, f"error page answered HTTP {res.status}")
    err = res.params.get("error")
    require(bool(err), f"the OP page {res.url[:100]} carries no error code")
    path = urllib.parse.urlsplit(res.url).path
    return f"error page shown (observed: HTTP {res.status} at {path} with error={err})"


def userinfo_module(how: str) -> ModuleFn:
    def fn(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
        f = happy_flow(ctx, run, client, call_userinfo=False)
        r = userinfo(ctx, f.tokens.body["access_token"], how)
        if how == "post-body" and not (200 <= r.status_code < 300):
            run.warn(f"userinfo with access_token in the POST body returned HTTP {r.status_code} (optional)")
            return None
        check_userinfo(r, f.id_claims["sub"])
        return None
    return fn


module("oidcc-userinfo-get")(userinfo_module("get"))
module("oidcc-userinfo-post-header")(userinfo_module("post-header"))
module("oidcc-userinfo-post-body")(userinfo_module("post-body"))


@module("oidcc-ensure-request-without-nonce-succeeds-for-code-flow")
def m_no_nonce(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    params = new_auth_params(ctx, client, nonce=False)
    res = authorize(ctx, Browser(ctx), params)
    check_callback_success(ctx, res, params)
    return None


def scope_module(scopes: list[str]) -> ModuleFn:
    def fn(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
        supported = ctx.disco.get("scopes_supported") or []
        missing = [s for s in scopes if s not in supported]
        if missing and not ctx.ignore_scopes_supported:
            raise Skip(f"scopes_supported does not list {' '.join(missing)}")
        f = happy_flow(ctx, run, client, scope="openid " + " ".join(scopes), call_userinfo=False)
        ui = check_userinfo(userinfo(ctx, f.tokens.body["access_token"]), f.id_claims["sub"])
        absent = [c for s in scopes for c in SCOPE_CLAIMS[s] if c not in ui]
        if absent:
            run.warn(f"userinfo lacks claims {absent}")
        return None
    return fn


for _s in ("profile", "email", "address", "phone"):
    module(f"oidcc-scope-{_s}")(scope_module([_s]))
module("oidcc-scope-all")(scope_module(["profile", "email", "address", "phone"]))


@module("oidcc-alternate-happy-flow")
def m_alternate(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    p = new_auth_params(ctx, client, scope="email openid")
    order = ["nonce", "state", "scope", "redirect_uri", "response_type", "client_id"]
    raw = "&".join(f"{k}={urllib.parse.quote(p[k], safe='')}" for k in order)
    browser = Browser(ctx)
    res = authorize(ctx, browser, p, raw_query=raw)
    code = check_callback_success(ctx, res, p)
    t = redeem(ctx, run, client, code)
    claims = verify_id_token(ctx, run, t.body["id_token"], client, p["nonce"], t.body["access_token"])
    check_userinfo(userinfo(ctx, t.body["access_token"]), claims["sub"])
    if "email" not in (ctx.disco.get("scopes_supported") or []):
        return "scope email openid accepted (email is not in scopes_supported)"
    return None


def extra_param_module(**extra: str) -> ModuleFn:
    def fn(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
        happy_flow(ctx, run, client, **extra)
        return None
    return fn


module("oidcc-display-page")(extra_param_module(display="page"))
module("oidcc-display-popup")(extra_param_module(display="popup"))
module("oidcc-ensure-request-with-unknown-parameter-succeeds")(extra_param_module(extra="foobar"))
module("oidcc-ui-locales")(extra_param_module(ui_locales="se"))
module("oidcc-claims-locales")(extra_param_module(claims_locales="se"))


@module("oidcc-login-hint")
def m_login_hint(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    host = urllib.parse.urlsplit(ctx.issuer).hostname
    f = happy_flow(ctx, run, client, login_hint=f"buffy@{host}")
    ctxt = (f.auth.logins[0].get("oidc_context") or {}) if f.auth.logins else {}
    if ctxt.get("login_hint") != f"buffy@{host}":
        run.warn("login request's oidc_context does not carry the login_hint")
    return None


def second_login(res: AuthResult) -> dict[str, Any] | None:
    return res.logins[0] if res.logins else None


def relogin_module(first_extra: dict[str, str], second_extra: dict[str, str], wait: float) -> ModuleFn:
    """prompt=login / max_age=1: the second request must show the login UI again."""
    def fn(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
        browser = Browser(ctx)
        f1 = happy_flow(ctx, run, client, browser, **first_extra)
        time.sleep(wait)
        f2 = happy_flow(ctx, run, client, browser, **second_extra)
        login = second_login(f2.auth)
        require(login is not None, "second authorization did not show the login UI (no login challenge)")
        require(login.get("skip") is False, "second authorization's login challenge has skip=true "
                "(the app would not show the login page)")
        at1, at2 = f1.id_claims.get("auth_time"), f2.id_claims.get("auth_time")
        if "max_age" in second_extra:
            require(at2 is not None, "second id_token has no auth_time although max_age was sent")
            require(time.time() - at2 <= 60 + CLOCK_SKEW, "second auth_time is not recent")
        if at1 is not None and at2 is not None:
            require(at2 > at1, f"auth_time did not advance ({at1} -> {at2})")
        return "login page shown again (observed: new login challenge with skip=false" + (
            f", auth_time {at1} -> {at2})" if at2 is not None else ")")
    return fn


module("oidcc-prompt-login")(relogin_module({}, {"prompt": "login"}, 1.0))
module("oidcc-max-age-1")(relogin_module({}, {"max_age": "1"}, 2.0))


def silent_check(ctx: Context, f1: Flow, f2: Flow, need_auth_time: bool) -> str:
    for login in f2.auth.logins:
        require(login.get("skip") is True, "second authorization showed the login UI (skip=false)")
    for consent in f2.auth.consents:
        require(consent.get("skip") is True, "second authorization showed the consent UI (skip=false)")
    require(f1.id_claims["sub"] == f2.id_claims["sub"], "sub changed between the two authorizations")
    at1, at2 = f1.id_claims.get("auth_time"), f2.id_claims.get("auth_time")
    if need_auth_time:
        require(at1 is not None and at2 is not None, "id_token lacks auth_time")
    if at1 is not None or at2 is not None:
        require(at1 == at2, f"auth_time differs ({at1} vs {at2})")
    return f"no UI shown (observed: login skip=true, consent skip=true, same sub and auth_time {at2})"


@module("oidcc-prompt-none-not-logged-in")
def m_prompt_none_not_logged_in(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    params = new_auth_params(ctx, client, prompt="none")
    params["state"] = secrets.token_hex(64)  # 128 characters
    res = authorize(ctx, Browser(ctx), params)
    require(not any(not l.get("skip") for l in res.logins), "the login UI was shown for prompt=none")
    require(res.kind == "callback", f"no redirect to the client (ended at {res.kind} {res.url[:100]})")
    err = check_error_redirect(ctx, run, res, params)
    require(err in ("login_required", "interaction_required", "consent_required", "account_selection_required"),
            f"error {err!r} is not login_required-class")
    return f"redirected with error={err}"


@module("oidcc-prompt-none-logged-in")
def m_prompt_none_logged_in(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    browser = Browser(ctx)
    f1 = happy_flow(ctx, run, client, browser)
    f2 = happy_flow(ctx, run, client, browser, prompt="none")
    return silent_check(ctx, f1, f2, need_auth_time=False)


@module("oidcc-max-age-10000")
def m_max_age_10000(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    browser = Browser(ctx)
    f1 = happy_flow(ctx, run, client, browser, max_age="15000")
    f2 = happy_flow(ctx, run, client, browser, max_age="10000")
    return silent_check(ctx, f1, f2, need_auth_time=True)


@module("oidcc-id-token-hint")
def m_id_token_hint(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    browser = Browser(ctx)
    f1 = happy_flow(ctx, run, client, browser)
    f2 = happy_flow(ctx, run, client, browser, prompt="none", id_token_hint=f1.tokens.body["id_token"])
    return silent_check(ctx, f1, f2, need_auth_time=False)


@module("oidcc-ensure-request-with-acr-values-succeeds")
def m_acr_values(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    values = ctx.disco.get("acr_values_supported") or ["1", "2"]
    f = happy_flow(ctx, run, client, acr=values[-1], acr_values=" ".join(values))
    acr = f.id_claims.get("acr")
    if acr not in values:
        run.warn(f"id_token acr {acr!r} is not one of the requested {values}")
    return None


def code_reuse_module(wait: float) -> ModuleFn:
    def fn(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
        f = happy_flow(ctx, run, client, call_userinfo=False)
        time.sleep(wait)
        t2 = token_request(ctx, client, {"grant_type": "authorization_code", "code": f.code,
                                         "redirect_uri": REDIRECT_URI})
        if t2.status == 200 and wait == 0:
            run.warn("second redemption of the code returned HTTP 200")
            return None
        require(t2.status == 400, f"second redemption returned HTTP {t2.status}, expected 400")
        require(t2.headers.get("Content-Type", "").startswith("application/json"), "error response is not JSON")
        require(t2.body.get("error") == "invalid_grant", f"error is {t2.body.get('error')!r}, expected invalid_grant")
        if "error_description" in t2.body:
            require(bool(ERROR_DESC_RE.match(str(t2.body["error_description"]))),
                    "error_description uses characters RFC 6749 does not allow")
        if wait:
            r = userinfo(ctx, f.tokens.body["access_token"])
            if not (400 <= r.status_code < 500):
                run.warn(f"the first access token still works at userinfo (HTTP {r.status_code})")
            else:
                return f"invalid_grant; first access token revoked (userinfo HTTP {r.status_code})"
        return None
    return fn


module("oidcc-codereuse")(code_reuse_module(0))
module("oidcc-codereuse-30seconds")(code_reuse_module(30))


@module("oidcc-ensure-registered-redirect-uri")
def m_registered_redirect(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    bad = REDIRECT_URI + generate_token(10)
    params = new_auth_params(ctx, client, redirect_uri=bad)
    res = authorize(ctx, Browser(ctx), params)
    return error_page_verdict(ctx, res, bad_uris=(bad,))


@module("oidcc-ensure-post-request-succeeds")
def m_post_request(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    happy_flow(ctx, run, client, method="POST")
    return "authorization request sent as form POST"


def unsigned_request_object(claims: dict[str, Any]) -> str:
    def b64(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{b64({'alg': 'none'})}.{b64(claims)}."


@module("oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported")
def m_request_object(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    if "none" not in (ctx.disco.get("request_object_signing_alg_values_supported") or []):
        raise Skip("request_object_signing_alg_values_supported does not list none")
    inner = new_auth_params(ctx, client)
    # As the suite's BuildRequestObjectByValueRedirectToAuthorizationEndpoint: the request object plus
    # the duplicates OIDC/RFC 6749 require outside it (response_type, client_id, scope, redirect_uri);
    # state and nonce travel only inside the request object.
    outer = {"request": unsigned_request_object({**inner, "iss": client.client_id, "aud": ctx.issuer}),
             "response_type": "code", "client_id": client.client_id, "scope": "openid", "redirect_uri": REDIRECT_URI}
    res = authorize(ctx, Browser(ctx), outer)
    if res.kind == "callback" and res.params.get("error") == "request_not_supported":
        check_error_redirect(ctx, run, res, outer)
        raise Skip("request object rejected with request_not_supported")
    if res.kind == "callback" and "error" in res.params:
        raise Fail(f"expected the request object to be processed or rejected with request_not_supported, got "
                   f"error={res.params['error']}: {res.params.get('error_description', '')}")
    if ctx.disco.get("request_parameter_supported") is not True:
        run.warn("request_parameter_supported is not true, yet the request object was accepted")
    code = check_callback_success(ctx, res, inner)
    t = redeem(ctx, run, client, code)
    verify_id_token(ctx, run, t.body["id_token"], client, inner["nonce"], t.body["access_token"])
    return None


@module("oidcc-ensure-request-object-with-redirect-uri")
def m_request_object_redirect(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    inner = new_auth_params(ctx, client)
    bad = REDIRECT_URI + generate_token(10)
    outer = {"request": unsigned_request_object({**inner, "iss": client.client_id, "aud": ctx.issuer}),
             "response_type": "code", "client_id": client.client_id, "scope": "openid", "redirect_uri": bad}
    res = authorize(ctx, Browser(ctx), outer)
    if res.kind == "callback":
        require(not res.url.startswith(bad), "OP redirected to the unregistered outer redirect_uri")
        require(res.params.get("error") != "request_not_supported",
                "OP redirected to the registered URI with request_not_supported")
        code = check_callback_success(ctx, res, inner)
        t = redeem(ctx, run, client, code)
        verify_id_token(ctx, run, t.body["id_token"], client, inner["nonce"], t.body["access_token"])
        return "request object's redirect_uri used"
    return error_page_verdict(ctx, res, bad_uris=(bad,))


@module("oidcc-claims-essential")
def m_claims_essential(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    claims = json.dumps({"userinfo": {"name": {"essential": True}}})
    f = happy_flow(ctx, run, client, call_userinfo=False, claims=claims)
    ui = check_userinfo(userinfo(ctx, f.tokens.body["access_token"]), f.id_claims["sub"])
    if "name" not in ui:
        run.warn("essential claim name not returned at userinfo")
    if "name" in f.id_claims:
        run.warn("name requested for userinfo leaked into the id_token")
    return None


@module("oidcc-ensure-request-with-valid-pkce-succeeds")
def m_pkce(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    verifier = generate_token(64)
    params = new_auth_params(ctx, client, code_challenge=create_s256_code_challenge(verifier),
                             code_challenge_method="S256")
    res = authorize(ctx, Browser(ctx), params)
    code = check_callback_success(ctx, res, params)
    t = redeem(ctx, run, client, code, {"code_verifier": verifier})
    claims = verify_id_token(ctx, run, t.body["id_token"], client, params["nonce"], t.body["access_token"])
    check_userinfo(userinfo(ctx, t.body["access_token"]), claims["sub"])
    return None


@module("oidcc-refresh-token")
def m_refresh(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    assert ctx.client2 is not None
    scope = "openid offline_access" if "offline_access" in (ctx.disco.get("scopes_supported") or []) else "openid"
    f = happy_flow(ctx, run, client, scope=scope, prompt="consent", call_userinfo=False)
    rt = f.tokens.body.get("refresh_token")
    if not rt:
        raise Skip("no refresh token issued")
    time.sleep(1.1)
    t = token_request(ctx, client, {"grant_type": "refresh_token", "refresh_token": rt, "scope": scope})
    check_token_response(run, t, want_id_token=False)
    cc = t.headers.get("Cache-Control", "")
    require("no-store" in cc.lower(), f"refresh response Cache-Control is {cc!r}, needs no-store")
    require(shannon_bits(t.body["access_token"]) >= 128, "refreshed access token has too little entropy")
    if "refresh_token" in t.body:
        require(bool(VSCHAR_RE.match(str(t.body["refresh_token"]))), "refresh token uses invalid characters")
    if t.body.get("id_token"):
        c2 = verify_id_token(ctx, run, t.body["id_token"], client, None, t.body["access_token"])
        for k in ("iss", "sub", "aud", "azp", "auth_time"):
            require(c2.get(k) == f.id_claims.get(k), f"refreshed id_token changed {k}")
        require(c2.get("iat") != f.id_claims.get("iat"), "refreshed id_token has the same iat")
    # client2's refresh token, presented with client1's credentials, must be rejected.
    f2 = happy_flow(ctx, run, ctx.client2, scope=scope, prompt="consent", call_userinfo=False)
    rt2 = f2.tokens.body.get("refresh_token")
    require(bool(rt2), "second client got no refresh token")
    t3 = token_request(ctx, client, {"grant_type": "refresh_token", "refresh_token": rt2})
    require(t3.status == 400 and t3.body.get("error") == "invalid_grant",
            f"client2's refresh token with client1's credentials gave HTTP {t3.status} {t3.body.get('error')!r}, "
            "expected 400 invalid_grant")
    return None


# --------------------------------------------------------------------------- config plan

def m_discovery(ctx: Context, run: Run) -> str | None:
    if ctx.setup_error and "discovery" in ctx.setup_error:
        raise Fail(ctx.setup_error)
    r = ctx.disco_response
    require(r.status_code == 200, f"HTTP {r.status_code}")
    require(r.headers.get("Content-Type", "").startswith("application/json"), "discovery is not application/json")
    d = ctx.disco
    issuer = d.get("issuer")
    disco_url = ctx.server.issuer.rstrip("/") + "/.well-known/openid-configuration"
    expected = disco_url[: -len("/.well-known/openid-configuration")]
    require(isinstance(issuer, str) and issuer.rstrip("/") == expected,
            f"issuer {issuer!r} != discovery URL minus /.well-known/openid-configuration")
    u = urllib.parse.urlsplit(issuer)
    require(u.scheme == "https" and bool(u.netloc) and not u.query and not u.fragment, "issuer is not a valid https URL")
    # Schema-ish type checks
    string_fields = ["authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                     "registration_endpoint", "end_session_endpoint", "revocation_endpoint",
                     "introspection_endpoint", "service_documentation", "op_policy_uri", "op_tos_uri",
                     "check_session_iframe"]
    for k in string_fields:
        if k in d:
            require(isinstance(d[k], str), f"{k} is not a string")
    for k, v in d.items():
        if k.endswith("_supported") and k not in ("request_parameter_supported", "request_uri_parameter_supported",
                                                   "claims_parameter_supported") and not k.endswith("logout_supported") \
                and not k.endswith("session_supported") and k != "authorization_response_iss_parameter_supported":
            require(isinstance(v, list) and all(isinstance(x, str) for x in v), f"{k} is not an array of strings")
    for k in ("request_parameter_supported", "request_uri_parameter_supported", "claims_parameter_supported",
              "require_request_uri_registration"):
        if k in d:
            require(isinstance(d[k], bool), f"{k} is not a boolean")
    known = {"issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
             "registration_endpoint", "scopes_supported", "response_types_supported", "response_modes_supported",
             "grant_types_supported", "acr_values_supported", "subject_types_supported",
             "id_token_signing_alg_values_supported", "id_token_encryption_alg_values_supported",
             "id_token_encryption_enc_values_supported", "userinfo_signing_alg_values_supported",
             "userinfo_encryption_alg_values_supported", "userinfo_encryption_enc_values_supported",
             "request_object_signing_alg_values_supported", "request_object_encryption_alg_values_supported",
             "request_object_encryption_enc_values_supported", "token_endpoint_auth_methods_supported",
             "token_endpoint_auth_signing_alg_values_supported", "display_values_supported", "claim_types_supported",
             "claims_supported", "service_documentation", "claims_locales_supported", "ui_locales_supported",
             "claims_parameter_supported", "request_parameter_supported", "request_uri_parameter_supported",
             "require_request_uri_registration", "op_policy_uri", "op_tos_uri", "end_session_endpoint",
             "check_session_iframe", "frontchannel_logout_supported", "frontchannel_logout_session_supported",
             "backchannel_logout_supported", "backchannel_logout_session_supported", "revocation_endpoint",
             "introspection_endpoint", "code_challenge_methods_supported",
             "authorization_response_iss_parameter_supported", "revocation_endpoint_auth_methods_supported",
             "introspection_endpoint_auth_methods_supported", "device_authorization_endpoint",
             "pushed_authorization_request_endpoint", "require_pushed_authorization_requests",
             "mtls_endpoint_aliases", "tls_client_certificate_bound_access_tokens"}
    unknown = sorted(set(d) - known)
    if unknown:
        run.warn(f"unknown discovery keys: {unknown}")
    # Response types (static client: at least one OIDC response type)
    oidc_rts = {"code", "id_token", "id_token token", "code id_token", "code token", "code id_token token"}
    rts = d.get("response_types_supported")
    require(isinstance(rts, list), "response_types_supported missing")
    require(any(" ".join(sorted(rt.split())) in {" ".join(sorted(x.split())) for x in oidc_rts} for rt in rts),
            "response_types_supported has no OpenID Connect response type")
    sts = d.get("subject_types_supported")
    require(isinstance(sts, list) and ("public" in sts or "pairwise" in sts), "subject_types_supported lacks public/pairwise")
    algs = d.get("id_token_signing_alg_values_supported")
    require(isinstance(algs, list) and "RS256" in algs, "id_token_signing_alg_values_supported lacks RS256")
    for k in ("authorization_endpoint", "token_endpoint"):
        require(isinstance(d.get(k), str) and d[k].startswith("https://"), f"{k} is missing or not https")
    if "userinfo_endpoint" not in d:
        run.warn("userinfo_endpoint missing")
    # JWKS
    require(isinstance(d.get("jwks_uri"), str), "jwks_uri missing")
    check_jwks(ctx.jwks)
    # Info-level fields
    for k in ("request_parameter_supported", "request_uri_parameter_supported", "claims_parameter_supported"):
        run.note(f"{k}={d.get(k)}")
    if "RS256" not in (d.get("request_object_signing_alg_values_supported") or []):
        run.warn("request_object_signing_alg_values_supported does not include RS256")
    if "claims_supported" not in d:
        run.warn("claims_supported missing (recommended)")
    # Grant types (static client): if present, a non-empty array
    if "grant_types_supported" in d:
        require(isinstance(d["grant_types_supported"], list) and d["grant_types_supported"],
                "grant_types_supported is empty")
    # Scopes
    if "scopes_supported" not in d:
        run.warn("scopes_supported missing")
    else:
        require("openid" in d["scopes_supported"], "scopes_supported lacks openid")
        for s in d["scopes_supported"]:
            require(bool(re.match(r"^[\x21\x23-\x5b\x5d-\x7e]+$", s)), f"scope {s!r} has invalid syntax")
    # Locales
    for k in ("ui_locales_supported", "claims_locales_supported"):
        for loc in d.get(k) or []:
            require(bool(re.match(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$", loc)), f"{k}: invalid locale {loc!r}")
            parts = loc.split("-")
            canon = "-".join([parts[0].lower()] + [p.upper() if len(p) == 2 else p for p in parts[1:]])
            if canon != loc:
                run.warn(f"{k}: locale {loc!r} is not in canonical case")
    # Every endpoint https
    for k, v in d.items():
        if (k.endswith("_endpoint") or k.endswith("_uri") or k == "check_session_iframe") and isinstance(v, str):
            require(v.startswith("https://"), f"{k} is not https: {v}")
    if "code_challenge_methods_supported" in d:
        require(isinstance(d["code_challenge_methods_supported"], list), "code_challenge_methods_supported not an array")
    return "; ".join(run.notes) if run.notes else None


# --------------------------------------------------------------------------- runner

def load_expected_failures(path: str) -> dict[tuple[str, str | None], str]:
    out: dict[tuple[str, str | None], str] = {}
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            body, _, reason = line.partition("#")
            body = body.strip()
            if not body:
                continue
            m = re.match(r"^(\S+)(?:\s+\[([^\]]+)\])?$", body)
            if not m:
                print(f"expected-failures.txt: cannot parse {line.strip()!r}", file=sys.stderr)
                continue
            out[(m.group(1), m.group(2))] = reason.strip()
    return out


def run_one(ctx: Context, fn: Callable[[Run], str | None]) -> Outcome:
    run = Run()
    try:
        note = fn(run)
    except Skip as e:
        return Outcome("SKIPPED", str(e))
    except Fail as e:
        return Outcome("FAILED", str(e))
    except requests.RequestException as e:
        return Outcome("FAILED", f"HTTP error: {e}")
    except Exception as e:  # a harness bug or an unexpected answer shape
        return Outcome("FAILED", f"{type(e).__name__}: {e} @ {traceback.format_exc(limit=-1).strip().splitlines()[-3]}")
    if run.warnings:
        return Outcome("WARNING", note or "", run.warnings)
    return Outcome("PASSED", note or "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary", nargs="?", default=os.environ.get("HYDRA_BIN", os.path.join(REPO, "target/debug/hydra")))
    ap.add_argument("--only", help="regular expression; run only modules whose name matches")
    ap.add_argument("--variant", choices=VARIANTS, help="run only this client auth variant")
    ap.add_argument("--workers", type=int, default=8, help="modules run in parallel (default 8)")
    ap.add_argument("--ignore-scopes-supported", action="store_true",
                    help="run the scope modules even when discovery does not advertise the scope (not the suite's rule)")
    ap.add_argument("--expected-failures", default=os.path.join(HERE, "expected-failures.txt"))
    args = ap.parse_args()

    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print(f"server binary not found or not executable: {binary}", file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    xfails = load_expected_failures(args.expected_failures)
    started = time.time()
    server = Server(binary)
    try:
        server.start()
    except RuntimeError as e:
        print(f"FAILED  server start: {e}")
        server.stop()
        print("0 passed, 1 failed")
        return 1
    counts = {"passed": 0, "warning": 0, "skipped": 0, "failed": 0, "xfail": 0, "xpass": 0}
    try:
        ctx = Context(server)
        ctx.ignore_scopes_supported = args.ignore_scopes_supported
        ctx.setup()
        jobs: list[tuple[str, str, Callable[[Run], str | None]]] = []
        only = re.compile(args.only) if args.only else None
        for m in MODULES:
            for v in m.variants:
                if args.variant and v != args.variant:
                    continue
                if only and not only.search(m.name):
                    continue

                def job(run: Run, m: Module = m, v: str = v) -> str | None:
                    setup_guard(ctx)
                    return m.fn(ctx, run, ctx.clients[v], v)
                jobs.append((m.name, v, job))
        if not only or only.search("oidcc-discovery-endpoint-verification"):
            jobs.append(("oidcc-discovery-endpoint-verification", "config", lambda run: m_discovery(ctx, run)))

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
            futures = [(name, v, pool.submit(run_one, ctx, fn)) for name, v, fn in jobs]
            for name, v, fut in futures:
                o = fut.result()
                label = f"{name} [{v}]"
                reason = xfails.get((name, v), xfails.get((name, None)))
                if reason is not None and o.status == "FAILED":
                    print(f"XFAIL   {label}: {o.note}  (expected: {reason})")
                    counts["xfail"] += 1
                elif reason is not None:
                    print(f"XPASS   {label}: listed in expected-failures.txt ({reason}) but {o.status.lower()}"
                          + (f": {o.note}" if o.note else ""))
                    counts["xpass"] += 1
                elif o.status == "PASSED":
                    print(f"PASSED  {label}" + (f": {o.note}" if o.note else ""))
                    counts["passed"] += 1
                elif o.status == "WARNING":
                    print(f"WARNING {label}: {'; '.join(o.warnings)}" + (f" ({o.note})" if o.note else ""))
                    counts["warning"] += 1
                elif o.status == "SKIPPED":
                    print(f"SKIPPED {label}: {o.note}")
                    counts["skipped"] += 1
                else:
                    print(f"FAILED  {label}: {o.note}")
                    counts["failed"] += 1
                sys.stdout.flush()
    finally:
        server.stop()
    passed = counts["passed"] + counts["warning"]
    failed = counts["failed"] + counts["xpass"]
    print(f"summary: {counts['passed']} passed, {counts['warning']} passed with warnings, {counts['skipped']} skipped, "
          f"{counts['xfail']} xfail, {counts['xpass']} xpass, {counts['failed']} failed in {time.time() - started:.0f}s"
          + (f" (server log: {server.log.name})" if failed else ""))
    print(f"{passed} passed, {failed} failed")
    if not failed:
        try:
            os.unlink(server.log.name)
        except OSError:
            pass
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
