#!/usr/bin/env python3
"""Conformity harness: re-creates the checks of the OpenID Foundation's
oidcc-basic-certification-test-plan (client_secret_basic, client_secret_post, private_key_jwt and
client_secret_jwt variants), the Implicit and Hybrid plans (per response type), the three Form Post
plans (Basic, Implicit and Hybrid with response_mode=form_post),
oidcc-config-certification-test-plan, the three logout plans (RP-initiated, front-channel,
back-channel) and oidcc-dynamic-certification-test-plan against a freshly started server.

The Dynamic plan (private_key_jwt, discovery, dynamic_client, response_mode default) runs its whole
module list once per response type (code, id_token, id_token token, code id_token, code token,
code id_token token: 23/18/19/22/23/22 modules). Its modules register their own clients at the
public registration endpoint (RFC 7591; the server runs with
OIDC_DYNAMIC_CLIENT_REGISTRATION_ENABLED=true and pairwise subjects enabled) and delete them at the
end (RFC 7592). The RP receiver serves what the suite would serve: client JWKS (jwks_uri),
request_uri objects and sector_identifier_uri documents. oidcc-server-rotate-keys, an operator step
in the suite, rotates the OP's ID-token signing key through the admin API and runs alone, after
every other module. oidcc-ensure-client-assertion-with-iss-aud-succeeds also runs with the static
private_key_jwt and client_secret_jwt clients (counted under oidcc-test-plan).

Login, consent and logout are driven through the admin API, as a login & consent app would. ID
tokens, signed userinfo, logout tokens and the JWKS are checked with joserfc, which also makes the
clients' key pairs and the client_secret_jwt clients' HMAC keys (from their secrets), and signs
client assertions and request objects.

Usage: run.py [path-to-hydra-binary]   (or HYDRA_BIN=...; default target/debug/hydra)
See README.md in this directory.
"""
from __future__ import annotations

import argparse
import base64
import concurrent.futures
import dataclasses
import datetime
import hashlib
import http.server
import ipaddress
import json
import math
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Callable

import requests
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, KeySet, OctKey, RSAKey

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

LOGIN_URL = "https://login.example/login"
CONSENT_URL = "https://login.example/consent"
LOGOUT_URL = "https://login.example/logout"
RP_ORIGIN = "https://rp.example/"
REDIRECT_URI = "https://rp.example/cb"
# As the suite's static-client instructions: the redirect URI with the path replaced.
POST_LOGOUT_REDIRECT_URI = "https://rp.example/post_logout_redirect"
BAD_POST_LOGOUT_REDIRECT_URI = "https://rp.example/bad_post_logout_redirect_uri"
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# CheckErrorFromAuthorizationEndpointIsOneThatRequiredAUserInterface
LOGIN_REQUIRED_CLASS = ("login_required", "interaction_required", "consent_required", "account_selection_required")
BACKCHANNEL_WAIT = 10  # seconds the harness waits for the back-channel logout POST
SUBJECT = "foo@bar.com"
ALL_SCOPES = "openid offline_access profile email address phone"
HTTP_TIMEOUT = 20
CLOCK_SKEW = 300  # seconds allowed for "not in the future" checks, as the suite does

AUTH_METHODS = ("client_secret_basic", "client_secret_post")
# private_key_jwt and client_secret_jwt (RFC 7523 §2.2, OIDC Core §9): the client authenticates with a
# JWT assertion, as the suite's AddClientAssertionToTokenEndpointRequest sends it.
JWT_AUTH_METHODS = ("private_key_jwt", "client_secret_jwt")
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLIENT_ASSERTION_LIFETIME = 60  # seconds, as CreateClientAuthenticationAssertionClaims (exp = iat + 60)

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


# --------------------------------------------------------------------------- plans
#
# Module lists per plan and response type, as conformance.md §2.2-§2.4 and §2.7 and the suite's
# OIDCC*TestPlan classes give them. With static clients (registered through the admin API) the
# dynamic-client-only modules drop out: oidcc-idtoken-signature, oidcc-idtoken-unsigned and
# oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported.

SCOPE_MODULES = ("oidcc-scope-profile", "oidcc-scope-email", "oidcc-scope-address", "oidcc-scope-phone",
                 "oidcc-scope-all")
# #15-27 of the Basic table, in the suite's order.
REQUEST_PARAMETER_MODULES = (
    "oidcc-display-page", "oidcc-display-popup", "oidcc-prompt-login", "oidcc-prompt-none-not-logged-in",
    "oidcc-prompt-none-logged-in", "oidcc-max-age-1", "oidcc-max-age-10000",
    "oidcc-ensure-request-with-unknown-parameter-succeeds", "oidcc-id-token-hint", "oidcc-login-hint",
    "oidcc-ui-locales", "oidcc-claims-locales", "oidcc-ensure-request-with-acr-values-succeeds",
)
USERINFO_MODULES = ("oidcc-userinfo-get", "oidcc-userinfo-post-header", "oidcc-userinfo-post-body")
REQUEST_OBJECT_MODULES = ("oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported",
                          "oidcc-claims-essential", "oidcc-ensure-request-object-with-redirect-uri")

# oidcc-basic-certification-test-plan (§2.2): 35 modules with static clients.
BASIC_MODULES = (
    "oidcc-server", "oidcc-response-type-missing", *USERINFO_MODULES,
    "oidcc-ensure-request-without-nonce-succeeds-for-code-flow", *SCOPE_MODULES, "oidcc-alternate-happy-flow",
    *REQUEST_PARAMETER_MODULES, "oidcc-codereuse", "oidcc-codereuse-30seconds", "oidcc-ensure-registered-redirect-uri",
    "oidcc-ensure-post-request-succeeds", "oidcc-server-client-secret-post", *REQUEST_OBJECT_MODULES,
    "oidcc-refresh-token", "oidcc-ensure-request-with-valid-pkce-succeeds",
)
# oidcc-implicit-certification-test-plan (§2.3): 25 modules per response type, plus the userinfo
# modules and response-type-missing (run once, with id_token token).
IMPLICIT_MODULES = (
    "oidcc-server", "oidcc-ensure-request-without-nonce-fails", *SCOPE_MODULES, "oidcc-alternate-happy-flow",
    *REQUEST_PARAMETER_MODULES, "oidcc-ensure-registered-redirect-uri", *REQUEST_OBJECT_MODULES,
)
IMPLICIT_ID_TOKEN_TOKEN_MODULES = IMPLICIT_MODULES + (*USERINFO_MODULES, "oidcc-response-type-missing")
# oidcc-hybrid-certification-test-plan (§2.4): code id_token 34; code token and code id_token token 31
# (no response-type-missing, alternate-happy-flow or PKCE; code token with the nonce-succeeds module).
HYBRID_CODE_ID_TOKEN_MODULES = (
    "oidcc-server", "oidcc-response-type-missing", *USERINFO_MODULES, "oidcc-ensure-request-without-nonce-fails",
    *SCOPE_MODULES, "oidcc-alternate-happy-flow", *REQUEST_PARAMETER_MODULES, "oidcc-codereuse",
    "oidcc-codereuse-30seconds", "oidcc-ensure-registered-redirect-uri", "oidcc-server-client-secret-post",
    *REQUEST_OBJECT_MODULES, "oidcc-refresh-token", "oidcc-ensure-request-with-valid-pkce-succeeds",
)
HYBRID_CODE_ID_TOKEN_TOKEN_MODULES = tuple(
    m for m in HYBRID_CODE_ID_TOKEN_MODULES
    if m not in ("oidcc-response-type-missing", "oidcc-alternate-happy-flow",
                 "oidcc-ensure-request-with-valid-pkce-succeeds"))
HYBRID_CODE_TOKEN_MODULES = tuple(
    "oidcc-ensure-request-without-nonce-succeeds-for-code-flow" if m == "oidcc-ensure-request-without-nonce-fails"
    else m for m in HYBRID_CODE_ID_TOKEN_TOKEN_MODULES)


# oidcc-dynamic-certification-test-plan (§2.6), in the order of the suite's OIDCCDynamicTestPlan. Fixed
# variants: discovery, dynamic_client, private_key_jwt, response_mode default; the response type is the
# user's choice, and the harness runs all six, as Hydra's CI does. Every module registers its own clients
# at the public registration endpoint (no static client).
DYNAMIC_MODULES = (
    "oidcc-idtoken-rs256", "oidcc-idtoken-unsigned", "oidcc-userinfo-rs256",
    "oidcc-ensure-redirect-uri-in-authorization-request", "oidcc-redirect-uri-query-OK",
    "oidcc-redirect-uri-query-mismatch", "oidcc-redirect-uri-query-added", "oidcc-redirect-uri-regfrag",
    "oidcc-discovery-endpoint-verification",
    "oidcc-server", "oidcc-registration-logo-uri", "oidcc-registration-policy-uri", "oidcc-registration-tos-uri",
    "oidcc-registration-jwks-uri", "oidcc-registration-sector-uri", "oidcc-registration-sector-bad",
    "oidcc-server-rotate-keys",
    "oidcc-refresh-token-rp-key-rotation", "oidcc-request-uri-unsigned", "oidcc-request-uri-signed-rs256",
    "oidcc-ensure-request-object-with-redirect-uri", "oidcc-refresh-token",
    "oidcc-ensure-client-assertion-with-iss-aud-succeeds",
)
DYNAMIC_RESPONSE_TYPES = ("code", "id_token", "id_token token", "code id_token", "code token", "code id_token token")


def dynamic_modules(response_type: str) -> tuple[str, ...]:
    """The Dynamic plan's modules for one response type, by the modules' @VariantNotApplicable rules:
    idtoken-unsigned only for code and code token; userinfo-rs256 (AbstractOIDCCUserInfoTest) not for
    id_token; registration-jwks-uri, refresh-token-rp-key-rotation and refresh-token not for id_token and
    id_token token. That gives 23 (code, code token), 22 (code id_token, code id_token token), 19
    (id_token token) and 18 (id_token), as §2.6 counts them."""
    parts = set(response_type.split())
    drop = set()
    if response_type not in ("code", "code token"):
        drop.add("oidcc-idtoken-unsigned")
    if response_type == "id_token":
        drop.add("oidcc-userinfo-rs256")
    if "code" not in parts:
        drop |= {"oidcc-registration-jwks-uri", "oidcc-refresh-token-rp-key-rotation", "oidcc-refresh-token"}
    return tuple(m for m in DYNAMIC_MODULES if m not in drop)


@dataclass(frozen=True)
class PlanVariant:
    """One run of a plan: the label printed as [label], the response type and mode, the
    client-auth variant and the modules it runs. dynamic: the run registers its clients itself
    (the Dynamic plan), so no static client is made for it."""
    label: str
    plan: str
    response_type: str
    response_mode: str | None  # None: the default for the response type (response_mode not sent)
    auth_method: str
    modules: tuple[str, ...]
    dynamic: bool = False


def _plan_variants() -> list[PlanVariant]:
    basic = "oidcc-basic-certification-test-plan"
    out = [
        # The Basic plan once per client-auth variant (§4's recommendation); oidcc-server-client-secret-post once.
        PlanVariant("client_secret_basic", basic, "code", None, "client_secret_basic",
                    tuple(m for m in BASIC_MODULES if m != "oidcc-server-client-secret-post")),
        PlanVariant("client_secret_post", basic, "code", None, "client_secret_post", BASIC_MODULES),
        # The whole plan again with private_key_jwt (§4: a cheap way to cover every advertised auth method);
        # oidcc-server-client-secret-post keeps its own client_secret_post variant, so it is not in this run.
        PlanVariant("private_key_jwt", basic, "code", None, "private_key_jwt",
                    tuple(m for m in BASIC_MODULES if m != "oidcc-server-client-secret-post")),
        # And with client_secret_jwt (an HS256 assertion keyed with the client secret), the same way.
        PlanVariant("client_secret_jwt", basic, "code", None, "client_secret_jwt",
                    tuple(m for m in BASIC_MODULES if m != "oidcc-server-client-secret-post")),
    ]
    implicit = (("id_token", IMPLICIT_MODULES), ("id_token token", IMPLICIT_ID_TOKEN_TOKEN_MODULES))
    hybrid = (("code id_token", HYBRID_CODE_ID_TOKEN_MODULES), ("code token", HYBRID_CODE_TOKEN_MODULES),
              ("code id_token token", HYBRID_CODE_ID_TOKEN_TOKEN_MODULES))
    # client_secret_basic everywhere; oidcc-server-client-secret-post uses its own client (Module.auth).
    for prefix, mode in (("", None), ("formpost-", "form_post")):
        if mode:
            out.append(PlanVariant("formpost-basic", "oidcc-formpost-basic-certification-test-plan", "code", mode,
                                   "client_secret_basic", BASIC_MODULES))
        for kind, rts in (("implicit", implicit), ("hybrid", hybrid)):
            plan = f"oidcc-{prefix}{kind}-certification-test-plan"
            for rt, modules in rts:
                out.append(PlanVariant(f"{prefix}{kind} {rt}", plan, rt, mode, "client_secret_basic", modules))
    for rt in DYNAMIC_RESPONSE_TYPES:
        out.append(PlanVariant(f"dynamic {rt}", "oidcc-dynamic-certification-test-plan", rt, None, "private_key_jwt",
                               dynamic_modules(rt), dynamic=True))
    return out


PLAN_VARIANTS = _plan_variants()
PLAN_BY_LABEL = {pv.label: pv for pv in PLAN_VARIANTS}


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
    def __init__(self, binary: str, extra_env: dict[str, str] | None = None) -> None:
        self.binary = binary
        self.extra_env = dict(extra_env or {})
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
            # The harness is the logout app too (Hydra's conformity setup points urls.logout at
            # the login & consent app).
            "URLS_LOGOUT": LOGOUT_URL,
            "OAUTH2_HASHERS_PBKDF2_ITERATIONS": "1000",
            # The public registration endpoint (RFC 7591/7592), for the Dynamic plan's registration modules;
            # discovery then advertises registration_endpoint.
            "OIDC_DYNAMIC_CLIENT_REGISTRATION_ENABLED": "true",
            # Pairwise subjects next to public ones, as Hydra's conformance hydra.yml has them, for
            # oidcc-registration-sector-uri and -sector-bad (the server fetches sector_identifier_uri).
            "OIDC_SUBJECT_IDENTIFIERS_SUPPORTED_TYPES": "public,pairwise",
            "OIDC_SUBJECT_IDENTIFIERS_PAIRWISE_SALT": "conformity-pairwise-salt-0123456789",
            "LOG_LEVEL": "warn",
            # As an operator would (Hydra's `webfinger.oidc_discovery.*`): the standard scopes and
            # claims the login & consent app fills in.
            "WEBFINGER_OIDC_DISCOVERY_SUPPORTED_SCOPE": "profile,email,address,phone",
            "WEBFINGER_OIDC_DISCOVERY_SUPPORTED_CLAIMS": "name,given_name,family_name,email,email_verified,address,phone_number,phone_number_verified",
        }
        # The back-channel receiver (Receiver.server_env): SSL_CERT_FILE and private addresses allowed.
        env.update(self.extra_env)
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


# --------------------------------------------------------------------------- RP receiver

@dataclass
class Received:
    """One request the RP receiver got."""
    at: float
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    tls_version: str | None
    cipher: str | None


class Receiver:
    """The RP's own endpoints (`/frontchannel_logout`, `/backchannel_logout`): an HTTPS server
    on 127.0.0.1 with a certificate for IP 127.0.0.1, issued at start-up by a throwaway CA. The
    server under test trusts that CA through SSL_CERT_FILE; the harness's browser through
    `verify=ca_file`. Every request is recorded and answered 200 with `Cache-Control: no-store`
    (as the suite's handlers), with an empty body, or for a GET of a path in `documents` with that
    document (the Dynamic plan's client JWKS, request objects and sector documents, served as the
    suite's handleJwksRequest, handleRequestUriRequest and handleRedirectUrisRequest serve them);
    nothing in it depends on the server's code."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="conformity-receiver-")
        self.ca_file = os.path.join(self.dir, "ca.pem")
        cert_file, key_file = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
        self._issue(cert_file, key_file)
        self.records: list[Received] = []
        self.errors: list[str] = []
        # path -> (content type, body), answered to GET requests
        self.documents: dict[str, tuple[str, bytes]] = {}
        self.cond = threading.Condition()
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(cert_file, key_file)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 10

            def setup(self) -> None:
                if isinstance(self.request, ssl.SSLSocket):
                    self.request.settimeout(self.timeout)
                    self.request.do_handshake()
                super().setup()

            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length > 0 else b""
                conn = self.connection
                version = conn.version() if isinstance(conn, ssl.SSLSocket) else None
                cipher = conn.cipher()[0] if isinstance(conn, ssl.SSLSocket) and conn.cipher() else None
                parts = urllib.parse.urlsplit(self.path)
                rec = Received(time.time(), self.command, parts.path, parts.query,
                               {k: v for k, v in self.headers.items()}, body, version, cipher)
                with receiver.cond:
                    receiver.records.append(rec)
                    receiver.cond.notify_all()
                    doc = receiver.documents.get(parts.path) if self.command == "GET" else None
                self.send_response(200)
                self.send_header("Cache-Control", "no-store")
                if doc is not None:
                    self.send_header("Content-Type", doc[0])
                self.send_header("Content-Length", str(len(doc[1]) if doc else 0))
                self.end_headers()
                if doc is not None:
                    self.wfile.write(doc[1])

            do_GET = do_POST = do_PUT = do_DELETE = _record

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Httpd(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                # Usually a TLS handshake the other side gave up (an untrusted certificate).
                with receiver.cond:
                    receiver.errors.append(f"{sys.exc_info()[0].__name__}: {sys.exc_info()[1]}")

        self.httpd = Httpd(("127.0.0.1", 0), Handler)
        # The handshake happens on the handler's thread (Handler.setup), not in the accept loop.
        self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self.httpd.server_address[1]
        self.origin = f"https://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="rp-receiver", daemon=True)
        self.thread.start()

    def _issue(self, cert_file: str, key_file: str) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "conformity harness throwaway CA")])
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                           crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
              .add_extension(ca_ski, critical=False)
              .sign(ca_key, hashes.SHA256()))
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                               critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                             crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
                .sign(ca_key, hashes.SHA256()))
        with open(self.ca_file, "wb") as f:
            f.write(ca.public_bytes(serialization.Encoding.PEM))
        with open(cert_file, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_file, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))

    def server_env(self) -> dict[str, str]:
        """What the server needs to reach the receiver outside --dev: our CA, and 127.0.0.1 allowed."""
        return {"SSL_CERT_FILE": self.ca_file, "CLIENTS_HTTP_DISALLOW_PRIVATE_IP_RANGES": "false"}

    def url(self, path: str) -> str:
        return self.origin + path

    def owns(self, url: str) -> bool:
        return url == self.origin or url.startswith(self.origin + "/") or url.startswith(self.origin + "?")

    def wait(self, path: str, since: float, timeout: float) -> list[Received]:
        """Requests to `path` received at or after `since`, waiting up to `timeout` for the first."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                got = [r for r in self.records if r.path == path and r.at >= since]
                left = deadline - time.time()
                if got or left <= 0:
                    return got
                self.cond.wait(left)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        for name in os.listdir(self.dir):
            try:
                os.unlink(os.path.join(self.dir, name))
            except OSError:
                pass
        try:
            os.rmdir(self.dir)
        except OSError:
            pass


# --------------------------------------------------------------------------- context

@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str
    auth_method: str
    # What the client registered and asks for: the response_type it sends, and response_mode
    # (None: the default for the response type, not sent). The Form Post plans use the same
    # clients with response_mode form_post (dataclasses.replace).
    response_type: str = "code"
    response_mode: str | None = None
    # The key every client assertion is signed with: for private_key_jwt the client's own key pair
    # (its public part registered as `jwks`); for client_secret_jwt a symmetric key made from the
    # client secret (secret_jwt_key).
    key: RSAKey | OctKey | None = field(default=None, repr=False, compare=False)


def second_method(auth_method: str) -> str:
    """The auth method of oidcc-refresh-token's second client: client_secret_basic for the secret
    variants (as before); for the JWT variants the same method, as the suite's client2 runs with the
    plan's ClientAuthType: private_key_jwt with its own key pair (client2 has its own jwks),
    client_secret_jwt with its own secret."""
    return auth_method if auth_method in JWT_AUTH_METHODS else "client_secret_basic"


def new_client_key() -> RSAKey:
    """GenerateRS256ClientJWKs: a fresh 2048-bit RSA key pair with use=sig and alg=RS256; the kid is
    the key's RFC 7638 thumbprint (GenerateRS256ClientJWKsWithKeyID)."""
    return RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True)


def secret_jwt_key(client_secret: str, alg: str = "HS256") -> OctKey:
    """GenerateJWKsFromClientSecret: an oct key whose bytes are the client secret's, with alg
    client_secret_jwt_alg (HS256 unless configured otherwise), use sig and no kid."""
    return OctKey.import_key(client_secret.encode(), {"alg": alg, "use": "sig"})


class Context:
    def __init__(self, server: Server, receiver: Receiver | None = None, receiver_error: str | None = None) -> None:
        self.server = server
        self.receiver = receiver
        # Logout plans: their own clients (post_logout_redirect_uris, front-/back-channel URIs);
        # a failure here fails only the logout flow modules.
        self.logout_clients: dict[str, Client] = {}
        self.logout_setup_error: str | None = (f"setup (RP receiver): {receiver_error}" if receiver_error
                                               else None)
        self._harness_key: RSAKey | None = None
        self.disco: dict[str, Any] = {}
        self.disco_error: str | None = None
        self.jwks: dict[str, Any] = {}
        self.keyset: KeySet | None = None
        self.setup_error: str | None = None
        # Static clients by (response_type, auth method), and the second clients (oidcc-refresh-token)
        # by (response_type, second_method). A client that could not be registered fails only the runs
        # that use it.
        self.clients: dict[tuple[str, str], Client] = {}
        self.second_clients: dict[tuple[str, str], Client] = {}
        self.client_errors: dict[tuple[str, str], str] = {}
        self.ignore_scopes_supported = False

    # The server speaks plain HTTP; the advertised https://127.0.0.1:<port> URLs are taken as
    # served through a TLS-terminating proxy, so requests go to http://127.0.0.1:<port>.
    def internal(self, url: str) -> str:
        origin = self.server.issuer.rstrip("/")
        # The origin must end where the URL's authority ends (the receiver's port may share digits).
        if url.startswith(origin) and url[len(origin):len(origin) + 1] in ("", "/", "?", "#"):
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
        # Static clients through the admin API: the Basic plan's first (a failure there stops everything,
        # as before), then one per response type and auth method the other plans use.
        try:
            for method in AUTH_METHODS:
                self.clients[("code", method)] = self.create_client(f"conformity-{method}", method)
            self.second_clients[("code", "client_secret_basic")] = self.create_client("conformity-secondary",
                                                                                     "client_secret_basic")
        except (Fail, ValueError, requests.RequestException) as e:
            self.setup_error = f"setup (client registration): {e}"
            return
        # (response type, auth method, second client?)
        wanted: list[tuple[str, str, bool]] = []
        for pv in PLAN_VARIANTS:
            if pv.dynamic:  # the Dynamic plan's modules register their own clients
                continue
            wanted.append((pv.response_type, pv.auth_method, False))
            if "oidcc-server-client-secret-post" in pv.modules:
                wanted.append((pv.response_type, "client_secret_post", False))
            if "oidcc-refresh-token" in pv.modules:
                wanted.append((pv.response_type, second_method(pv.auth_method), True))
        for rt, method, second in dict.fromkeys(wanted):
            registry = self.second_clients if second else self.clients
            if (rt, method) in registry:
                continue
            name = f"conformity-{rt.replace(' ', '-')}-" + (
                ("second" if method == "client_secret_basic" else f"second-{method}") if second else method)
            try:
                registry[(rt, method)] = self.create_client(name, method, response_type=rt)
            except (Fail, ValueError, requests.RequestException) as e:
                self.client_errors[(rt, f"second {method}" if second else method)] = (
                    f"setup (registration of the {rt} {'second ' if second else ''}client, {method}): {e}")
        if self.logout_setup_error is None:
            try:
                self.setup_logout()
            except (Fail, ValueError, requests.RequestException) as e:
                self.logout_setup_error = f"setup (logout client registration): {e}"

    def setup_logout(self) -> None:
        """The logout plans' static clients, registered as the suite asks of a static client:
        post_logout_redirect_uri = the redirect URI with /post_logout_redirect as its path, and the
        front-/back-channel URIs (here served by the harness's receiver) with session required."""
        assert self.receiver is not None
        plain = {"post_logout_redirect_uris": [POST_LOGOUT_REDIRECT_URI]}
        front = dict(plain, frontchannel_logout_uri=self.receiver.url("/frontchannel_logout"),
                     frontchannel_logout_session_required=True)
        back = dict(plain, backchannel_logout_uri=self.receiver.url("/backchannel_logout"),
                    backchannel_logout_session_required=True)
        for key, extra in (("rp", plain), ("frontchannel", front), ("backchannel", back)):
            self.logout_clients[key] = self.create_client(f"conformity-logout-{key}", "client_secret_basic", extra)

    def client(self, pv: PlanVariant, auth: str | None = None) -> Client:
        """The static client a run of `pv` uses (auth overrides the run's client-auth variant), with
        the run's response_mode. A Dynamic plan run gets a template without client_id: its response
        type and auth method, from which each module registers its own client."""
        if pv.dynamic:
            return Client("", "", pv.auth_method, pv.response_type, pv.response_mode)
        key = (pv.response_type, auth or pv.auth_method)
        if key not in self.clients:
            raise Fail(self.client_errors.get(key, f"no client registered for {key}"))
        return dataclasses.replace(self.clients[key], response_mode=pv.response_mode)

    def second_client(self, client: Client) -> Client:
        """The second client (oidcc-refresh-token) for the same response type and mode, with the
        auth method second_method gives."""
        method = second_method(client.auth_method)
        key = (client.response_type, method)
        if key not in self.second_clients:
            raise Fail(self.client_errors.get((client.response_type, f"second {method}"),
                                              f"no second {method} client registered for {client.response_type}"))
        return dataclasses.replace(self.second_clients[key], response_mode=client.response_mode)

    def create_client(self, name: str, method: str, extra: dict[str, Any] | None = None,
                      response_type: str = "code") -> Client:
        """A static client, registered as the suite's dynamic registration would register it:
        grant type authorization_code if the response type has code, implicit if it has id_token or
        token (plus refresh_token with a code, for oidcc-refresh-token), and response_types the one
        response type. A private_key_jwt client gets a fresh key pair (new_client_key) and registers
        its public part as `jwks`, as the suite's registration does (AddPublicJwksToDynamicRegistrationRequest);
        token_endpoint_auth_signing_alg is left out, as there, so the server's default (RS256) applies.
        A client_secret_jwt client registers no key and leaves token_endpoint_auth_signing_alg out too (the
        server's default, HS256, is the suite's default client_secret_jwt_alg); it signs its assertions
        with the secret the server generated (secret_jwt_key)."""
        parts = response_type.split()
        grants = (["authorization_code", "refresh_token"] if "code" in parts else []) + (
            ["implicit"] if {"id_token", "token"} & set(parts) else [])
        body = {
            "client_name": name,
            "grant_types": grants,
            "response_types": [response_type],
            "redirect_uris": [REDIRECT_URI],
            "scope": ALL_SCOPES,
            "token_endpoint_auth_method": method,
        }
        key = new_client_key() if method == "private_key_jwt" else None
        if key is not None:
            body["jwks"] = {"keys": [key.as_dict(private=False)]}
        body.update(extra or {})
        r = requests.post(self.server.admin + "/admin/clients", json=body, timeout=HTTP_TIMEOUT)
        require(r.status_code == 201, f"POST /admin/clients returned HTTP {r.status_code}: {r.text[:200]}")
        j = r.json()
        require(bool(j.get("client_id")), "client without client_id")
        if method == "client_secret_jwt":
            require(j.get("token_endpoint_auth_method") == method, f"client {name}: POST /admin/clients answered "
                    f"token_endpoint_auth_method={j.get('token_endpoint_auth_method')!r}, sent {method!r}")
            require(bool(j.get("client_secret")), "client without client_secret")
            key = secret_jwt_key(j["client_secret"])
        elif key is None:
            require(bool(j.get("client_secret")), "client without client_secret")
        else:
            require(j.get("token_endpoint_auth_method") == method, f"client {name}: POST /admin/clients answered "
                    f"token_endpoint_auth_method={j.get('token_endpoint_auth_method')!r}, sent {method!r}")
            echoed = [k for k in ((j.get("jwks") or {}).get("keys") or []) if isinstance(k, dict)]
            sent = body["jwks"]["keys"][0]
            members = [m for m in ("kty", "kid", "n", "e", "crv", "x", "y") if m in sent]
            require(any(all(k.get(m) == sent[m] for m in members) for k in echoed),
                    f"client {name}: POST /admin/clients did not echo the registered public key (kid {key.kid}): "
                    f"jwks={j.get('jwks')!r}"[:300])
        for k, v in (extra or {}).items():
            require(j.get(k) == v, f"client {name}: POST /admin/clients answered {k}={j.get(k)!r}, sent {v!r}")
        def norm(values: Any) -> list[str]:  # "token id_token" is the same response type as "id_token token"
            return sorted(" ".join(sorted(str(x).split())) for x in (values or []))
        for k in ("grant_types", "response_types"):
            require(norm(j.get(k)) == norm(body[k]),
                    f"client {name}: POST /admin/clients answered {k}={j.get(k)!r}, sent {body[k]!r}")
        return Client(j["client_id"], j.get("client_secret") or "", method, response_type, key=key)

    def harness_key(self) -> RSAKey:
        """The harness's own signing key (the suite signs its fake id_token with the client's keys)."""
        if self._harness_key is None:
            self._harness_key = RSAKey.generate_key(2048, parameters={"kid": "conformity-harness", "use": "sig"})
        return self._harness_key


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
    params: dict[str, str]  # the query of `url`
    status: int = 0
    body: str = ""
    logins: list[dict[str, Any]] = field(default_factory=list)   # admin login requests seen
    consents: list[dict[str, Any]] = field(default_factory=list)  # admin consent requests seen
    hops: list[Hop] = field(default_factory=list)
    # How the browser reached the redirect URI (kind == "callback"), as the RP would see it: the
    # HTTP method, the body's content type, the URL's query and fragment, the form fields sent.
    method: str = "GET"
    content_type: str | None = None
    query: dict[str, str] = field(default_factory=dict)
    fragment: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] | None = None
    via: str = ""  # in words, for messages: "an HTTP 302 redirect", "a form (method=post) on an HTTP 200 page"


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


class FormParser(HTMLParser):
    """The forms of a page, as a browser submits them (HTML's form submission algorithm, reduced to
    what an auto-submitting response form uses): action, method, enctype and the successful
    controls' name/value pairs (attribute values are unescaped by the parser)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, Any]] = []
        self._form: dict[str, Any] | None = None
        self._textarea: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v for k, v in attrs}
        if tag == "form":
            self._form = {"action": a.get("action"), "method": (a.get("method") or "").lower(),
                          "enctype": (a.get("enctype") or "").lower(), "fields": []}
            self.forms.append(self._form)
        elif self._form is not None and tag == "input" and a.get("name"):
            kind = (a.get("type") or "text").lower()
            if kind in ("submit", "button", "image", "reset", "file"):
                return  # a button only counts when it is the submitter; the page submits itself
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self._form["fields"].append((a["name"], a.get("value") or ("on" if kind in ("checkbox", "radio") else "")))
        elif self._form is not None and tag == "textarea" and a.get("name"):
            self._textarea = (a["name"] or "", [])

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self._textarea is not None and self._form is not None:
            self._form["fields"].append((self._textarea[0], "".join(self._textarea[1])))
            self._textarea = None
        elif tag == "form":
            self._form = None


FORM_ENCTYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")


def form_submission(page_url: str, html: str) -> tuple[str, str, str | None, dict[str, str]] | None:
    """What a browser sends when the page's first form is submitted: (URL, method, content type,
    fields). A GET form replaces the action's query with the fields; a missing or unknown method is
    GET and a missing or unknown enctype application/x-www-form-urlencoded, as HTML defines them."""
    parser = FormParser()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # not HTML
        return None
    if not parser.forms:
        return None
    form = parser.forms[0]
    action = urllib.parse.urljoin(page_url, form["action"] or page_url)
    fields = dict(form["fields"])
    if form["method"] == "post":
        enctype = form["enctype"] if form["enctype"] in FORM_ENCTYPES else FORM_ENCTYPES[0]
        return action, "POST", enctype, fields
    parts = urllib.parse.urlsplit(action)
    return parts._replace(query=urllib.parse.urlencode(list(form["fields"]))).geturl(), "GET", None, fields


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
            # A page that posts itself to the client (response_mode=form_post): the browser submits
            # its form; the RP's redirect URI is never contacted, the request is recorded instead.
            sub = form_submission(resp.url, resp.text) if resp.status_code == 200 else None
            if sub is not None and sub[0].startswith(RP_ORIGIN):
                url, res.method, res.content_type, fields = sub
                res.hops.append(Hop("callback", url, resp.status_code))
                res.kind, res.url, res.status, res.body = "callback", url, resp.status_code, resp.text
                res.params = res.query = query_params(url)
                res.fragment = fragment_params(url)
                res.form = fields if res.method == "POST" else None
                res.via = f"a form (method={res.method.lower()}) on an HTTP {resp.status_code} page"
                return res
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
        if loc.startswith(RP_ORIGIN):
            res.hops.append(Hop("callback", loc, resp.status_code))
            res.kind, res.url, res.status = "callback", loc, resp.status_code
            res.params = res.query = query_params(loc)
            res.fragment = fragment_params(loc)
            res.via = f"an HTTP {resp.status_code} redirect"
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
    """CreateAuthorizationRequestSteps: the client's response_type, a random state and nonce, and
    response_mode=form_post for the Form Post plans."""
    p = {
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "response_type": client.response_type,
        "state": generate_token(32),
    }
    if nonce:
        p["nonce"] = generate_token(32)
    if client.response_mode:
        p["response_mode"] = client.response_mode
    p.update(extra)
    return p


def response_parts(params: dict[str, str]) -> set[str]:
    return set(params.get("response_type", "").split())


def response_location(params: dict[str, str]) -> str:
    """Where the authorization response belongs (OAuth 2.0 Multiple Response Types §2.1/§5 and Form
    Post): the response_mode sent, else the fragment when the response carries a token or an ID
    token, else the query. Without response_type (oidcc-response-type-missing) the query."""
    mode = params.get("response_mode")
    if mode in ("query", "fragment", "form_post"):
        return mode
    return "fragment" if response_parts(params) & {"id_token", "token"} else "query"


WHERE = {"query": "the redirect URI's query", "fragment": "the redirect URI's fragment", "form_post": "a form post"}


def auth_response(ctx: Context, res: AuthResult, params: dict[str, str]) -> dict[str, str]:
    """The authorization response as the client receives it, after the §1 and §2.7 delivery checks:
    - form_post: an HTTP POST with application/x-www-form-urlencoded (CheckCallbackHttpMethodIsPost,
      CheckCallbackContentTypeIsFormUrlEncoded), and nothing in the URL's query or fragment
      (RejectAuthCodeInUrlQuery, RejectErrorInUrlQuery);
    - fragment: a redirect, and nothing in the query: no code, no error, no token;
    - query: a redirect, and nothing in the fragment.
    Parameters of the registered redirect URI's own query do not count."""
    require(res.kind == "callback", f"authorization did not return to the client (ended at {res.kind} "
            f"{res.url[:120]} HTTP {res.status})")
    where = response_location(params)
    own = query_params(params.get("redirect_uri", REDIRECT_URI))
    in_query = sorted(k for k in res.query if k not in own)
    in_fragment = sorted(res.fragment)
    if where == "form_post":
        require(res.method == "POST", f"response_mode=form_post, but the response reached the redirect URI by "
                f"{res.method} through {res.via} (OAuth2-FP-2); query {in_query}, fragment {in_fragment}")
        require(res.content_type == "application/x-www-form-urlencoded",
                f"the form post's content type is {res.content_type!r}, not application/x-www-form-urlencoded "
                "(OAuth2-FP-2)")
        for k, req in (("code", "OIDCC-3.3.2.5"), ("error", "OAuth2-RT-5")):
            require(k not in in_query, f"{k} is present in the URL query of the form post ({req})")
        require(not in_query, f"the form post's URL query carries {in_query}; with form_post nothing belongs there")
        require(not in_fragment, f"the form post's URL carries a fragment {in_fragment}")
        return dict(res.form or {})
    require(res.method == "GET", f"the response must arrive in {WHERE[where]}, but it came as a {res.method} "
            f"through {res.via}")
    if where == "fragment":
        for k, req in (("code", "OIDCC-3.3.2.5"), ("error", "OAuth2-RT-5")):
            require(k not in in_query, f"{k} is present in the URL query returned from the authorization endpoint; "
                    f"response_type={params.get('response_type')} requires the fragment only ({req})")
        require(not in_query, f"the redirect's URL query carries {in_query}; with a fragment response nothing "
                "belongs in the query")
        return dict(res.fragment)
    require(not in_fragment, f"the response must be in the query, but the redirect's fragment carries {in_fragment}")
    return {k: v for k, v in res.query.items() if k not in own}


def check_callback_success(ctx: Context, run: Run, res: AuthResult, params: dict[str, str]) -> dict[str, str]:
    """A successful authorization response, delivered where the response mode says, with what the
    response type asks for; returns its parameters."""
    q = auth_response(ctx, res, params)
    where = WHERE[response_location(params)]
    if "error" in q:
        raise Fail(f"authorization returned error={q['error']} in {where}: {q.get('error_description', '')}")
    want = params.get("redirect_uri", REDIRECT_URI)

    def bare(u: str) -> str:
        return urllib.parse.urlsplit(u)._replace(query="", fragment="").geturl()
    require(bare(res.url) == bare(want), f"callback went to {res.url[:100]}, not the redirect_uri")
    # CheckMatchingCallbackParameters: the redirect URI's own query (oidcc-redirect-uri-query-OK) comes back.
    for k, v in query_params(want).items():
        require(res.query.get(k) == v, f"the redirect URI's own query parameter {k}={v} is not in the callback's "
                f"query ({res.query.get(k)!r})")
    require(q.get("state") == params.get("state"), f"state in the callback ({where}) does not match the request")
    if "iss" in q:
        require(q["iss"] == ctx.issuer, f"callback iss {q['iss']!r} != issuer {ctx.issuer!r}")
    parts = response_parts(params)
    if "code" in parts:
        require(bool(q.get("code")), f"no code in {where}")
    if "id_token" in parts:
        require(bool(q.get("id_token")), f"no id_token in {where}")
    if "token" in parts:  # RFC 6749 §4.2.2
        require(bool(q.get("access_token")), f"no access_token in {where}")
        require(q.get("token_type", "").lower() == "bearer", f"token_type in {where} is {q.get('token_type')!r}")
        if "expires_in" in q:
            require(q["expires_in"].isdigit() and int(q["expires_in"]) > 0, f"invalid expires_in {q['expires_in']!r}")
    unasked = [k for k, part in (("code", "code"), ("id_token", "id_token"), ("access_token", "token"))
               if k in q and part not in parts]
    if unasked:
        run.warn(f"the authorization response carries {unasked}, which response_type="
                 f"{params.get('response_type')} did not ask for")
    return q


def check_error_redirect(ctx: Context, run: Run, res: AuthResult, params: dict[str, str]) -> str:
    """performGenericAuthorizationEndpointErrorResponseValidation, on the response where the
    response mode puts it (auth_response)."""
    q = auth_response(ctx, res, params)
    if "error" not in q and {"code", "id_token", "access_token"} & set(q):
        raise Fail(f"the OP answered with a successful response ({sorted({'code', 'id_token', 'access_token'} & set(q))} "
                   f"in {WHERE[response_location(params)]}) where an error was expected")
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


def half_hash(value: str, alg: str = "RS256") -> str:
    """at_hash / c_hash (OIDCC 3.1.3.6, 3.3.2.11): the left half of the hash that goes with the
    ID token's alg, base64url."""
    bits = alg[2:] if alg[2:] in ("256", "384", "512") else "256"
    digest = hashlib.new(f"sha{bits}", value.encode("ascii")).digest()
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
                    access_token: str | None = None, code: str | None = None, need_at_hash: bool = False,
                    need_c_hash: bool = False, where: str = "id_token") -> dict[str, Any]:
    """PerformStandardIdTokenChecks, signature verified with joserfc against jwks_uri; at_hash and
    c_hash checked against the access token and code that came with the ID token when present, and
    required where oidcc-server requires them (need_at_hash, need_c_hash)."""
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
    if need_at_hash:
        require("at_hash" in c, f"{where} has no at_hash although the authorization endpoint returned an access "
                "token with it (OIDCC-3.3.2.11)")
    if "at_hash" in c and access_token:
        require(c["at_hash"] == half_hash(access_token, h.get("alg", "RS256")),
                f"{where} at_hash does not match the access token")
    if need_c_hash:
        require("c_hash" in c, f"{where} has no c_hash although the authorization endpoint returned a code with it "
                "(OIDCC-3.3.2.11)")
    if "c_hash" in c and code:
        require(c["c_hash"] == half_hash(code, h.get("alg", "RS256")), f"{where} c_hash does not match the code")
    return c


@dataclass
class Tokens:
    status: int
    body: dict[str, Any]
    headers: Any
    raw: str


def client_assertion_claims(ctx: Context, client: Client) -> dict[str, Any]:
    """CreateClientAuthenticationAssertionClaims: iss = sub = client_id, aud = the token endpoint
    (as discovery advertises it), a random 20-character alphanumeric jti, iat now and exp 60 s on."""
    now = int(time.time())
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return {"iss": client.client_id, "sub": client.client_id, "aud": ctx.disco["token_endpoint"],
            "jti": "".join(secrets.choice(alnum) for _ in range(20)), "iat": now,
            "exp": now + CLIENT_ASSERTION_LIFETIME}


def sign_client_assertion(client: Client, claims: dict[str, Any]) -> str:
    """SignClientAuthenticationAssertion: a compact JWS with the client's key, whose header holds
    only the key's alg and its kid when it has one (no typ). The client_secret_jwt key has no kid,
    so that header is {"alg": "HS256"}."""
    require(client.key is not None, f"client {client.client_id} has no key to sign a client assertion with")
    assert client.key is not None
    header = {"alg": client.key.alg}
    if client.key.kid:
        header["kid"] = client.key.kid
    return jwt.encode(header, claims, client.key, default_type=None)


def token_request(ctx: Context, client: Client, data: dict[str, str], assertion_aud: str | None = None) -> Tokens:
    """A token endpoint request with the client's authentication. private_key_jwt and client_secret_jwt:
    a fresh assertion for every call (AddPrivateKeyJWTClientAuthenticationToTokenEndpointRequest, which
    the suite uses for both), and no client_id in the body, as the suite sends none; assertion_aud
    replaces its aud (UpdateClientAuthenticationAssertionClaimsWithISSAud)."""
    data = dict(data)
    headers = {"Accept": "application/json"}
    if client.auth_method == "client_secret_basic":
        cred = f"{urllib.parse.quote_plus(client.client_id)}:{urllib.parse.quote_plus(client.client_secret)}"
        headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
    elif client.auth_method in JWT_AUTH_METHODS:
        claims = client_assertion_claims(ctx, client)
        if assertion_aud is not None:
            claims["aud"] = assertion_aud
        data["client_assertion"] = sign_client_assertion(client, claims)
        data["client_assertion_type"] = CLIENT_ASSERTION_TYPE
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


def redeem(ctx: Context, run: Run, client: Client, code: str, extra: dict[str, str] | None = None,
           redirect_uri: str = REDIRECT_URI) -> Tokens:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
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


def protected_resource(ctx: Context, access_token: str, what: str = "the access token") -> None:
    """requestProtectedResource (CallProtectedResource, EnsureHttpStatusCodeIs200): GET userinfo with the
    access token as a Bearer header; only HTTP 200 is required (the answer may be a signed JWT)."""
    r = userinfo(ctx, access_token)
    require(r.status_code == 200, f"userinfo with {what} returned HTTP {r.status_code}: {r.text[:200]}")


def check_userinfo(r: requests.Response, sub: str, what: str = "") -> dict[str, Any]:
    """Userinfo answered 200 JSON with the ID token's sub; `what` names the access token in messages."""
    if what and r.status_code != 200:
        raise Fail(f"userinfo with {what} returned HTTP {r.status_code}: {r.text[:200]}")
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
    response: dict[str, str]  # the authorization response, from where the response mode put it
    code: str | None
    tokens: Tokens | None  # the token endpoint's answer, when a code was redeemed
    front_claims: dict[str, Any] | None  # the authorization endpoint's ID token
    id_claims: dict[str, Any]  # the last ID token: the token endpoint's with a code, else the authorization endpoint's
    id_token: str
    access_token: str | None  # the last access token, likewise (None for response_type=id_token)
    front_access_token: str | None  # the access token from the authorization endpoint


def finish_flow(ctx: Context, run: Run, client: Client, params: dict[str, str], res: AuthResult,
                resp: dict[str, str], call_userinfo: bool = True, redeem_extra: dict[str, str] | None = None,
                strict_hashes: bool = False, userinfo_json: bool = True) -> Flow:
    """After a successful callback, as the suite's handleSuccessfulAuthorizationEndpointResponse and
    performPostAuthorizationFlow: verify the authorization endpoint's ID token; use its access
    token at userinfo; redeem the code and verify the token endpoint's ID token, whose sub must
    equal the first one's (VerifyIdTokenSubConsistentHybridFlow); use that access token at userinfo
    (call_userinfo). strict_hashes: at_hash and c_hash required (oidcc-server). userinfo_json=False:
    userinfo only has to answer 200 (requestProtectedResource), for clients that registered a signed
    userinfo response (oidcc-userinfo-rs256). The code is redeemed with the request's redirect_uri."""
    parts = response_parts(params)
    nonce = params.get("nonce")
    code = resp.get("code") if "code" in parts else None
    front_at = resp.get("access_token") if "token" in parts else None
    front_claims = None
    if "id_token" in parts:
        front_claims = verify_id_token(ctx, run, resp["id_token"], client, nonce, access_token=front_at, code=code,
                                       need_at_hash=strict_hashes and front_at is not None,
                                       need_c_hash=strict_hashes and code is not None,
                                       where="the authorization endpoint's id_token")
    tokens = None
    id_token, claims, access = resp.get("id_token", ""), front_claims, front_at
    if code is not None:
        tokens = redeem(ctx, run, client, code, redeem_extra, params.get("redirect_uri", REDIRECT_URI))
        id_token, access = tokens.body["id_token"], tokens.body["access_token"]
        claims = verify_id_token(ctx, run, id_token, client, nonce, access, code,
                                 where="the token endpoint's id_token")
        if front_claims is not None:
            require(claims["sub"] == front_claims["sub"], f"sub in the authorization endpoint's id_token "
                    f"({front_claims['sub']!r}) does not match sub in the token endpoint's ({claims['sub']!r})")
    assert claims is not None
    if front_at is not None:
        if userinfo_json:
            check_userinfo(userinfo(ctx, front_at), claims["sub"], "the access token from the authorization endpoint")
        else:
            protected_resource(ctx, front_at, "the access token from the authorization endpoint")
    if code is not None and call_userinfo:
        if userinfo_json:
            check_userinfo(userinfo(ctx, access), claims["sub"])
        else:
            protected_resource(ctx, access, "the token endpoint's access token")
    return Flow(params, res, resp, code, tokens, front_claims, claims, id_token, access, front_at)


def happy_flow(ctx: Context, run: Run, client: Client, browser: Browser | None = None,
               scope: str = "openid", nonce: bool = True, method: str = "GET", acr: str = "1",
               params: dict[str, str] | None = None, call_userinfo: bool = True,
               redeem_extra: dict[str, str] | None = None, strict_hashes: bool = False, userinfo_json: bool = True,
               **extra: str) -> Flow:
    browser = browser or Browser(ctx)
    if params is None:
        params = new_auth_params(ctx, client, scope=scope, nonce=nonce, **extra)
    res = authorize(ctx, browser, params, method=method, acr=acr)
    resp = check_callback_success(ctx, run, res, params)
    return finish_flow(ctx, run, client, params, res, resp, call_userinfo, redeem_extra, strict_hashes, userinfo_json)


def setup_guard(ctx: Context) -> None:
    if ctx.setup_error:
        raise Fail(ctx.setup_error)


# --------------------------------------------------------------------------- modules

ModuleFn = Callable[[Context, Run, Client, str], str | None]


@dataclass
class Module:
    name: str
    fn: ModuleFn
    # The labels it runs under. None: every plan variant whose module list names it (resolve_variants).
    variants: tuple[str, ...] | None
    # A module without a client (discovery checks): runs once under this label, whatever --variant
    # says, and is called with client None; it does its own setup checks.
    standalone: str | None = None
    # The client-auth method it always uses, whatever the run's (oidcc-server-client-secret-post).
    auth: str | None = None
    # Seconds it spends waiting; such modules run on threads of their own, not on the --workers.
    waits: float = 0.0
    # The suite's plan it is counted under, when that is not the plan of the variant it runs in
    # (oidcc-ensure-client-assertion-with-iss-aud-succeeds with the static JWT clients: oidcc-test-plan).
    plan: str | None = None
    # A Dynamic plan module: it runs under the dynamic plan variants (which list it), registers its own
    # clients, and is called with a template client (response type and auth method, no client_id).
    dynamic: bool = False
    # It must run alone, after every other module has finished (oidcc-server-rotate-keys changes the
    # OP's signing key, which every module running alongside would see).
    alone: bool = False


MODULES: list[Module] = []


def module(name: str, variants: tuple[str, ...] | None = None, auth: str | None = None,
           waits: float = 0.0, plan: str | None = None, dynamic: bool = False,
           alone: bool = False) -> Callable[[ModuleFn], ModuleFn]:
    def deco(fn: ModuleFn) -> ModuleFn:
        MODULES.append(Module(name, fn, variants, auth=auth, waits=waits, plan=plan, dynamic=dynamic, alone=alone))
        return fn
    return deco


def dynamic_module(name: str, waits: float = 0.0, alone: bool = False) -> Callable[[ModuleFn], ModuleFn]:
    """A module of the Dynamic plan (§2.6), run under each dynamic variant whose list names it."""
    return module(name, waits=waits, dynamic=True, alone=alone)


def resolve_variants() -> None:
    """Each plan module runs under every plan variant that lists it (static modules under the static
    variants, Dynamic plan modules under the dynamic ones); every listed name must exist."""
    for dynamic in (False, True):
        names = {m.name for m in MODULES if m.dynamic == dynamic}
        unknown = sorted({n for pv in PLAN_VARIANTS if pv.dynamic == dynamic for n in pv.modules} - names)
        if unknown:
            raise SystemExit(f"plan tables name modules that do not exist: {unknown}")
    for m in MODULES:
        if m.variants is None:
            m.variants = tuple(pv.label for pv in PLAN_VARIANTS if m.name in pv.modules and pv.dynamic == m.dynamic)


def standalone_module(name: str, label: str) -> Callable[[Callable[[Context, Run], str | None]],
                                                         Callable[[Context, Run], str | None]]:
    def deco(fn: Callable[[Context, Run], str | None]) -> Callable[[Context, Run], str | None]:
        MODULES.append(Module(name, lambda ctx, run, client, variant: fn(ctx, run), (label,), standalone=label))
        return fn
    return deco


@module("oidcc-server")
def m_server(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    # oidcc-server extras: at_hash and c_hash required in the authorization endpoint's ID token when
    # it came with an access token or a code; the code's length and entropy.
    f = happy_flow(ctx, run, client, strict_hashes=True)
    if f.code is not None:
        require(len(f.code.encode()) * 8 >= 128, "authorization code shorter than 128 bits")
        require(shannon_bits(f.code) >= 96, f"authorization code entropy {shannon_bits(f.code):.0f} bits < 96")
    standard = {"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash",
                "c_hash", "sid", "jti", "rat"}
    for claims in (f.front_claims, f.id_claims):
        if claims is None:
            continue
        if "name" in claims:
            run.warn("id_token contains name although it was not requested")
        unrequested = set(claims) - standard
        if unrequested:
            run.warn(f"id_token contains claims nobody asked for: {sorted(unrequested)}")
    if client.response_type == "code" and not client.response_mode:
        return None
    got = " ".join(sorted(k for k in ("code", "id_token", "access_token") if k in f.response))
    note = f"{got} in {WHERE[response_location(f.params)]}"
    if f.front_claims is not None:
        note += "; its id_token carries " + ("+".join(k for k in ("at_hash", "c_hash") if k in f.front_claims)
                                              or "no hash")
    return note


@module("oidcc-server-client-secret-post", auth="client_secret_post")
def m_server_post(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    happy_flow(ctx, run, client)
    return None


@module("oidcc-response-type-missing")
def m_response_type_missing(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    params = new_auth_params(ctx, client)
    del params["response_type"]
    res = authorize(ctx, Browser(ctx), params)
    if res.kind == "callback":
        # Without a response_type the error belongs in the query, or in a form post with form_post.
        err = check_error_redirect(ctx, run, res, params)
        require(err in ("unsupported_response_type", "invalid_request"),
                f"error {err!r} is neither unsupported_response_type nor invalid_request")
        return f"redirected with error={err} in {WHERE[response_location(params)]}"
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
        require(f.access_token is not None, f"response_type={client.response_type} gives no access token")
        r = userinfo(ctx, f.access_token, how)
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
    """code and code token: the OP must still answer with a code; the test stops after the callback
    (with code token, after using the access token at userinfo, as the suite does)."""
    params = new_auth_params(ctx, client, nonce=False)
    res = authorize(ctx, Browser(ctx), params)
    resp = check_callback_success(ctx, run, res, params)
    if "token" in response_parts(params):
        r = userinfo(ctx, resp["access_token"])
        require(r.status_code == 200, f"userinfo with the access token from the authorization endpoint returned "
                f"HTTP {r.status_code}: {r.text[:200]}")
    return None


@module("oidcc-ensure-request-without-nonce-fails")
def m_no_nonce_fails(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    """An ID token from the authorization endpoint needs a nonce: an error page, or invalid_request
    where the response mode puts it (the fragment, or a form post)."""
    params = new_auth_params(ctx, client, nonce=False)
    res = authorize(ctx, Browser(ctx), params)
    if res.kind == "callback":
        err = check_error_redirect(ctx, run, res, params)
        require(err == "invalid_request", f"error {err!r} is not invalid_request")
        return f"redirected with error={err} in {WHERE[response_location(params)]}"
    return error_page_verdict(ctx, res, bad_uris=())


def scope_module(scopes: list[str]) -> ModuleFn:
    def fn(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
        supported = ctx.disco.get("scopes_supported") or []
        missing = [s for s in scopes if s not in supported]
        if missing and not ctx.ignore_scopes_supported:
            raise Skip(f"scopes_supported does not list {' '.join(missing)}")
        f = happy_flow(ctx, run, client, scope="openid " + " ".join(scopes), call_userinfo=False)
        if f.access_token is None:
            # response_type=id_token: the claims belong in the ID token (VerifyScopesReturnedInAuthorizationEndpointIdToken)
            absent = [c for s in scopes for c in SCOPE_CLAIMS[s] if c not in f.id_claims]
            if absent:
                run.warn(f"the authorization endpoint's id_token lacks claims {absent}")
            return "claims looked for in the id_token"
        ui = check_userinfo(userinfo(ctx, f.access_token), f.id_claims["sub"])
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
    order = ["response_mode", "nonce", "state", "scope", "redirect_uri", "response_type", "client_id"]
    raw = "&".join(f"{k}={urllib.parse.quote(p[k], safe='')}" for k in order if k in p)
    browser = Browser(ctx)
    res = authorize(ctx, browser, p, raw_query=raw)
    resp = check_callback_success(ctx, run, res, p)
    finish_flow(ctx, run, client, p, res, resp)
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


module("oidcc-prompt-login", waits=1.0)(relogin_module({}, {"prompt": "login"}, 1.0))
module("oidcc-max-age-1", waits=2.0)(relogin_module({}, {"max_age": "1"}, 2.0))


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
    require(err in LOGIN_REQUIRED_CLASS, f"error {err!r} is not login_required-class")
    return f"redirected with error={err}" + (
        f" in {WHERE[response_location(params)]}" if response_location(params) != "query" else "")


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
    f2 = happy_flow(ctx, run, client, browser, prompt="none", id_token_hint=f1.id_token)
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
        require(f.code is not None and f.tokens is not None, f"response_type={client.response_type} gives no code")
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
            # The suite checks the token endpoint's access token (a warning if it still works); the
            # one the authorization endpoint returned in a hybrid flow belongs to the same grant.
            first = "the token endpoint's access token" if f.front_access_token else "the first access token"
            tokens = [(first, f.tokens.body["access_token"])]
            if f.front_access_token:
                tokens.append(("the authorization endpoint's access token", f.front_access_token))
            revoked = []
            for what, token in tokens:
                r = userinfo(ctx, token)
                if not (400 <= r.status_code < 500):
                    run.warn(f"{what} still works at userinfo (HTTP {r.status_code})")
                else:
                    revoked.append(f"{what} revoked (userinfo HTTP {r.status_code})")
            return "invalid_grant; " + "; ".join(revoked) if revoked else None
        return None
    return fn


module("oidcc-codereuse")(code_reuse_module(0))
module("oidcc-codereuse-30seconds", waits=30)(code_reuse_module(30))


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


def request_object_outer(client: Client, inner: dict[str, str], redirect_uri: str, ctx: Context) -> dict[str, str]:
    """BuildRequestObjectByValueRedirectToAuthorizationEndpoint: the request object (every
    parameter, response_mode included) plus the duplicates OIDC/RFC 6749 require outside it
    (response_type, client_id, scope, redirect_uri); state, nonce and response_mode travel only
    inside the request object."""
    return {"request": unsigned_request_object({**inner, "iss": client.client_id, "aud": ctx.issuer}),
            "response_type": inner["response_type"], "client_id": client.client_id, "scope": inner["scope"],
            "redirect_uri": redirect_uri}


def any_error(res: AuthResult) -> dict[str, str]:
    """The error parameters wherever they came (query, fragment or form), for the module's own verdict;
    the delivery rules are checked afterwards by auth_response."""
    for d in (res.form or {}, res.fragment, res.query):
        if "error" in d:
            return d
    return {}


@module("oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported")
def m_request_object(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    if "none" not in (ctx.disco.get("request_object_signing_alg_values_supported") or []):
        raise Skip("request_object_signing_alg_values_supported does not list none")
    inner = new_auth_params(ctx, client)
    outer = request_object_outer(client, inner, REDIRECT_URI, ctx)
    res = authorize(ctx, Browser(ctx), outer)
    err = any_error(res) if res.kind == "callback" else {}
    if err.get("error") == "request_not_supported":
        # Read where the request (the request object included) puts the response, as the suite does.
        # state travelled only inside the request object, and it is the request's state (OIDC Core
        # §6.1): the suite's state check expects it back (RFC 6749 §4.1.2.1).
        check_error_redirect(ctx, run, res, inner)
        raise Skip(f"request object rejected with request_not_supported in {WHERE[response_location(inner)]}")
    if err:
        raise Fail(f"expected the request object to be processed or rejected with request_not_supported, got "
                   f"error={err['error']}: {err.get('error_description', '')}")
    if ctx.disco.get("request_parameter_supported") is not True:
        run.warn("request_parameter_supported is not true, yet the request object was accepted")
    resp = check_callback_success(ctx, run, res, inner)
    finish_flow(ctx, run, client, inner, res, resp)
    return None


@module("oidcc-ensure-request-object-with-redirect-uri")
def m_request_object_redirect(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    if "none" not in (ctx.disco.get("request_object_signing_alg_values_supported") or []):  # skipTestIfNoneUnsupported
        raise Skip("request_object_signing_alg_values_supported does not list none")
    inner = new_auth_params(ctx, client)
    bad = REDIRECT_URI + generate_token(10)
    outer = request_object_outer(client, inner, bad, ctx)
    res = authorize(ctx, Browser(ctx), outer)
    if res.kind == "callback":
        require(not res.url.startswith(bad), "OP redirected to the unregistered outer redirect_uri")
        require(any_error(res).get("error") != "request_not_supported",
                "OP redirected to the registered URI with request_not_supported")
        resp = check_callback_success(ctx, run, res, inner)
        finish_flow(ctx, run, client, inner, res, resp)
        return "request object's redirect_uri used"
    return error_page_verdict(ctx, res, bad_uris=(bad,))


@module("oidcc-claims-essential")
def m_claims_essential(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    if client.response_type == "id_token":  # no access token: name is asked for in the ID token
        f = happy_flow(ctx, run, client, claims=json.dumps({"id_token": {"name": {"essential": True}}}))
        if "name" not in f.id_claims:
            run.warn("essential claim name not returned in the id_token")
        return None
    claims = json.dumps({"userinfo": {"name": {"essential": True}}})
    f = happy_flow(ctx, run, client, call_userinfo=False, claims=claims)
    assert f.access_token is not None
    ui = check_userinfo(userinfo(ctx, f.access_token), f.id_claims["sub"])
    if "name" not in ui:
        run.warn("essential claim name not returned at userinfo")
    if "name" in f.id_claims:
        run.warn("name requested for userinfo leaked into the id_token")
    return None


@module("oidcc-ensure-request-with-valid-pkce-succeeds")
def m_pkce(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    verifier = generate_token(64)
    happy_flow(ctx, run, client, code_challenge=create_s256_code_challenge(verifier), code_challenge_method="S256",
               redeem_extra={"code_verifier": verifier})
    return None


def refresh_request(ctx: Context, run: Run, client: Client, f: Flow, refresh_token: str, scope: str,
                    wait: float = 1.1) -> Tokens:
    """RefreshTokenRequestSteps (first client): wait a second (so that iat differs), refresh with `scope`
    and the client's authentication; 200 JSON with Cache-Control no-store, Bearer, enough access-token
    entropy, a valid expires_in, a refresh token of allowed characters; a new ID token, if any, keeps
    iss, sub, aud, azp and auth_time and has another iat (CompareIdTokenClaims)."""
    time.sleep(wait)
    t = token_request(ctx, client, {"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": scope})
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
    return t


@module("oidcc-refresh-token", waits=1.1)
def m_refresh(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    return refresh_flow(ctx, run, client, ctx.second_client(client))


def refresh_flow(ctx: Context, run: Run, client: Client, client2: Client) -> str | None:
    """OIDCCRefreshToken: offline_access (when advertised) with prompt=consent; client 1's refresh token
    must work (refresh_request), and client 2's must not with client 1's credentials."""
    scope = "openid offline_access" if "offline_access" in (ctx.disco.get("scopes_supported") or []) else "openid"
    f = happy_flow(ctx, run, client, scope=scope, prompt="consent", call_userinfo=False)
    assert f.tokens is not None
    rt = f.tokens.body.get("refresh_token")
    if not rt:
        raise Skip("no refresh token issued")
    refresh_request(ctx, run, client, f, rt, scope)
    # client2's refresh token, presented with client1's credentials, must be rejected.
    f2 = happy_flow(ctx, run, client2, scope=scope, prompt="consent", call_userinfo=False)
    assert f2.tokens is not None
    rt2 = f2.tokens.body.get("refresh_token")
    require(bool(rt2), "second client got no refresh token")
    t3 = token_request(ctx, client, {"grant_type": "refresh_token", "refresh_token": rt2})
    require(t3.status == 400 and t3.body.get("error") == "invalid_grant",
            f"client2's refresh token with client1's credentials gave HTTP {t3.status} {t3.body.get('error')!r}, "
            "expected 400 invalid_grant")
    return None


# --------------------------------------------------------------------------- client assertion (Dynamic plan)

DYNAMIC_PLAN = "oidcc-dynamic-certification-test-plan"


# The suite's comprehensive, non-certification plan: the static-client runs of
# oidcc-ensure-client-assertion-with-iss-aud-succeeds are counted there (the Dynamic plan has dynamic clients only).
TEST_PLAN = "oidcc-test-plan"


@module("oidcc-ensure-client-assertion-with-iss-aud-succeeds", variants=JWT_AUTH_METHODS, plan=TEST_PLAN)
def m_client_assertion_iss_aud(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    """OIDCCEnsureClientAssertionWithIssAudSucceeds (§2.6): the code is redeemed with a client assertion
    (private_key_jwt or client_secret_jwt: the module is not applicable to the other ClientAuthTypes)
    whose aud is the issuer, not the token endpoint. The OP should accept it (RFC 7523 §3 and
    OIDC Core §9 only recommend the token endpoint). A rejection is a warning, provided it is a valid
    error response: JSON, a well-formed error, HTTP 400 (401 allowed for invalid_client), and the
    error invalid_client; anything else fails. After the token endpoint the module stops. Without a
    code (id_token, id_token token) there is no token endpoint call: the module checks the
    authorization endpoint's response (its ID token, and its access token at userinfo) and stops."""
    require(client.auth_method in JWT_AUTH_METHODS, "the module applies to private_key_jwt and client_secret_jwt "
            "clients only")
    params = new_auth_params(ctx, client)
    res = authorize(ctx, Browser(ctx), params)
    resp = check_callback_success(ctx, run, res, params)
    parts = response_parts(params)
    code = resp.get("code") if "code" in parts else None
    front = None
    if "id_token" in parts:
        front = verify_id_token(ctx, run, resp["id_token"], client, params.get("nonce"), code=code,
                                access_token=resp.get("access_token"), where="the authorization endpoint's id_token")
    if "token" in parts:  # handleSuccessfulAuthorizationEndpointResponse: requestProtectedResource
        protected_resource(ctx, resp["access_token"], "the access token from the authorization endpoint")
    if code is None:
        return f"response_type={client.response_type}: no code, so no client assertion is sent (the module stops " \
               "after the authorization endpoint)"
    t = token_request(ctx, client, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
                      assertion_aud=ctx.issuer)
    err = t.body.get("error")
    if err:  # CheckIfTokenEndpointResponseError as a WARNING, then the error response's checks
        run.warn(f"the OP rejected the client assertion with aud = the issuer {ctx.issuer!r}: HTTP {t.status} "
                 f"error={err!r}" + (f" ({t.body['error_description']})" if t.body.get("error_description") else ""))
        require(t.headers.get("Content-Type", "").startswith("application/json"),
                f"the token endpoint's error response is not JSON: {t.headers.get('Content-Type')!r}")
        require(isinstance(err, str) and bool(ERROR_DESC_RE.match(err)),
                f"'error' {err!r} uses characters RFC 6749 §5.2 does not allow")
        for k in ("error_description", "error_uri"):
            if k in t.body:
                require(isinstance(t.body[k], str) and bool(ERROR_DESC_RE.match(t.body[k])),
                        f"{k} uses characters RFC 6749 §5.2 does not allow")
        if err == "invalid_client":
            require(t.status in (400, 401), f"HTTP {t.status} for invalid_client, expected 400 or 401 (RFC 6749 §5.2)")
        else:
            require(t.status == 400, f"HTTP {t.status} for error {err!r}, expected 400 (RFC 6749 §5.2)")
        require(err == "invalid_client", f"the client assertion with aud = the issuer was rejected with {err!r} "
                f"(HTTP {t.status}); only invalid_client is an acceptable rejection")
        return f"rejected with HTTP {t.status} invalid_client"
    check_token_response(run, t)
    claims = verify_id_token(ctx, run, t.body["id_token"], client, params.get("nonce"), t.body["access_token"], code,
                             where="the token endpoint's id_token")
    if front is not None:
        require(claims["sub"] == front["sub"], "sub in the authorization endpoint's id_token does not match the "
                "token endpoint's")
    return f"client assertion with aud={ctx.issuer} accepted"


# --------------------------------------------------------------------------- dynamic registration (Dynamic plan)
#
# oidcc-dynamic-certification-test-plan (§2.6), variants private_key_jwt, dynamic_client, discovery and
# response_mode default, once per response type ([dynamic code], [dynamic id_token], …). Each module
# registers the client(s) it needs at discovery's registration_endpoint (RFC 7591) with the request the
# suite's OIDCCCreateDynamicClientRegistrationRequest builds for the run's response type, uses them, and
# unregisters them at the end (RFC 7592 DELETE), as the suite's cleanup does, whatever happened.

LOGO_URI = RP_ORIGIN + "images/raidiam.png"  # CreateLogoUri: LOGO_PATH on the suite's own origin
POLICY_URI = "https://openid.net"  # CreatePolicyUri
TOS_URI = "https://openid.net"  # CreateTosUri
SECOND_REDIRECT_URI = "https://example.org/redirect"  # AddMultipleRedirectUriToDynamicRegistrationRequest
INVALID_SECTOR_REDIRECT_URI = "https://example.com/op"  # CreateInvalidSectorRedirectUris
ID_TOKEN_KEY_SET = "hydra.openid.id-token"  # the JWK set the server signs ID tokens with (admin API)
# WaitForJWKSRefreshDelay: seconds oidcc-refresh-token-rp-key-rotation waits after replacing the client's key,
# the suite's default 60 unless the configuration's server.jwks_refresh_delay (1..60) says otherwise
# (--jwks-refresh-delay).
JWKS_REFRESH_DELAY = 60.0


@dataclass
class DynamicClient:
    client: Client
    registration_client_uri: str | None
    registration_access_token: str | None
    response: dict[str, Any]


def dynamic_registration_request(name: str, key: RSAKey, response_type: str = "code",
                                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """OIDCCCreateDynamicClientRegistrationRequest for the run's response type and private_key_jwt:
    client_name (CreateDynamicRegistrationRequest); grant_types authorization_code if the response type
    has code, implicit if it has id_token or token; the public part of a fresh RS256 key as `jwks`
    (GenerateRS256ClientJWKs, AddPublicJwksToDynamicRegistrationRequest); token_endpoint_auth_method;
    response_types [the response type]; redirect_uris [the redirect URI]; contacts [certification@oidf.org].
    `extra` adds what the module adds (logo_uri, id_token_signed_response_alg, request_uris, …) or replaces
    (redirect_uris, grant_types)."""
    parts = set(response_type.split())
    body: dict[str, Any] = {
        "client_name": name,
        "grant_types": (["authorization_code"] if "code" in parts else [])
        + (["implicit"] if parts & {"id_token", "token"} else []),
        "jwks": {"keys": [key.as_dict(private=False)]},
        "token_endpoint_auth_method": "private_key_jwt",
        "response_types": [response_type],
        "redirect_uris": [REDIRECT_URI],
        "contacts": ["certification@oidf.org"],
    }
    body.update(extra or {})
    return body


def dynamic_request_for(template: Client, module_name: str, key: RSAKey,
                        extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The registration request of a Dynamic plan module for the run's response type, named after both."""
    name = f"conformity-{module_name.removeprefix('oidcc-')}-{template.response_type.replace(' ', '-')}"
    return dynamic_registration_request(name, key, template.response_type, extra)


def with_refresh_grant(body: dict[str, Any]) -> dict[str, Any]:
    """AddRefreshTokenGrantTypeToDynamicRegistrationRequest."""
    body["grant_types"] = list(dict.fromkeys(body["grant_types"] + ["refresh_token"]))
    return body


def call_registration_endpoint(ctx: Context, body: dict[str, Any]) -> requests.Response:
    """CallDynamicRegistrationEndpoint: a POST of the JSON request to discovery's registration_endpoint."""
    endpoint = ctx.disco.get("registration_endpoint")
    require(isinstance(endpoint, str) and endpoint != "", "discovery has no registration_endpoint")
    return requests.post(ctx.internal(endpoint), json=body, headers={"Accept": "application/json"},
                         timeout=HTTP_TIMEOUT)


def register_dynamic_client(ctx: Context, body: dict[str, Any], key: RSAKey) -> DynamicClient:
    """CallDynamicRegistrationEndpointAndVerifySuccessfulResponse: the answer must be a non-empty JSON
    object (CallDynamicRegistrationEndpoint), EnsureContentTypeJson, EnsureHttpStatusCodeIs201,
    CheckNoErrorFromDynamicRegistrationEndpoint, ExtractDynamicRegistrationResponse (a client_id),
    VerifyClientManagementCredentials (registration_client_uri and registration_access_token come together
    or not at all, neither empty, the URI https) and VerifyDynamicRegistrationResponseClientCredentials
    (a client_secret needs client_secret_expires_at)."""
    r = call_registration_endpoint(ctx, body)
    require(r.text != "", f"empty response from the registration endpoint (HTTP {r.status_code})")
    try:
        j = r.json()
    except ValueError:
        raise Fail(f"the registration endpoint's response is not JSON (HTTP {r.status_code}): {r.text[:200]}")
    require(isinstance(j, dict), "the registration endpoint did not return a JSON object")
    require(r.headers.get("Content-Type", "").startswith("application/json"),
            f"the registration response's Content-Type is {r.headers.get('Content-Type')!r}, not application/json")
    require(r.status_code == 201, f"the registration endpoint returned HTTP {r.status_code}, expected 201 "
            f"(RFC 7591 §3.2.1): {r.text[:200]}")
    require("error" not in j, f"the registration response carries error={j.get('error')!r}")
    uri, token = j.get("registration_client_uri"), j.get("registration_access_token")
    if uri is not None or token is not None:
        require(uri is not None, "dynamic registration returned registration_access_token but not "
                "registration_client_uri")
        require(token is not None, "dynamic registration returned registration_client_uri but not "
                "registration_access_token")
        require(isinstance(uri, str) and uri != "", "registration_client_uri must not be an empty string")
        require(isinstance(token, str) and token != "", "registration_access_token must not be an empty string")
        require(uri.startswith("https://"), f"registration_client_uri {uri!r} is not https")
    require(isinstance(j.get("client_id"), str) and j["client_id"] != "", "the registration response has no client_id")
    if j.get("client_secret") is not None:
        require(j.get("client_secret_expires_at") is not None, "the registration response has a client_secret but "
                "no client_secret_expires_at")
    client = Client(j["client_id"], j.get("client_secret") or "", str(body.get("token_endpoint_auth_method")),
                    str((body.get("response_types") or ["code"])[0]), key=key)
    return DynamicClient(client, uri, token, j)


def unregister_dynamic_client(ctx: Context, run: Run, dc: DynamicClient) -> str:
    """UnregisterDynamicallyRegisteredClient (the suite's cleanup): DELETE registration_client_uri with the
    registration access token as a Bearer token; anything but 204 No Content, or no answer, is only a
    warning (the cleanup's onFail(WARNING); conformance.md §1)."""
    if not dc.registration_client_uri or not dc.registration_access_token:
        return "no registration_client_uri to unregister with"
    try:
        r = requests.delete(ctx.internal(dc.registration_client_uri), timeout=HTTP_TIMEOUT,
                            headers={"Authorization": f"Bearer {dc.registration_access_token}",
                                     "Accept": "application/json"})
    except requests.RequestException as e:
        run.warn(f"unregistering the client failed: {e}")
        return "not unregistered"
    if r.status_code != 204:
        run.warn(f"registration_client_uri answered the DELETE with HTTP {r.status_code}, not 204 No Content: "
                 f"{r.text[:200]}")
        return "not unregistered" if not 200 <= r.status_code < 300 else f"unregistered (HTTP {r.status_code})"
    return "unregistered (HTTP 204)"


def with_dynamic_clients(ctx: Context, run: Run, registrations: list[tuple[dict[str, Any], RSAKey]],
                         fn: Callable[[list[DynamicClient]], str | None]) -> str:
    """Registers every client (in order), runs `fn`, and unregisters whatever was registered, whatever
    happened (the suite's cleanup); the line gets what `fn` and the cleanup said."""
    dcs: list[DynamicClient] = []
    note: str | None = None
    try:
        for body, key in registrations:
            dcs.append(register_dynamic_client(ctx, body, key))
        note = fn(dcs)
    finally:
        cleanup = [unregister_dynamic_client(ctx, run, dc) for dc in dcs]
    done = cleanup[0] if len(set(cleanup)) == 1 else ", ".join(cleanup)
    return "; ".join(x for x in (note, ("both clients " if len(dcs) == 2 else "client ") + done) if x)


def with_dynamic_client(ctx: Context, run: Run, body: dict[str, Any], key: RSAKey,
                        fn: Callable[[DynamicClient], str | None]) -> str:
    """Registers one client, runs `fn`, and unregisters it whatever happened."""
    return with_dynamic_clients(ctx, run, [(body, key)], lambda dcs: fn(dcs[0]))


def with_registered(fn: ModuleFn, module_name: str, extra: dict[str, Any] | None = None) -> ModuleFn:
    """A module that runs `fn` (the same checks as with a static client) with a client registered for the
    run's response type at the registration endpoint, as AbstractOIDCCServerTest's configureDynamicClient
    does, plus `extra` in the registration request."""
    def wrapped(ctx: Context, run: Run, template: Client, variant: str) -> str | None:
        key = new_client_key()
        body = dynamic_request_for(template, module_name, key, extra)
        return with_dynamic_client(ctx, run, body, key, lambda dc: fn(ctx, run, dc.client, variant))
    wrapped.__doc__ = fn.__doc__
    return wrapped


def jws_header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS/JWT, unverified."""
    require(isinstance(token, str) and token.count(".") == 2, "not a compact JWS")
    seg = token.split(".")[0]
    try:
        h = json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))
    except ValueError as e:
        raise Fail(f"the JWS header is not base64url JSON: {e}")
    require(isinstance(h, dict), "the JWS header is not a JSON object")
    return h


def need_receiver(ctx: Context) -> Receiver:
    if ctx.receiver is None:
        raise Fail(ctx.logout_setup_error or "no RP receiver to serve the client's documents")
    return ctx.receiver


# ---- OP-IDToken-RS256 / OP-IDToken-none / OP-UserInfo-RS256

@dynamic_module("oidcc-idtoken-rs256")
def m_idtoken_rs256(ctx: Context, run: Run, template: Client, variant: str) -> str | None:
    """OIDCCIdTokenRS256: the client registers id_token_signed_response_alg=RS256
    (AddIdTokenSigningAlgRS256ToDynamicRegistrationRequest); the AbstractOIDCCServerTest flow runs, and
    every ID token (the authorization endpoint's and the token endpoint's) must carry a kid
    (EnsureIdTokenContainsKid) and alg RS256 (CheckIdTokenSignatureAlgorithm), besides the standard checks."""
    key = new_client_key()
    body = dynamic_request_for(template, "oidcc-idtoken-rs256", key, {"id_token_signed_response_alg": "RS256"})

    def flow(dc: DynamicClient) -> str:
        f = happy_flow(ctx, run, dc.client)
        tokens = [(w, t) for w, t in (("the authorization endpoint's", f.response.get("id_token")),
                                      ("the token endpoint's", f.tokens.body.get("id_token") if f.tokens else None))
                  if t]
        seen = []
        for where, tok in tokens:
            h = jws_header(tok)
            require(bool(h.get("kid")), f"kid was not found in {where} id_token header (OIDCC-10.1)")
            require(h.get("alg") == "RS256", f"{where} id_token is signed with {h.get('alg')!r}, not RS256 as "
                    "registered (OIDCC-3.1.3.7)")
            seen.append(f"{where} kid {h['kid']}")
        return "RS256 id_token: " + ", ".join(seen)
    return with_dynamic_client(ctx, run, body, key, flow)


@dynamic_module("oidcc-idtoken-unsigned")
def m_idtoken_unsigned(ctx: Context, run: Run, template: Client, variant: str) -> str | None:
    """OIDCCIdTokenUnsigned (code and code token only): skipped, before any registration, when discovery's
    id_token_signing_alg_values_supported does not list none (OIDCCCheckIdTokenSigningAlgValuesSupportedAlgNone;
    support for none is optional). Otherwise the client registers id_token_signed_response_alg=none and the
    token endpoint's ID token must have alg none (CheckIdTokenSignatureAlgorithm, the only ID token check)."""
    algs = ctx.disco.get("id_token_signing_alg_values_supported")
    if not isinstance(algs, list) or "none" not in algs:
        raise Skip("id_token_signing_alg_values_supported does not list none; servers are not required to "
                   f"support unsigned ID tokens (advertised: {algs})")
    key = new_client_key()
    body = dynamic_request_for(template, "oidcc-idtoken-unsigned", key, {"id_token_signed_response_alg": "none"})

    def flow(dc: DynamicClient) -> str:
        params = new_auth_params(ctx, dc.client)
        res = authorize(ctx, Browser(ctx), params)
        resp = check_callback_success(ctx, run, res, params)
        parts = response_parts(params)
        if "token" in parts:
            protected_resource(ctx, resp["access_token"], "the access token from the authorization endpoint")
        require("code" in parts, f"response_type={template.response_type} gives no code")
        t = redeem(ctx, run, dc.client, resp["code"])
        alg = jws_header(t.body["id_token"]).get("alg")
        require(alg == "none", f"the token endpoint's id_token has alg {alg!r}, not none as registered")
        protected_resource(ctx, t.body["access_token"], "the token endpoint's access token")
        return "unsigned id_token returned"
    return with_dynamic_client(ctx, run, body, key, flow)


@dynamic_module("oidcc-userinfo-rs256")
def m_userinfo_rs256(ctx: Context, run: Run, template: Client, variant: str) -> str | None:
    """OIDCCUserInfoRS256 (AbstractOIDCCUserInfoTest; not for id_token): discovery's
    userinfo_signing_alg_values_supported must list RS256 (OIDCD-3). The client registers
    userinfo_signed_response_alg=RS256 (OIDCR-2); after the usual flow (userinfo only has to answer 200
    there), userinfo is called with the last access token (a GET with a Bearer header) and must answer 200
    with Content-Type application/jwt (OIDCC-5.3.2), a JWS that verifies with the OP's keys from jwks_uri
    (ValidateUserInfoResponseSignature) and alg RS256. iss (the issuer) and aud (the client_id), and exp, iat
    and nbf when present, are checked as ValidateSignedUserInfoResponseStandardJWTClaims does, as a WARNING
    only. With iss, aud, exp, nbf, iat and jti removed, the claims must hold no nonce (a FAILURE), sub, valid
    standard claim types and updated_at, consistent _claim_names/_claim_sources, and sub equal to the ID
    token's (the suite compares it with the ID tokens of response types with id_token; the harness with the
    last ID token always)."""
    advertised = ctx.disco.get("userinfo_signing_alg_values_supported")
    require(isinstance(advertised, list) and "RS256" in advertised,
            f"RS256 is not listed in userinfo_signing_alg_values_supported ({advertised!r}) (OIDCD-3)")
    key = new_client_key()
    body = dynamic_request_for(template, "oidcc-userinfo-rs256", key, {"userinfo_signed_response_alg": "RS256"})

    def flow(dc: DynamicClient) -> str:
        client = dc.client
        f = happy_flow(ctx, run, client, userinfo_json=False)
        require(f.access_token is not None, f"response_type={client.response_type} gives no access token")
        assert f.access_token is not None
        r = userinfo(ctx, f.access_token)
        require(r.status_code == 200, f"userinfo returned HTTP {r.status_code}: {r.text[:200]}")
        ctype = r.headers.get("Content-Type", "")
        require(ctype.split(";")[0].strip().lower() == "application/jwt",
                f"userinfo Content-Type is {ctype!r}, not application/jwt (OIDCC-5.3.2)")
        body_text = r.text.strip()
        try:
            tok = jwt.decode(body_text, ctx.keyset, algorithms=["RS256", "RS384", "RS512", "PS256", "ES256"])
        except (JoseError, ValueError) as e:
            raise Fail(f"the signed userinfo response does not verify against jwks_uri: {e!r}")
        require(tok.header.get("alg") == "RS256", f"userinfo response is signed with {tok.header.get('alg')!r}, "
                "not RS256 as registered")
        c = dict(tok.claims)
        now = time.time()
        problems = []
        if c.get("iss") is None:
            problems.append("missing iss")
        elif c["iss"] != ctx.issuer:
            problems.append(f"iss {c['iss']!r} != issuer")
        aud = c.get("aud")
        if aud is None:
            problems.append("missing aud")
        elif not (aud == client.client_id or (isinstance(aud, list) and client.client_id in aud)):
            problems.append(f"aud {aud!r} does not contain the client_id")
        if isinstance(c.get("exp"), (int, float)) and (c["exp"] < now - CLOCK_SKEW or c["exp"] > now + 50 * 365 * 86400):
            problems.append(f"exp {c['exp']} expired or more than 50 years ahead")
        if isinstance(c.get("iat"), (int, float)) and (c["iat"] > now + CLOCK_SKEW or c["iat"] < now - 86400):
            problems.append(f"iat {c['iat']} in the future or more than a day old")
        if isinstance(c.get("nbf"), (int, float)) and c["nbf"] > now + CLOCK_SKEW:
            problems.append(f"nbf {c['nbf']} in the future")
        if problems:
            run.warn("signed userinfo response: " + "; ".join(problems) + " (OIDCC-5.3.2)")
        for k in ("iss", "aud", "exp", "nbf", "iat", "jti"):
            c.pop(k, None)
        require("nonce" not in c, "the signed userinfo response contains nonce (OIDCC-5.3.2, OIDCC-5.1): it could "
                "be mistaken for an id_token")
        require(isinstance(c.get("sub"), str) and c["sub"] != "", "the signed userinfo response has no sub")
        check_claim_types(c, "signed userinfo")
        names, sources = c.get("_claim_names"), c.get("_claim_sources")
        if names is not None or sources is not None:
            require(isinstance(names, dict) and isinstance(sources, dict), "_claim_names/_claim_sources inconsistent")
            for src in names.values():
                require(src in sources, f"_claim_names refers to unknown source {src}")
        for where, claims in (("the authorization endpoint's", f.front_claims), ("the last", f.id_claims)):
            if claims is not None:
                require(c["sub"] == claims["sub"], f"userinfo sub {c['sub']!r} != {where} id_token sub {claims['sub']!r}")
        return f"application/jwt, RS256 with kid {tok.header.get('kid')}, iss and aud " + (
            "present" if not problems else "problematic")
    return with_dynamic_client(ctx, run, body, key, flow)


# ---- OP-redirect_uri-*

@dynamic_module("oidcc-ensure-redirect-uri-in-authorization-request")
def m_redirect_uri_missing(ctx: Context, run: Run, template: Client, variant: str) -> str | None:
    """OIDCCEnsureRedirectUriInAuthorizationRequest: the client registers two redirect URIs (the usual one
    and https://example.org/redirect, AddMultipleRedirectUriToDynamicRegistrationRequest) and the
    authorization request has no redirect_uri (RemoveRedirectUriFromAuthorizationEndpointRequest). The OP
    must show an error page (ExpectRedirectUriMissingErrorPage, a screenshot; here the error-page proxy);
    any redirect back fails (AuthorizationEndpointRedirectedBackUnexpectedly)."""
    key = new_client_key()
    body = dynamic_request_for(template, "oidcc-ensure-redirect-uri-in-authorization-request", key,
                               {"redirect_uris": [REDIRECT_URI, SECOND_REDIRECT_URI]})

    def flow(dc: DynamicClient) -> str:
        params = new_auth_params(ctx, dc.client)
        del params["redirect_uri"]
        res = authorize(ctx, Browser(ctx), params)
        if res.kind == "callback":
            raise Fail(f"the authorization server redirected back ({res.url[:100]}) in a case where it should not")
        return error_page_verdict(ctx, res, bad_uris=(SECOND_REDIRECT_URI,))
    return with_dynamic_client(ctx, run, body, key, flow)


def redirect_uri_with_query(uri: str, query: str) -> str:
    """DefaultUriBuilderFactory's queryParam: the parameter appended to the URI's query."""
    parts = urllib.parse.urlsplit(uri)
    return parts._replace(query=(parts.query + "&" if parts.query else "") + query).geturl()


@dynamic_module("oidcc-redirect-uri-query-OK")
def m_redirect_uri_query_ok(ctx: Context, run: Run, template: Client, variant: str) -> str | None:
    """OIDCCRedirectUriQueryOK: the registered redirect URI has a query (AddQueryToRedirectUri: ?bar=foo),
    and the authorization request uses exactly that URI. The whole AbstractOIDCCServerTest flow must
    succeed; the callback must keep the URI's own query (CheckMatchingCallbackParameters), and the code is
    redeemed with that redirect_uri."""
    uri = redirect_uri_with_query(REDIRECT_URI, "bar=foo")
    key = new_client_key()
    body = dynamic_request_for(template, "oidcc-redirect-uri-query-OK", key, {"redirect_uris": [uri]})

    def flow(dc: DynamicClient) -> str:
        happy_flow(ctx, run, dc.client, redirect_uri=uri)
        return f"redirect_uri {uri} accepted and its query kept"
    return with_dynamic_client(ctx, run, body, key, flow)


def redirect_uri_error_module(name: str, registered: str, requested: str, what: str) -> ModuleFn:
    """OIDCCRedirectUriQueryMismatch / QueryAdded: the request's redirect_uri differs from the registered one
    in its query; the OP must show an error page (ExpectRedirectUriErrorPage; here the error-page proxy), and
    a callback to the registered URI fails (processCallback throws)."""
    def fn(ctx: Context, run: Run, template: Client, variant: str) -> str | None:
        key = new_client_key()
        body = dynamic_request_for(template, name, key, {"redirect_uris": [registered]})

        def flow(dc: DynamicClient) -> str:
            params = new_auth_params(ctx, dc.client, redirect_uri=requested)
            res = authorize(ctx, Browser(ctx), params)
            if res.kind == "callback":
                raise Fail(f"the authorization server called the redirect uri ({res.url[:100]}) although the "
                           f"request's redirect_uri {requested} {what}")
            return error_page_verdict(ctx, res, bad_uris=(requested, registered))
        return with_dynamic_client(ctx, run, body, key, flow)
    fn.__doc__ = redirect_uri_error_module.__doc__
    return fn


# ReplaceRedirectUriQueryInAuthorizationRequest: the registered ?bar=foo replaced by ?foo=bar.
dynamic_module("oidcc-redirect-uri-query-mismatch")(redirect_uri_error_module(
    "oidcc-redirect-uri-query-mismatch", redirect_uri_with_query(REDIRECT_URI, "bar=foo"),
    redirect_uri_with_query(REDIRECT_URI, "foo=bar"), "has another query than the registered one"))
# AddQueryToRedirectUriInAuthorizationRequest: ?foo=bar added to a registered URI without a query.
dynamic_module("oidcc-redirect-uri-query-added")(redirect_uri_error_module(
    "oidcc-redirect-uri-query-added", REDIRECT_URI, redirect_uri_with_query(REDIRECT_URI, "foo=bar"),
    "adds a query to the registered one"))


def expect_registration_refused(ctx: Context, run: Run, body: dict[str, Any], permitted: tuple[str, ...],
                                req: str) -> str:
    """The registration must fail: JSON (EnsureContentTypeJson) and HTTP 400 (EnsureHttpStatusCodeIs400)
    are required; an `error` missing or not in `permitted` is only a WARNING
    (AbstractCheckErrorFromDynamicRegistrationEndpoint, OIDCR-3.3). A client registered anyway is deleted
    again (the harness's hygiene; the suite leaves it)."""
    r = call_registration_endpoint(ctx, body)
    try:
        j = r.json()
    except ValueError:
        j = None
    if r.status_code == 201 and isinstance(j, dict) and j.get("registration_client_uri"):
        unregister_dynamic_client(ctx, Run(), DynamicClient(Client(str(j.get("client_id")), "", "private_key_jwt"),
                                                            j.get("registration_client_uri"),
                                                            j.get("registration_access_token"), j))
    require(r.status_code == 400, f"the registration endpoint answered HTTP {r.status_code}, expected 400 ({req}): "
            f"{r.text[:200]}")
    require(r.headers.get("Content-Type", "").startswith("application/json") and isinstance(j, dict),
            f"the registration endpoint's error is not a JSON object (Content-Type "
            f"{r.headers.get('Content-Type')!r}): {r.text[:200]}")
    assert isinstance(j, dict)
    err = j.get("error")
    if not err:
        run.warn("'error' field not found in the response from the dynamic registration endpoint")
    elif err not in permitted:
        run.warn(f"the registration endpoint's error is {err!r}, expected {' or '.join(permitted)} (OIDCR-3.3)")
    return f"registration refused with HTTP 400 error={err}"


@dynamic_module("oidcc-redirect-uri-regfrag")
def m_redirect_uri_regfrag(ctx: Context, run: Run, template: Client, variant: str) -> str | None:
    """OIDCCRedirectUriRegFrag: the registration request's redirect URI has a fragment
    (AddFragmentToRedirectUri: #foobar). The registration endpoint must refuse it with HTTP 400 and JSON;
    an error other than invalid_redirect_uri or invalid_client_metadata is only a WARNING
    (CheckErrorFromDynamicRegistrationEndpointIsInvalidRedirectUriOrInvalidClientMetadata). No flow."""
    body = dynamic_request_for(template, "oidcc-redirect-uri-regfrag", new_client_key(),
                               {"redirect_uris": [REDIRECT_URI + "#foobar"]})
    return expect_registration_refused(ctx, run, body, ("invalid_redirect_uri", "invalid_client_metadata"),
                                       "RFC6749-3.1.2")


# ---- OP-Discovery-Config (dynamic rules)

@dynamic_module("oidcc-discovery-endpoint-verification")
def m_discovery_dynamic(ctx: Context, run: Run, template: Client, variant: str) -> str | None:
    """OIDCCDiscoveryEndpointVerification with client_registration=dynamic_client: the Config plan's checks,
    with OIDCCCheckDiscEndpointResponseTypesSupportedDynamic (code, id_token and token id_token all
    listed, compared as sets of words) and OIDCCCheckDiscEndpointGrantTypesSupportedDynamic
    (authorization_code and implicit, when grant_types_supported is present)."""
    return discovery_checks(ctx, run, dynamic=True)


# ---- OP-Registration-*

@dynamic_module("oidcc-server")
def m_server_dynamic(ctx: Context, run: Run, template: Client, variant: str) -> str | None:
    """OIDCCServerTest with a dynamically registered client (OP-Registration-Endpoint, OP-Registration-Dynamic
    and OP-Registration-jwks): the registration checks of register_dynamic_client, then the oidcc-server
    checks of m_server, the code redeemed with private_key_jwt."""
    return with_registered(m_server, "oidcc-server")(ctx, run, template, variant)


def registration_login_page_module(member: str, value: str, what: str) -> ModuleFn:
    """OIDCCRegistrationLogoUri / PolicyUri / TosUri (AbstractOIDCCDynamicRegistrationTest): register with
    `member`, send an authorization request with a fresh browser, and expect the login page, which should
    show the logo, or link the policy or terms of service (ExpectLoginPageWith*, a screenshot in the suite).
    Here the login page is the harness's login app: its observable effect is a login challenge with
    skip=false whose client (as the admin API hands it to the login app, which renders it) carries the
    registered value. A callback with an error fails (CheckIfAuthorizationEndpointError); the suite does not
    need the login completed, the harness completes it."""
    def fn(ctx: Context, run: Run, template: Client, variant: str) -> str | None:
        key = new_client_key()
        body = dynamic_request_for(template, f"oidcc-registration-{member.replace('_', '-')}", key, {member: value})

        def flow(dc: DynamicClient) -> str:
            params = new_auth_params(ctx, dc.client)
            res = authorize(ctx, Browser(ctx), params)
            if res.kind == "callback":
                q = auth_response(ctx, res, params)
                if "error" in q:
                    raise Fail(f"authorization returned error={q['error']}: {q.get('error_description', '')}")
            require(bool(res.logins), f"no login page was shown (the chain ended at {res.kind} {res.url[:100]} "
                    f"HTTP {res.status})")
            login = res.logins[0]
            require(not login.get("skip"), "the login challenge had skip=true: no login page would be shown")
            got = (login.get("client") or {}).get(member)
            require(got == value, f"the login request's client carries {member}={got!r}, registered {value!r}: "
                    f"the login page cannot show the {what}")
            return f"login page shown (observed: login challenge with skip=false, client {member}={got})"
        return with_dynamic_client(ctx, run, body, key, flow)
    return fn


dynamic_module("oidcc-registration-logo-uri")(registration_login_page_module("logo_uri", LOGO_URI, "client's logo"))
dynamic_module("oidcc-registration-policy-uri")(
    registration_login_page_module("policy_uri", POLICY_URI, "link to the client's policy"))
dynamic_module("oidcc-registration-tos-uri")(
    registration_login_page_module("tos_uri", TOS_URI, "link to the client's terms of service"))


def serve_client_jwks(receiver: Receiver, path: str, key: RSAKey) -> None:
    """handleJwksRequest: the client's public JWKS (client_public_jwks) as application/json."""
    receiver.documents[path] = ("application/json", json.dumps({"keys": [key.as_dict(private=False)]}).encode())


def jwks_fetches(ctx: Context, path: str, since: float) -> int:
    return len([r for r in (ctx.receiver.records if ctx.receiver else []) if r.path == path and r.at >= since])


@dynamic_module("oidcc-registration-jwks-uri")
def m_registration_jwks_uri(ctx: Context, run: Run, template: Client, variant: str) -> str | None:
    """OIDCCRegistrationJwksUri (code flows): the client registers `jwks_uri` instead of `jwks` (CreateJwksUri,
    AddJwksUriToDynamicRegistrationRequest), with a key that has a kid (GenerateRS256ClientJWKsWithKeyID);
    the suite serves the public JWKS there (handleJwksRequest), here the RP receiver does, over https.
    Then the whole AbstractOIDCCServerTest flow: authorization, the code redeemed with a private_key_jwt
    assertion the server can only verify with the fetched key, the ID token checks and userinfo."""
    receiver = need_receiver(ctx)
    key = new_client_key()
    jwks_path = f"/client1_jwks-{generate_token(8)}"
    serve_client_jwks(receiver, jwks_path, key)
    body = dynamic_request_for(template, "oidcc-registration-jwks-uri", key)
    del body["jwks"]
    body["jwks_uri"] = receiver.url(jwks_path)
    since = time.time()

    def flow(dc: DynamicClient) -> str:
        happy_flow(ctx, run, dc.client)
        return (f"code redeemed with private_key_jwt, key fetched from jwks_uri "
                f"({jwks_fetches(ctx, jwks_path, since)} fetch(es))")
    return with_dynamic_client(ctx, run, body, key, flow)


def sector_module(good: bool) -> ModuleFn:
    def fn(ctx: Context, run: Run, template: Client, variant: str) -> str | None:
        sts = ctx.disco.get("subject_types_supported")
        if not isinstance(sts, list) or "pairwise" not in sts:
            raise Skip("Server configuration does not explicitly support pairwise subject type "
                       f"(subject_types_supported: {sts!r})")
        receiver = need_receiver(ctx)
        path = f"/redirect_uris-{generate_token(8)}.json"
        uris = [REDIRECT_URI] if good else [INVALID_SECTOR_REDIRECT_URI]
        receiver.documents[path] = ("application/json", json.dumps(uris).encode())
        key = new_client_key()
        name = "oidcc-registration-sector-uri" if good else "oidcc-registration-sector-bad"
        body = dynamic_request_for(template, name, key, {"subject_type": "pairwise",
                                                          "sector_identifier_uri": receiver.url(path)})
        since = time.time()
        if not good:
            note = expect_registration_refused(ctx, run, body, ("invalid_client_metadata",), "OIDCR-5")
            return f"{note} (the sector document was fetched {jwks_fetches(ctx, path, since)} time(s))"

        def flow(dc: DynamicClient) -> str:
            return (f"registered with subject_type={dc.response.get('subject_type')} (the sector document was "
                    f"fetched {jwks_fetches(ctx, path, since)} time(s))")
        return with_dynamic_client(ctx, run, body, key, flow)
    return fn


# OIDCCRegistrationSectorUri: subject_type pairwise (AddSubjectTypePairwiseToDynamicRegistrationRequest) and a
# sector_identifier_uri (AddSectorIdentifierUriToDynamicRegistrationRequest) whose JSON array holds the redirect
# URI (CreateSectorRedirectUris, served by the receiver over https); the registration must succeed with the full
# CallDynamicRegistrationEndpointAndVerifySuccessfulResponse checks; no authorization flow. Skipped if
# subject_types_supported lacks pairwise.
dynamic_module("oidcc-registration-sector-uri")(sector_module(True))
# OIDCCRegistrationSectorBad: the same with a sector document holding only https://example.com/op
# (CreateInvalidSectorRedirectUris): HTTP 400 and JSON required; an error other than invalid_client_metadata
# is a WARNING (CheckErrorFromDynamicRegistrationEndpointIsInvalidClientMetadata). Same skip rule.
dynamic_module("oidcc-registration-sector-bad")(sector_module(False))


# ---- OP-Rotation-OP-Sig

def signing_keys(jwks: dict[str, Any]) -> list[dict[str, Any]]:
    """AbstractCompareJwks: the keys with use sig, or no use."""
    return [k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("use") in (None, "sig")]


def required_members(k: dict[str, Any]) -> str:
    """The JWK's required members (RFC 7517/7518: kty and the public key) plus kid, as a comparable string."""
    members = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"),
               "oct": ("k", "kty")}.get(str(k.get("kty")), ("kty",))
    return json.dumps({m: k.get(m) for m in members + ("kid",)}, sort_keys=True)


def fetch_server_jwks(ctx: Context) -> dict[str, Any]:
    """GetDynamicServerConfiguration, FetchServerKeys, then CheckServerKeysIsValid, ValidateJwksSequence,
    CheckForKeyIdInServerJWKs and CheckDistinctKeyIdValueInServerJWKs (check_jwks)."""
    r = requests.get(ctx.server.public + "/.well-known/openid-configuration", timeout=HTTP_TIMEOUT)
    require(r.status_code == 200, f"discovery returned HTTP {r.status_code}")
    jwks_uri = r.json().get("jwks_uri")
    require(isinstance(jwks_uri, str), "discovery has no jwks_uri")
    jr = requests.get(ctx.internal(jwks_uri), timeout=HTTP_TIMEOUT)
    require(jr.status_code == 200, f"jwks_uri returned HTTP {jr.status_code}")
    jwks = jr.json()
    check_jwks(jwks)
    return jwks


@dynamic_module("oidcc-server-rotate-keys", alone=True)
def m_rotate_keys(ctx: Context, run: Run, template: Client, variant: str) -> str | None:
    """OIDCCServerRotateKeys (OP-Rotation-OP-Sig; only the ServerMetadata variant applies): the JWKS is
    fetched and validated, the operator rotates the OP's signing keys, and the module is started by hand.
    Here the harness is the operator: it adds a new RS256 signing key to the JWK set the server signs ID
    tokens with (POST /admin/keys/hydra.openid.id-token {"alg": "RS256", "use": "sig"}, as Hydra's
    run_test.go does; the newest key signs). The module runs alone, after every other module has finished,
    so no module sees the key change under it. Then the JWKS is fetched and validated again; it must hold a
    new signing key (use sig or none): one whose required members and kid are in no original key, with a kid
    and a modulus (RSA n, EC x) no original signing key has (VerifyNewJwksHasNewSigningKey, OIDCC-10.1.1); it
    should still hold an original signing key (VerifyNewJwksStillHasOldSigningKey, a WARNING). Like the suite
    (and the python suite) it does not check that the new key now signs."""
    original = fetch_server_jwks(ctx)
    r = requests.post(f"{ctx.server.admin}/admin/keys/{ID_TOKEN_KEY_SET}", json={"alg": "RS256", "use": "sig"},
                      timeout=HTTP_TIMEOUT)
    require(r.status_code in (200, 201), f"the operator step failed: POST /admin/keys/{ID_TOKEN_KEY_SET} "
            f"returned HTTP {r.status_code}: {r.text[:200]}")
    new = fetch_server_jwks(ctx)
    orig_sig, new_sig = signing_keys(original), signing_keys(new)
    orig_req = {required_members(k) for k in orig_sig}
    only_new = [k for k in new_sig if required_members(k) not in orig_req]
    require(bool(only_new), f"No new keys with 'use':'sig' (or no 'use') found in the JWKS after the rotation "
            f"(kids before {[k.get('kid') for k in orig_sig]}, after {[k.get('kid') for k in new_sig]})")
    for k in only_new:
        require(k.get("kid") not in {o.get("kid") for o in orig_sig},
                f"One of the new keys uses the same kid as one of the original keys: {k.get('kid')}")
        field_name = {"RSA": "n", "EC": "x"}.get(str(k.get("kty")))
        require(field_name is not None, f"unknown key type {k.get('kty')!r} found (kid {k.get('kid')})")
        require(k.get(field_name) not in {o.get(field_name) for o in orig_sig},
                f"One of the new keys (kid {k.get('kid')}) uses the same {field_name} as one of the original keys")
    kept = {json.dumps(k, sort_keys=True) for k in orig_sig} & {json.dumps(k, sort_keys=True) for k in new_sig}
    if not kept:
        run.warn("None of the previous signing keys (with 'use':'sig' or no 'use') are still present; the JWK Set "
                 "SHOULD retain recently decommissioned signing keys (OIDCC-10.1.1)")
    return (f"rotated through the admin API: new signing key(s) {[k.get('kid') for k in only_new]}; "
            f"{len(kept)} of {len(orig_sig)} old signing key(s) still published")


# ---- OP-Rotation-RP-Sig

@dynamic_module("oidcc-refresh-token-rp-key-rotation", waits=JWKS_REFRESH_DELAY)
def m_refresh_rp_key_rotation(ctx: Context, run: Run, template: Client, variant: str) -> str | None:
    """OIDCCRefreshTokenRPKeyRotation (code flows, private_key_jwt): the client registers `jwks_uri` (a key
    with a kid, served by the RP receiver over https, as in oidcc-registration-jwks-uri) and the refresh_token
    grant; the request asks for scope openid offline_access with prompt=consent. After the authorization
    endpoint's checks and the code exchange (the token endpoint's checks, no userinfo), the RP rotates its key
    (GenerateRS256ClientJWKsWithKeyID: a new key with a new kid replaces the old one at jwks_uri, and signs
    from now on), waits (WaitForJWKSRefreshDelay: 60 s unless --jwks-refresh-delay says otherwise), then
    refreshes with an assertion signed by the new key: a refresh token is required
    (ExtractRefreshTokenFromTokenResponse), with allowed characters only; grant_types_supported should list
    refresh_token (a WARNING); the refresh gets RefreshTokenRequestSteps' checks (refresh_request), and its
    access token must work at userinfo (requestProtectedResource). So the OP must fetch jwks_uri again when
    it sees the unknown kid."""
    receiver = need_receiver(ctx)
    key = new_client_key()
    jwks_path = f"/client1_jwks-{generate_token(8)}"
    serve_client_jwks(receiver, jwks_path, key)
    body = with_refresh_grant(dynamic_request_for(template, "oidcc-refresh-token-rp-key-rotation", key))
    del body["jwks"]
    body["jwks_uri"] = receiver.url(jwks_path)
    since = time.time()

    def flow(dc: DynamicClient) -> str:
        client = dc.client
        scope = "openid offline_access"  # SetScopeInClientConfigurationToOpenIdOfflineAccess
        f = happy_flow(ctx, run, client, scope=scope, prompt="consent", call_userinfo=False)
        assert f.tokens is not None
        before = jwks_fetches(ctx, jwks_path, since)
        new_key = new_client_key()
        require(new_key.kid != key.kid, "the new client key has the old kid")
        serve_client_jwks(receiver, jwks_path, new_key)
        rotated = time.time()
        rt = f.tokens.body.get("refresh_token")
        require(bool(rt), "the token endpoint issued no refresh token (scope offline_access, refresh_token grant "
                "registered)")
        if "refresh_token" not in (ctx.disco.get("grant_types_supported") or []):
            run.warn("the server issued a refresh token but grant_types_supported does not list refresh_token (OIDCD-3)")
        require(bool(VSCHAR_RE.match(str(rt))), "the refresh token uses characters RFC 6749 A.17 does not allow")
        t = refresh_request(ctx, run, dataclasses.replace(client, key=new_key), f, rt, scope,
                            wait=JWKS_REFRESH_DELAY)
        protected_resource(ctx, t.body["access_token"], "the refreshed access token")
        after = jwks_fetches(ctx, jwks_path, rotated)
        require(after > 0, "the refresh succeeded without the server fetching jwks_uri after the rotation")
        return (f"refreshed with an assertion signed by the new key (kid {new_key.kid}) after {JWKS_REFRESH_DELAY:g} s; "
                f"jwks_uri fetched {before} time(s) before the rotation, {after} after")
    return with_dynamic_client(ctx, run, body, key, flow)


# ---- OP-request_uri-*

def request_uri_with_fragment(receiver: Receiver) -> tuple[str, str]:
    """CreateRandomRequestUriWithFragment: requesturi/<64 random alphanumerics> on the RP's origin, with the
    base64url SHA-256 of 64 other random alphanumerics as fragment; returns (path, full URL)."""
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    path = "/requesturi/" + "".join(secrets.choice(alnum) for _ in range(64))
    frag = base64.urlsafe_b64encode(hashlib.sha256("".join(secrets.choice(alnum) for _ in range(64)).encode())
                                    .digest()).rstrip(b"=").decode()
    return path, receiver.url(path) + "#" + frag


def request_uri_module(signed: bool) -> ModuleFn:
    """AbstractOIDCCRequestUriServerTest: discovery's request_uri_parameter_supported must be true (absent
    counts as true; CheckDiscEndpointRequestUriParameterSupported, OIDCD-3); the client registers
    request_uris with one random https URL with a fragment (CreateRandomRequestUriWithFragment,
    AddRequestUriToDynamicRegistrationRequest), which the RP receiver serves as application/jwt
    (handleRequestUriRequest). The request object holds the whole authorization request
    (ConvertAuthorizationEndpointRequestToRequestObject); the authorization request carries request_uri plus
    response_type, client_id, scope and redirect_uri (BuildRequestObjectByReferenceRedirectToAuthorizationEndpoint;
    state and nonce only inside). The whole AbstractOIDCCServerTest flow must succeed, with the state and nonce
    of the request object."""
    def fn(ctx: Context, run: Run, template: Client, variant: str) -> str | None:
        if ctx.disco.get("request_uri_parameter_supported", True) is not True:
            raise Fail(f"request_uri_parameter_supported is {ctx.disco.get('request_uri_parameter_supported')!r}, "
                       "must be true for a dynamic OP (OIDCD-3)")
        algs = ctx.disco.get("request_object_signing_alg_values_supported")
        if signed:  # CheckDiscEndpointRequestObjectSigningAlgValuesSupportedContainsRS256 (a FAILURE)
            require(isinstance(algs, list) and "RS256" in algs,
                    f"request_object_signing_alg_values_supported ({algs!r}) does not list RS256 (OIDCD-3)")
        elif isinstance(algs, list) and "none" not in algs:  # skipTestIfNoneUnsupported
            raise Skip("'none' is not listed in request_object_signing_alg_values_supported - assuming it is not "
                       "supported")
        receiver = need_receiver(ctx)
        path, request_uri = request_uri_with_fragment(receiver)
        key = new_client_key()
        extra: dict[str, Any] = {"request_uris": [request_uri]}
        if signed:
            extra["request_object_signing_alg"] = "RS256"  # AddRequestObjectSigningAlgRS256ToDynamicRegistrationRequest
        name = "oidcc-request-uri-signed-rs256" if signed else "oidcc-request-uri-unsigned"
        body = dynamic_request_for(template, name, key, extra)

        def flow(dc: DynamicClient) -> str:
            client = dc.client
            inner = new_auth_params(ctx, client)
            if signed:  # AddAudToRequestObject, AddIssToRequestObject, SignRequestObject (alg RS256 and kid)
                obj = sign_client_assertion(client, {**inner, "aud": ctx.issuer, "iss": client.client_id})
            else:  # SerializeRequestObjectWithNullAlgorithm
                obj = unsigned_request_object(inner)
            receiver.documents[path] = ("application/jwt", obj.encode())
            since = time.time()
            outer = {"request_uri": request_uri, "response_type": inner["response_type"],
                     "client_id": client.client_id, "scope": inner["scope"], "redirect_uri": inner["redirect_uri"]}
            res = authorize(ctx, Browser(ctx), outer)
            resp = check_callback_success(ctx, run, res, inner)
            finish_flow(ctx, run, client, inner, res, resp)
            fetched = jwks_fetches(ctx, path, since)
            return (f"{'RS256-signed' if signed else 'unsigned'} request object fetched from request_uri "
                    f"({fetched} fetch(es)) and processed")
        return with_dynamic_client(ctx, run, body, key, flow)
    return fn


# OIDCCRequestUriUnsigned: the request object is unsigned ({"alg": "none"}); skipped if
# request_object_signing_alg_values_supported is present without none.
dynamic_module("oidcc-request-uri-unsigned")(request_uri_module(False))
# OIDCCRequestUriSignedRS256: the client registers request_object_signing_alg RS256; discovery must list RS256 in
# request_object_signing_alg_values_supported; the object gets aud (the issuer) and iss (the client_id) and is
# signed RS256 with the client's key (header alg and kid).
dynamic_module("oidcc-request-uri-signed-rs256")(request_uri_module(True))


# OIDCCEnsureRequestObjectWithRedirectUri with a dynamically registered client: m_request_object_redirect.
dynamic_module("oidcc-ensure-request-object-with-redirect-uri")(
    with_registered(m_request_object_redirect, "oidcc-ensure-request-object-with-redirect-uri"))


@dynamic_module("oidcc-refresh-token", waits=1.1)
def m_refresh_dynamic(ctx: Context, run: Run, template: Client, variant: str) -> str | None:
    """OIDCCRefreshToken (AbstractOIDCCMultipleClient; code flows) with two dynamically registered clients,
    each with its own key and the refresh_token grant (AddRefreshTokenGrantTypeToDynamicRegistrationRequest);
    both are unregistered at the end. The checks are refresh_flow's."""
    k1, k2 = new_client_key(), new_client_key()
    regs = [(with_refresh_grant(dynamic_request_for(template, "oidcc-refresh-token", k1)), k1),
            (with_refresh_grant(dynamic_request_for(template, "oidcc-refresh-token-client2", k2)), k2)]
    return with_dynamic_clients(ctx, run, regs, lambda dcs: refresh_flow(ctx, run, dcs[0].client, dcs[1].client))


# OIDCCEnsureClientAssertionWithIssAudSucceeds with a dynamically registered private_key_jwt client.
dynamic_module("oidcc-ensure-client-assertion-with-iss-aud-succeeds")(
    with_registered(m_client_assertion_iss_aud, "oidcc-ensure-client-assertion-with-iss-aud-succeeds"))


# --------------------------------------------------------------------------- config plan

@standalone_module("oidcc-discovery-endpoint-verification", "config")
def m_discovery(ctx: Context, run: Run) -> str | None:
    """OIDCCDiscoveryEndpointVerification with client_registration=static_client (the Config plan)."""
    return discovery_checks(ctx, run, dynamic=False)


def discovery_checks(ctx: Context, run: Run, dynamic: bool) -> str | None:
    """OIDCCDiscoveryEndpointVerification; `dynamic` selects the dynamic_client rules for response types
    (OIDCCCheckDiscEndpointResponseTypesSupportedDynamic) and grant types
    (OIDCCCheckDiscEndpointGrantTypesSupportedDynamic)."""
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
    # Response types (static client: at least one OIDC response type; dynamic: all of code, id_token and
    # token id_token, compared as sets of words)
    oidc_rts = {"code", "id_token", "id_token token", "code id_token", "code token", "code id_token token"}
    rts = d.get("response_types_supported")
    require(isinstance(rts, list), "response_types_supported missing")
    listed = {" ".join(sorted(str(rt).split())) for rt in rts}
    if dynamic:
        missing = [rt for rt in ("code", "id_token", "token id_token") if " ".join(sorted(rt.split())) not in listed]
        require(not missing, f"The server does not support all of the mandatory to implement response_types for "
                f"dynamic OpenID Providers: {missing} missing from response_types_supported (OIDCD-3, OIDCC-15.2)")
    else:
        require(bool(listed & {" ".join(sorted(x.split())) for x in oidc_rts}),
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
    # Grant types (static client): if present, a non-empty array; dynamic: authorization_code and implicit
    # (absent counts as both)
    if "grant_types_supported" in d:
        require(isinstance(d["grant_types_supported"], list) and d["grant_types_supported"],
                "grant_types_supported is empty")
        if dynamic:
            missing = [g for g in ("authorization_code", "implicit") if g not in d["grant_types_supported"]]
            require(not missing, f"Servers certifying for the 'dynamic' certification profile are required to "
                    f"support the grant types 'authorization_code' and 'implicit': {missing} missing")
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


# --------------------------------------------------------------------------- logout plans
#
# oidcc-rp-initiated-logout-certification-test-plan (11 modules),
# oidcc-frontchannel-rp-initiated-logout-certification-test-plan (2) and
# oidcc-backchannel-rp-initiated-logout-certification-test-plan (2): discovery, client_secret_basic,
# response_type=code, static clients of their own (Context.setup_logout).

LOGOUT_VARIANTS = ("client_secret_basic",)
REDIRECT_STATUSES = (301, 302, 303, 307, 308)


def end_session_state() -> str:
    """CreateRandomEndSessionState: RFC6749AppendixASyntaxUtils.generateVSChar(50, 10, 30), i.e. 50
    letters, 10 digits and 30 VSCHAR punctuation characters (90 in all), with '+' and ' ' made '~'."""
    rnd = secrets.SystemRandom()
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    punct = "".join(chr(c) for lo, hi in ((0x20, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E))
                    for c in range(lo, hi + 1))
    state = ("".join(rnd.choice(letters) for _ in range(50)) + "".join(rnd.choice("0123456789") for _ in range(10))
             + "".join(rnd.choice(punct) for _ in range(30)))
    return state.replace("+", "~").replace(" ", "~")


def logout_guard(ctx: Context) -> None:
    setup_guard(ctx)
    if ctx.logout_setup_error:
        raise Fail(ctx.logout_setup_error)
    require(isinstance(ctx.disco.get("end_session_endpoint"), str), "discovery has no end_session_endpoint")


@dataclass
class LogoutResult:
    kind: str = ""  # rp (the browser reached the RP), page (an OP page), foreign
    url: str = ""
    params: dict[str, str] = field(default_factory=dict)
    status: int = 0
    body: str = ""
    hops: list[Hop] = field(default_factory=list)
    logout_requests: list[dict[str, Any]] = field(default_factory=list)  # admin logout requests seen
    frames: list[tuple[str, str]] = field(default_factory=list)  # iframe URLs the browser loaded, and how


def describe_hops(hops: list[Hop]) -> str:
    out = []
    for h in hops:
        u = urllib.parse.urlsplit(h.url)
        out.append(f"{h.kind}({h.status}) {u.scheme}://{u.netloc}{u.path}")
    return " -> ".join(out)


class ForwardingParser(HTMLParser):
    """What a browser would do with a page by itself: load iframes, follow a meta refresh, or (as
    the OP's front-channel page asks of a browser without script) go to body[data-next]."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.iframes: list[str] = []
        self.data_next: str | None = None
        self.refresh: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "iframe" and a.get("src"):
            self.iframes.append(a["src"])
        elif tag == "body" and a.get("data-next"):
            self.data_next = a["data-next"]
        elif tag == "meta" and a.get("http-equiv", "").lower() == "refresh":
            m = re.match(r"\s*\d+\s*(?:[;,]\s*(?:url\s*=\s*)?['\"]?([^'\"]*)['\"]?)?", a.get("content", ""), re.I)
            if m and m.group(1):
                self.refresh = m.group(1).strip()


def is_logout_ui(url: str) -> bool:
    return url.startswith(LOGOUT_URL + "?") or bool(query_params(url).get("logout_challenge"))


def on_rp(ctx: Context, url: str) -> bool:
    return url.startswith(RP_ORIGIN) or (ctx.receiver is not None and ctx.receiver.owns(url))


def load_frame(ctx: Context, browser: Browser, src: str) -> str:
    """The browser loads an iframe: the RP's receiver over verified TLS, the OP with the cookie jar."""
    if ctx.receiver is not None and ctx.receiver.owns(src):
        r = requests.get(src, verify=ctx.receiver.ca_file, timeout=HTTP_TIMEOUT, allow_redirects=False)
        return f"HTTP {r.status_code}"
    if ctx.internal(src) != src:
        return f"HTTP {browser.request('GET', src).status_code}"
    return "not loaded (unknown host)"


def end_session(ctx: Context, browser: Browser, params: dict[str, str] | None) -> LogoutResult:
    """Sends the browser to end_session_endpoint and follows it as a browser would, playing the
    logout app (admin accept, as a user who confirms), until it leaves the OP or stops at an OP page."""
    endpoint = ctx.disco["end_session_endpoint"]
    url = endpoint + ("?" + urllib.parse.urlencode(params) if params else "")
    res = LogoutResult()
    current = url
    resp = browser.request("GET", current)
    res.hops.append(Hop("request", current, resp.status_code))
    for _ in range(30):
        if resp.status_code in REDIRECT_STATUSES:
            loc = urllib.parse.urljoin(current, resp.headers.get("Location", ""))
            via = resp.status_code
        else:
            page = ForwardingParser()
            try:
                page.feed(resp.text)
            except Exception:  # not HTML: nothing a browser would follow
                pass
            nxt = page.data_next or page.refresh
            if resp.status_code != 200 or not (page.iframes or nxt):
                res.kind, res.url, res.status, res.body = "page", current, resp.status_code, resp.text
                res.params = query_params(current)
                return res
            for src in page.iframes:
                src = urllib.parse.urljoin(current, src)
                res.frames.append((src, load_frame(ctx, browser, src)))
                res.hops.append(Hop("iframe", src, 200))
            if not nxt:
                res.kind, res.url, res.status, res.body = "page", current, resp.status_code, resp.text
                res.params = query_params(current)
                return res
            loc = urllib.parse.urljoin(current, nxt)
            via = 200  # the page forwarded the browser
        if on_rp(ctx, loc):
            res.hops.append(Hop("rp", loc, via))
            res.kind, res.url, res.params = "rp", loc, query_params(loc)
            return res
        if is_logout_ui(loc):
            res.hops.append(Hop("logout", loc, via))
            challenge = query_params(loc).get("logout_challenge", "")
            lr = requests.get(ctx.server.admin + "/admin/oauth2/auth/requests/logout",
                              params={"logout_challenge": challenge}, timeout=HTTP_TIMEOUT)
            require(lr.status_code == 200, f"GET logout request returned HTTP {lr.status_code}: {lr.text[:200]}")
            res.logout_requests.append(lr.json())
            ar = requests.put(ctx.server.admin + "/admin/oauth2/auth/requests/logout/accept",
                              params={"logout_challenge": challenge}, timeout=HTTP_TIMEOUT)
            require(ar.status_code == 200, f"accept logout returned HTTP {ar.status_code}: {ar.text[:200]}")
            current = ar.json()["redirect_to"]
            resp = browser.request("GET", current)
            res.hops.append(Hop("op", current, resp.status_code))
            continue
        if ctx.internal(loc) != loc:  # the OP itself
            current = loc
            resp = browser.request("GET", current)
            res.hops.append(Hop("op", current, resp.status_code))
            continue
        res.hops.append(Hop("foreign", loc, via))
        res.kind, res.url, res.params = "foreign", loc, query_params(loc)
        return res
    raise Fail("more than 30 redirects in the logout chain")


@dataclass
class LoggedIn:
    browser: Browser
    client: Client
    flow: Flow

    @property
    def id_token(self) -> str:
        return self.flow.id_token

    @property
    def claims(self) -> dict[str, Any]:
        return self.flow.id_claims


def logout_login(ctx: Context, run: Run, which: str) -> LoggedIn:
    """Step 1: a normal login (all the §1 checks), with a 128-character state as the suite's
    requested_state_length."""
    logout_guard(ctx)
    client = ctx.logout_clients[which]
    browser = Browser(ctx)
    params = new_auth_params(ctx, client)
    params["state"] = secrets.token_hex(64)
    f = happy_flow(ctx, run, client, browser, params=params)
    return LoggedIn(browser, client, f)


def standard_end_session(li: LoggedIn, state: str | None) -> dict[str, str]:
    """CreateEndSessionEndpointRequest: id_token_hint, post_logout_redirect_uri, state."""
    p = {"id_token_hint": li.id_token, "post_logout_redirect_uri": POST_LOGOUT_REDIRECT_URI}
    if state is not None:
        p["state"] = state
    return p


def check_post_logout_redirect(run: Run, res: LogoutResult, state: str | None) -> None:
    """The RP's /post_logout_redirect was called: CheckPostLogoutState (or CheckNoPostLogoutState)
    and CheckForUnexpectedParametersInPostLogoutRedirect (a warning)."""
    if res.kind != "rp":
        where = f"{res.kind} {res.url[:120]}" + (f" HTTP {res.status}" if res.status else "")
        raise Fail(f"the browser was not sent to the post_logout_redirect_uri (ended at {where}; "
                   f"chain: {describe_hops(res.hops)})")
    base = urllib.parse.urlsplit(res.url)._replace(query="", fragment="").geturl()
    require(base == POST_LOGOUT_REDIRECT_URI,
            f"the OP sent the browser to {res.url[:120]}, not the registered post_logout_redirect_uri")
    q = res.params
    if state is None:
        require("state" not in q, f"state {q.get('state')!r} passed to the post logout redirect uri although "
                "the end_session request had none")
    else:
        require("state" in q, "state not present in query params passed to post logout redirect uri")
        require(q["state"] == state, f"state in query params passed to post logout redirect uri does not match "
                f"(sent {state!r}, got {q['state']!r})")
    extra = sorted(set(q) - {"state"})
    if extra:
        run.warn(f"post_logout_redirect includes unexpected parameters in the url query: {extra}")


def expect_logged_out(ctx: Context, run: Run, li: LoggedIn) -> str:
    """Step 4: a prompt=none authorization in the same browser must fail with a login_required-class
    error (generic error-response checks plus CheckErrorFromAuthorizationEndpointIsOneThatRequiredAUserInterface)."""
    params = new_auth_params(ctx, li.client, prompt="none")
    params["state"] = secrets.token_hex(64)
    res = authorize(ctx, li.browser, params)
    require(not any(not l.get("skip") for l in res.logins), "the login UI was shown for prompt=none after logout")
    require(not res.logins, "the session was not ended: after logout, prompt=none produced a login challenge "
            "with skip=true (the login session is still remembered)")
    require(res.kind == "callback", f"the prompt=none authorization after logout did not return to the client "
            f"(ended at {res.kind} {res.url[:100]})")
    if "error" not in res.params and res.params.get("code"):
        raise Fail("the session was not ended: the prompt=none authorization after logout returned a code")
    err = check_error_redirect(ctx, run, res, params)
    require(err in LOGIN_REQUIRED_CLASS, f"prompt=none after logout: 'error' field has an unexpected value "
            f"{err!r} (permitted: {', '.join(LOGIN_REQUIRED_CLASS)})")
    return err


def logout_app_note(res: LogoutResult) -> str:
    n = len(res.logout_requests)
    return f"logout app accepted {n} challenge{'s' if n != 1 else ''}" if n else "no logout challenge"


def no_redirect_verdict(ctx: Context, res: LogoutResult) -> str:
    """Screenshot proxy for 'the OP must not redirect back and must either show an error screen or
    confirm with the user': no hop ever reached the RP (a Location or a page that forwards), and
    the chain ends at an OP error page. A confirmation (the logout challenge) is answered as a user
    who confirms would be, and the OP must still not send the browser back to the RP."""
    for hop in res.hops:
        if hop.kind == "rp":
            how = "forwarded the browser (page)" if hop.status == 200 else f"redirected (HTTP {hop.status})"
            after = " after the logout app accepted" if res.logout_requests else ""
            raise Fail(f"OP {how} to the RP{after}: {hop.url[:120]} (chain: {describe_hops(res.hops)})")
    require(res.kind == "page", f"chain ended at {res.kind} {res.url[:100]}, not an OP page "
            f"(chain: {describe_hops(res.hops)})")
    require(res.status == 200 or 400 <= res.status < 500, f"the OP page answered HTTP {res.status}")
    err = res.params.get("error")
    path = urllib.parse.urlsplit(res.url).path
    if res.logout_requests:
        return (f"the OP asked for confirmation (observed: {logout_app_note(res)}, then HTTP {res.status} at {path}"
                + (f" with error={err}" if err else "") + ", no redirect to the RP)")
    require(bool(err) or 400 <= res.status < 500,
            f"the chain ended at an OP page that is neither an error page nor a confirmation (HTTP {res.status} "
            f"at {path}; chain: {describe_hops(res.hops)})")
    return f"error page shown (observed: HTTP {res.status} at {path}" + (f" with error={err})" if err else ")")


def logged_out_page_verdict(ctx: Context, res: LogoutResult) -> str:
    """Screenshot proxy for 'the OP must log the user out, a screenshot of the "you are logged out"
    screen': the RP is never reached, and the chain ends at an OP page that is not the error page."""
    for hop in res.hops:
        if hop.kind == "rp":
            raise Fail(f"OP has incorrectly called the RP ({hop.url[:120]}) although no post_logout_redirect_uri "
                       f"was in the request (chain: {describe_hops(res.hops)})")
    require(res.kind == "page", f"chain ended at {res.kind} {res.url[:100]}, not an OP page "
            f"(chain: {describe_hops(res.hops)})")
    require(res.status == 200, f"the logged-out page answered HTTP {res.status}")
    err = res.params.get("error")
    require(not err, f"the chain ended at the error page (error={err}: {res.params.get('error_description', '')}) "
            "instead of a logged-out page")
    path = urllib.parse.urlsplit(res.url).path
    return f"logged-out page shown (observed: HTTP 200 at {path}; {logout_app_note(res)})"


# ---- oidcc-rp-initiated-logout-certification-test-plan

def check_https_uri(d: dict[str, Any], key: str) -> None:
    """AbstractJsonUriIsValidAndHttps."""
    v = d.get(key)
    require(v is not None, f"{key} is missing from discovery")
    require(isinstance(v, str), f"{key} is not a string")
    u = urllib.parse.urlsplit(v)
    require(u.scheme == "https" and bool(u.hostname), f"{key} is not a valid https URL: {v}")


def check_true(d: dict[str, Any], key: str) -> None:
    """AbstractValidateJsonBoolean with required value true (absent counts as false)."""
    v = d.get(key, False)
    require(isinstance(v, bool), f"{key} is not a JSON boolean: {v!r}")
    require(v is True, f"{key} is {json.dumps(v)}, must be true")


def logout_discovery(ctx: Context, run: Run, flags: tuple[str, ...], status_and_type: bool) -> str | None:
    if ctx.setup_error and "discovery" in ctx.setup_error:
        raise Fail(ctx.setup_error)
    if status_and_type:  # EnsureDiscoveryEndpointResponseStatusCodeIs200, CheckDiscoveryEndpointReturnedJsonContentType
        r = ctx.disco_response
        require(r.status_code == 200, f"discovery returned HTTP {r.status_code}")
        require(r.headers.get("Content-Type", "").split(";")[0].strip().lower() == "application/json",
                f"discovery Content-Type is {r.headers.get('Content-Type')!r}")
    d = ctx.disco
    for k in d:  # CheckDiscEndpointAllEndpointsAreHttps
        if k.endswith("_endpoint"):
            check_https_uri(d, k)
    for k in flags:
        check_true(d, k)
    check_https_uri(d, "end_session_endpoint")  # CheckDiscEndSessionEndpoint
    return f"end_session_endpoint={d['end_session_endpoint']}" + "".join(f", {k}=true" for k in flags)


@standalone_module("oidcc-rp-initiated-logout-discovery-endpoint-verification", "logout")
def m_rp_logout_discovery(ctx: Context, run: Run) -> str | None:
    return logout_discovery(ctx, run, (), status_and_type=False)


@module("oidcc-rp-initiated-logout", variants=LOGOUT_VARIANTS)
def m_rp_logout(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    li = logout_login(ctx, run, "rp")
    state = end_session_state()
    res = end_session(ctx, li.browser, standard_end_session(li, state))
    check_post_logout_redirect(run, res, state)
    err = expect_logged_out(ctx, run, li)
    return (f"redirected to post_logout_redirect_uri with the {len(state)}-character state "
            f"({logout_app_note(res)}); prompt=none then gave error={err}")


def no_redirect_module(customise: Callable[[Context, LoggedIn, dict[str, str]], None]) -> ModuleFn:
    """bad-post-logout-redirect-uri, modified-id-token-hint, bad-id-token-hint, no-id-token-hint,
    query-added-to-post-logout-redirect-uri: the OP must not redirect back."""
    def fn(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
        li = logout_login(ctx, run, "rp")
        params = standard_end_session(li, end_session_state())
        customise(ctx, li, params)
        res = end_session(ctx, li.browser, params)
        return no_redirect_verdict(ctx, res)
    return fn


def _bad_post_logout_redirect_uri(ctx: Context, li: LoggedIn, p: dict[str, str]) -> None:
    p["post_logout_redirect_uri"] = BAD_POST_LOGOUT_REDIRECT_URI  # AddBadPostLogoutRedirectUriToEndSessionEndpointRequest


def _alg_none_hint(ctx: Context, li: LoggedIn, p: dict[str, str]) -> None:
    # ChangeIdTokenToAlgNone: header {"alg": "none"}, the real payload, an empty signature.
    header = base64.urlsafe_b64encode(b'{"alg": "none"}').rstrip(b"=").decode()
    p["id_token_hint"] = f"{header}.{li.id_token.split('.')[1]}."


def _foreign_hint(ctx: Context, li: LoggedIn, p: dict[str, str]) -> None:
    # GenerateFakeIdTokenClaims + SignFakeIdToken: an id_token "issued" by the client (iss and aud
    # deliberately the wrong way round), signed with a key of the harness, not the OP's.
    now = int(time.time())
    claims = {"iss": li.client.client_id, "sub": "SubjectID", "aud": ctx.issuer, "nonce": "flibble",
              "iat": now, "exp": now + 300}
    key = ctx.harness_key()
    p["id_token_hint"] = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def _no_id_token_hint(ctx: Context, li: LoggedIn, p: dict[str, str]) -> None:
    del p["id_token_hint"]  # RemoveIdTokenHintFromEndSessionEndpointRequest


def _query_added(ctx: Context, li: LoggedIn, p: dict[str, str]) -> None:
    p["post_logout_redirect_uri"] += "?foo=bar"  # AddPostLogoutRedirectUriWithQueryAddedToEndSessionEndpointRequest


module("oidcc-rp-initiated-logout-bad-post-logout-redirect-uri", variants=LOGOUT_VARIANTS)(
    no_redirect_module(_bad_post_logout_redirect_uri))
module("oidcc-rp-initiated-logout-modified-id-token-hint", variants=LOGOUT_VARIANTS)(
    no_redirect_module(_alg_none_hint))
module("oidcc-rp-initiated-logout-bad-id-token-hint", variants=LOGOUT_VARIANTS)(
    no_redirect_module(_foreign_hint))
module("oidcc-rp-initiated-logout-no-id-token-hint", variants=LOGOUT_VARIANTS)(
    no_redirect_module(_no_id_token_hint))


def logged_out_page_module(keep: tuple[str, ...], must_end_session: bool) -> ModuleFn:
    """no-params, no-post-logout-redirect-uri, only-state: the OP logs the user out and shows a
    logged-out page, never the RP. The harness completes the logout flow it is shown (accepts
    the logout challenge), then tries prompt=none: required to fail where the module says so
    (no-post-logout-redirect-uri), otherwise an unended session is a warning."""
    def fn(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
        li = logout_login(ctx, run, "rp")
        full = standard_end_session(li, end_session_state())
        params = {k: v for k, v in full.items() if k in keep}
        res = end_session(ctx, li.browser, params or None)
        verdict = logged_out_page_verdict(ctx, res)
        try:
            err = expect_logged_out(ctx, run, li)
            return f"{verdict}; prompt=none then gave error={err}"
        except Fail as e:
            if must_end_session:
                raise Fail(f"{verdict}, but {e}")
            run.warn(f"the OP showed a logged-out page but {e}")
            return verdict
    return fn


module("oidcc-rp-initiated-logout-no-params", variants=LOGOUT_VARIANTS)(
    logged_out_page_module((), must_end_session=False))
module("oidcc-rp-initiated-logout-no-post-logout-redirect-uri", variants=LOGOUT_VARIANTS)(
    logged_out_page_module(("id_token_hint", "state"), must_end_session=True))
module("oidcc-rp-initiated-logout-only-state", variants=LOGOUT_VARIANTS)(
    logged_out_page_module(("state",), must_end_session=False))


@module("oidcc-rp-initiated-logout-no-state", variants=LOGOUT_VARIANTS)
def m_rp_logout_no_state(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    li = logout_login(ctx, run, "rp")
    res = end_session(ctx, li.browser, standard_end_session(li, None))  # RemoveStateFromEndSessionEndpointRequest
    check_post_logout_redirect(run, res, None)
    err = expect_logged_out(ctx, run, li)
    return f"redirected to post_logout_redirect_uri without state ({logout_app_note(res)}); prompt=none then gave error={err}"


module("oidcc-rp-initiated-logout-query-added-to-post-logout-redirect-uri", variants=LOGOUT_VARIANTS)(
    no_redirect_module(_query_added))


# ---- oidcc-frontchannel-rp-initiated-logout-certification-test-plan

@standalone_module("oidcc-frontchannel-logout-discovery-endpoint-verification", "logout")
def m_frontchannel_discovery(ctx: Context, run: Run) -> str | None:
    return logout_discovery(ctx, run, ("frontchannel_logout_supported", "frontchannel_logout_session_supported"),
                            status_and_type=True)


@module("oidcc-frontchannel-rp-initiated-logout", variants=LOGOUT_VARIANTS)
def m_frontchannel_logout(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    li = logout_login(ctx, run, "frontchannel")
    assert ctx.receiver is not None
    state = end_session_state()
    t0 = time.time()
    res = end_session(ctx, li.browser, standard_end_session(li, state))
    got = ctx.receiver.wait("/frontchannel_logout", t0, 0)
    if not got:
        loaded = ", ".join(f"{u[:100]} ({how})" for u, how in res.frames) or "none"
        raise Fail(f"the browser never loaded the frontchannel_logout_uri during logout (iframes loaded: {loaded}; "
                   f"chain: {describe_hops(res.hops)})")
    # "Verify frontchannel logout request"
    sid = li.claims.get("sid")
    rec = next((r for r in got if query_params("?" + r.query).get("sid") == sid), got[0])
    q = query_params("?" + rec.query)
    extra = sorted(set(q) - {"iss", "sid"})
    if extra:  # CheckForUnexpectedParametersInFrontchannelLogoutRequest
        run.warn(f"frontchannel_logout_request includes unexpected parameters: {extra}")
    require(bool(q.get("iss")), "'iss' missing from frontchannel logout request")  # ValidateFrontchannelLogoutIss
    require(q["iss"] == ctx.issuer, f"frontchannel logout request: issuer mismatch (expected {ctx.issuer!r}, "
            f"got {q['iss']!r})")
    require(bool(q.get("sid")), "'sid' missing from frontchannel logout request")  # CheckIdTokenSidMatches…
    require(sid is not None and q["sid"] == sid, f"the id_token and the frontchannel logout request contain "
            f"different sid claims (id_token {sid!r}, request {q['sid']!r})")
    # "Verify frontchannel post logout redirect"
    check_post_logout_redirect(run, res, state)
    err = expect_logged_out(ctx, run, li)
    return (f"frontchannel_logout_uri loaded with iss and sid, then redirected with state ({logout_app_note(res)}); "
            f"prompt=none then gave error={err}")


# ---- oidcc-backchannel-rp-initiated-logout-certification-test-plan

@standalone_module("oidcc-backchannel-logout-discovery-endpoint-verification", "logout")
def m_backchannel_discovery(ctx: Context, run: Run) -> str | None:
    return logout_discovery(ctx, run, ("backchannel_logout_supported", "backchannel_logout_session_supported"),
                            status_and_type=False)


STRONG_TLS12 = re.compile(r"^(ECDHE|DHE)-.*(GCM|CHACHA20)")


def check_backchannel_request(ctx: Context, run: Run, li: LoggedIn, rec: Received) -> dict[str, Any]:
    """ "Verify backchannel logout request": the form POST, the logout token's signature (joserfc,
    the keys of jwks_uri) and claims."""
    # EnsureIncomingTls12WithSecureCipherOrTls13 (a warning only)
    if not (rec.tls_version == "TLSv1.3" or (rec.tls_version == "TLSv1.2" and STRONG_TLS12.match(rec.cipher or ""))):
        run.warn(f"back-channel request used {rec.tls_version} {rec.cipher}, not TLS 1.3 or TLS 1.2 with a strong cipher")
    require(rec.method == "POST", f"the back-channel logout request is {rec.method}, not POST")
    ctype = rec.headers.get("Content-Type", "").split(";")[0].strip().lower()
    require(ctype == "application/x-www-form-urlencoded",
            f"the back-channel logout request's Content-Type is {rec.headers.get('Content-Type')!r}")
    try:
        form = urllib.parse.parse_qs(rec.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise Fail("the back-channel logout request body is not UTF-8")
    # ExtractLogoutTokenFromBackchannelLogoutRequest
    require(bool(form.get("logout_token")), "the back-channel logout request has no logout_token form parameter")
    token = form["logout_token"][0]
    extra = sorted(set(form) - {"logout_token"})
    if extra:  # CheckForUnexpectedParametersInBackchannelLogoutRequest
        run.warn(f"backchannel_logout_request includes unexpected parameters: {extra}")
    require(token.count(".") == 2, "logout_token is not a compact JWS")
    # ValidateLogoutTokenSignature
    try:
        tok = jwt.decode(token, ctx.keyset, algorithms=["RS256", "RS384", "RS512", "PS256", "ES256"])
    except (JoseError, ValueError) as e:
        raise Fail(f"logout_token signature does not verify against jwks_uri: {e!r}")
    c = tok.claims
    now = time.time()
    # ValidateLogoutTokenClaims
    require(c.get("iss") == ctx.issuer, f"logout_token iss {c.get('iss')!r} != issuer {ctx.issuer!r}")
    aud = c.get("aud")
    cid = li.client.client_id
    require(aud == cid or (isinstance(aud, list) and cid in aud), f"logout_token aud {aud!r} does not contain the client_id")
    iat = c.get("iat")
    require(isinstance(iat, (int, float)) and not isinstance(iat, bool), "logout_token has no numeric iat")
    require(iat <= now + CLOCK_SKEW, "logout_token was issued in the future")
    require(iat >= now - 86400 - CLOCK_SKEW, "logout_token iat is more than a day old")
    require(isinstance(c.get("jti"), str) and c["jti"] != "", "logout_token has no jti")
    events = c.get("events")
    require(isinstance(events, dict), "logout_token 'events' claim is not a JSON object")
    require(len(events) == 1, f"logout_token 'events' object does not contain exactly 1 entry: {events}")
    require(isinstance(events.get(BACKCHANNEL_EVENT), dict), f"{BACKCHANNEL_EVENT} is not an object in 'events'")
    require(events[BACKCHANNEL_EVENT] == {}, f"{BACKCHANNEL_EVENT} is not an empty object: {events}")
    # CheckIdTokenSubMatchesLogoutToken / CheckIdTokenSidMatchesLogoutToken (only if present)
    if "sub" in c:
        require(c["sub"] == li.claims.get("sub"), f"logout_token sub {c['sub']!r} != id_token sub {li.claims.get('sub')!r}")
    if "sid" in c:
        require(c["sid"] == li.claims.get("sid"),
                f"logout_token sid {c['sid']!r} != id_token sid {li.claims.get('sid')!r}")
    require("nonce" not in c, "logout_token carries a nonce")  # CheckLogoutTokenNoNonce
    require("sub" in c or "sid" in c, "logout_token has neither sub nor sid")  # CheckLogoutTokenHasSubOrSid
    return c


@module("oidcc-backchannel-rp-initiated-logout", variants=LOGOUT_VARIANTS)
def m_backchannel_logout(ctx: Context, run: Run, client: Client, variant: str) -> str | None:
    li = logout_login(ctx, run, "backchannel")
    assert ctx.receiver is not None
    state = end_session_state()
    t0 = time.time()
    res = end_session(ctx, li.browser, standard_end_session(li, state))
    got = ctx.receiver.wait("/backchannel_logout", t0, BACKCHANNEL_WAIT)
    if not got:
        with ctx.receiver.cond:
            errors = list(ctx.receiver.errors)
        server_said = [l.strip() for l in ctx.server.tail().splitlines() if "back-channel" in l][-2:]
        raise Fail(f"no back-channel logout request reached backchannel_logout_uri within {BACKCHANNEL_WAIT} s"
                   + (f"; receiver errors: {errors[-2:]}" if errors else "")
                   + (f"; server log: {server_said}" if server_said else "")
                   + f" (chain: {describe_hops(res.hops)})")
    sid = li.claims.get("sid")

    def token_sid(r: Received) -> Any:
        try:
            tok = urllib.parse.parse_qs(r.body.decode())["logout_token"][0]
            return json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "==")).get("sid")
        except Exception:
            return None
    rec = next((r for r in got if token_sid(r) == sid), got[0])
    c = check_backchannel_request(ctx, run, li, rec)
    # "Verify frontchannel post logout redirect"
    check_post_logout_redirect(run, res, state)
    err = expect_logged_out(ctx, run, li)
    carried = "+".join(k for k in ("sub", "sid") if k in c)
    return (f"logout_token POSTed over {rec.tls_version} (verified, carries {carried}), then redirected with state "
            f"({logout_app_note(res)}); prompt=none then gave error={err}")


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


resolve_variants()

CONFIG_PLAN = "oidcc-config-certification-test-plan"
LOGOUT_PLANS = {"frontchannel": "oidcc-frontchannel-rp-initiated-logout-certification-test-plan",
                "backchannel": "oidcc-backchannel-rp-initiated-logout-certification-test-plan",
                "rp": "oidcc-rp-initiated-logout-certification-test-plan"}
PLAN_ORDER = list(dict.fromkeys([PLAN_VARIANTS[0].plan, CONFIG_PLAN, LOGOUT_PLANS["rp"], LOGOUT_PLANS["frontchannel"],
                                 LOGOUT_PLANS["backchannel"]] + [pv.plan for pv in PLAN_VARIANTS] + [DYNAMIC_PLAN,
                                                                                                      TEST_PLAN]))
# --variant takes a label, or the plan part of one ("implicit" for "implicit id_token" and "implicit id_token token").
VARIANT_CHOICES = sorted({pv.label for pv in PLAN_VARIANTS} | {pv.label.split()[0] for pv in PLAN_VARIANTS})


def variant_selected(label: str, wanted: str) -> bool:
    return label == wanted or label.startswith(wanted + " ")


def plan_of(m: Module, label: str) -> str:
    """The suite's plan a run belongs to, for the per-plan counts."""
    if m.plan is not None:
        return m.plan
    if "logout" in m.name:
        return next((plan for key, plan in LOGOUT_PLANS.items() if key in m.name), LOGOUT_PLANS["rp"])
    if label == "config":
        return CONFIG_PLAN
    return PLAN_BY_LABEL[label].plan


def main() -> int:
    global JWKS_REFRESH_DELAY
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary", nargs="?", default=os.environ.get("HYDRA_BIN", os.path.join(REPO, "target/debug/hydra")))
    ap.add_argument("--only", help="regular expression; run only modules whose name matches")
    ap.add_argument("--variant", choices=VARIANT_CHOICES, metavar="VARIANT",
                    help="run only this plan variant: a label (client_secret_basic, client_secret_post, "
                         "private_key_jwt, client_secret_jwt, 'implicit id_token', 'hybrid code token', formpost-basic, "
                         "'dynamic code id_token', …) or the plan part of one (implicit, hybrid, formpost-implicit, "
                         "formpost-hybrid, dynamic); modules without "
                         "a client ([config], [logout]) always run")
    ap.add_argument("--workers", type=int, default=8,
                    help="modules run in parallel (default 8); modules that wait run on threads of their own")
    ap.add_argument("--ignore-scopes-supported", action="store_true",
                    help="run the scope modules even when discovery does not advertise the scope (not the suite's rule)")
    ap.add_argument("--jwks-refresh-delay", type=float, default=JWKS_REFRESH_DELAY, metavar="SECONDS",
                    help="seconds oidcc-refresh-token-rp-key-rotation waits after rotating the client's key (the "
                         "suite's server.jwks_refresh_delay: 1 to 60, default 60)")
    ap.add_argument("--expected-failures", default=os.path.join(HERE, "expected-failures.txt"))
    args = ap.parse_args()
    JWKS_REFRESH_DELAY = min(max(1.0, args.jwks_refresh_delay), 60.0)  # WaitForJWKSRefreshDelay's bounds

    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print(f"server binary not found or not executable: {binary}", file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    xfails = load_expected_failures(args.expected_failures)
    started = time.time()
    # The RP's receiver comes first: the server must start trusting its CA (SSL_CERT_FILE).
    receiver: Receiver | None = None
    receiver_error: str | None = None
    try:
        receiver = Receiver()
    except Exception as e:  # only the logout flow modules need it; they fail with this reason
        receiver_error = f"{type(e).__name__}: {e}"
    server = Server(binary, receiver.server_env() if receiver else None)
    try:
        server.start()
    except RuntimeError as e:
        print(f"FAILED  server start: {e}")
        server.stop()
        if receiver:
            receiver.stop()
        print("0 passed, 1 failed")
        return 1
    counts = {"passed": 0, "warning": 0, "skipped": 0, "failed": 0, "xfail": 0, "xpass": 0}
    try:
        ctx = Context(server, receiver, receiver_error)
        ctx.ignore_scopes_supported = args.ignore_scopes_supported
        ctx.setup()
        # (module, label, job, waits, plan, alone)
        jobs: list[tuple[str, str, Callable[[Run], str | None], float, str, bool]] = []
        only = re.compile(args.only) if args.only else None
        for m in MODULES:
            if only and not only.search(m.name):
                continue
            if m.standalone is not None:
                jobs.append((m.name, m.standalone, lambda run, m=m: m.fn(ctx, run, None, m.standalone),  # type: ignore[arg-type]
                             m.waits, plan_of(m, m.standalone), m.alone))
                continue
            for v in m.variants or ():
                if args.variant and not variant_selected(v, args.variant):
                    continue

                def job(run: Run, m: Module = m, v: str = v) -> str | None:
                    setup_guard(ctx)
                    return m.fn(ctx, run, ctx.client(PLAN_BY_LABEL[v], m.auth), v)
                jobs.append((m.name, v, job, m.waits, plan_of(m, v), m.alone))
        # Modules that must run alone (oidcc-server-rotate-keys) come last: each is run by itself once
        # every module before it has finished (their results are read in order).
        jobs.sort(key=lambda j: j[5])

        per_plan: dict[str, dict[str, int]] = {}
        # Modules that mostly wait (oidcc-codereuse-30seconds above all) get a thread each, so that
        # they all wait at once instead of holding the workers; they are submitted first.
        waiting = sum(1 for j in jobs if j[3] and not j[5])
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool, \
                concurrent.futures.ThreadPoolExecutor(max_workers=max(1, waiting)) as waiters:
            submitted = {id(j): (waiters if j[3] else pool).submit(run_one, ctx, j[2])
                         for j in sorted(jobs, key=lambda j: not j[3]) if not j[5]}
            for j in jobs:
                name, v, plan = j[0], j[1], j[4]
                o = submitted[id(j)].result() if not j[5] else run_one(ctx, j[2])
                tally = per_plan.setdefault(plan, {"runs": 0, "passed": 0, "warning": 0, "skipped": 0, "xfail": 0,
                                                   "xpass": 0, "failed": 0})
                tally["runs"] += 1
                label = f"{name} [{v}]"
                reason = xfails.get((name, v), xfails.get((name, None)))
                if reason is not None and o.status == "FAILED":
                    print(f"XFAIL   {label}: {o.note}  (expected: {reason})")
                    key = "xfail"
                elif reason is not None:
                    print(f"XPASS   {label}: listed in expected-failures.txt ({reason}) but {o.status.lower()}"
                          + (f": {o.note}" if o.note else ""))
                    key = "xpass"
                elif o.status == "PASSED":
                    print(f"PASSED  {label}" + (f": {o.note}" if o.note else ""))
                    key = "passed"
                elif o.status == "WARNING":
                    print(f"WARNING {label}: {'; '.join(o.warnings)}" + (f" ({o.note})" if o.note else ""))
                    key = "warning"
                elif o.status == "SKIPPED":
                    print(f"SKIPPED {label}: {o.note}")
                    key = "skipped"
                else:
                    print(f"FAILED  {label}: {o.note}")
                    key = "failed"
                counts[key] += 1
                tally[key] += 1
                sys.stdout.flush()
    finally:
        server.stop()
        if receiver:
            receiver.stop()
    passed = counts["passed"] + counts["warning"]
    failed = counts["failed"] + counts["xpass"]
    for plan in sorted(per_plan, key=lambda p: PLAN_ORDER.index(p) if p in PLAN_ORDER else len(PLAN_ORDER)):
        t = per_plan[plan]
        print(f"plan {plan}: {t['runs']} runs: {t['passed'] + t['warning']} passed ({t['warning']} with warnings), "
              f"{t['skipped']} skipped, {t['xfail']} xfail, {t['failed'] + t['xpass']} failed")
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
