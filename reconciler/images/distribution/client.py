"""One HTTP session with one registry repository: scheme, authentication, retries.

The registry API is plain HTTP plus an authentication dance (the distribution
"token" spec): ``GET /v2/`` answers 200 (no auth) or 401 with a challenge,

    WWW-Authenticate: Bearer realm="https://auth.example/token",service="example",scope="…"
    WWW-Authenticate: Basic realm="example"

For ``Basic`` every request carries the credentials. For ``Bearer`` a token is
fetched from ``realm`` (``?service=…&scope=repository:NAME:pull,push``, with the
credentials as basic auth when we have some, anonymously otherwise) and sent as
``Authorization: Bearer``; tokens are cached per set of scopes until they expire.
A 401 on a request with a token fetches a fresh one (with the scope the new
challenge names) once; a second 401 is an authentication error, not retried.

Transient faults (connection refused or reset, read timeouts, a body cut short,
5xx, 429) raise ``Transient`` and are retried by ``retry`` with exponential
backoff; anything else is a ``RegistryError`` at once. One ``httpx.Client`` is
shared by the worker threads of a pull: its connection pool is thread-safe, and
the token cache here is guarded by a lock.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

import httpcore
import httpx
import tenacity

from reconciler.images.distribution import credentials as creds
from reconciler.images.distribution.config import (
    DOCKER_HUB_API,
    RegistryConfig,
    RegistryError,
    Target,
    base_url,
    canonical_registry,
)
from reconciler.model.reference import DEFAULT_REGISTRY

#: httpcore reads an HTTP/1.1 body from its socket 64 KiB at a time, each read going
#: through h11's parser in Python: for a 100 MiB layer that is 1,600 trips holding
#: the GIL, a third of a pull's time on a loopback registry. A megabyte per read
#: (its class attribute, meant to be tuned) made a 100 MiB pull 1.12 s → 0.69-0.90 s
#: here. ``tests/test_registry.py`` checks the attribute is still there.
httpcore.HTTP11Connection.READ_NUM_BYTES = 1 << 20

log = logging.getLogger(__name__)

T = TypeVar("T")
Body = bytes | Callable[[], Iterable[bytes]] | None

_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')
_ERROR_BODY_LIMIT = 64 << 10


_TLS: dict[str | None, ssl.SSLContext] = {}
_TLS_LOCK = threading.Lock()


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Certificates and host names checked against the system's CAs (plus
    ``ca_file``), one context per process. Even a plain-HTTP registry gets one:
    it may redirect blob downloads to HTTPS storage.

    The system store is used as a hashed directory, looked up per certificate
    when a handshake needs it, rather than the 140-odd CAs parsed up front as
    ``ssl.create_default_context`` does (35 ms a process: the CLI pays it on
    every pull, mostly from loopback or LAN registries that never use TLS).
    """
    with _TLS_LOCK:
        context = _TLS.get(ca_file)
        if context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
            paths = ssl.get_default_verify_paths()
            if paths.capath and os.path.isdir(paths.capath) and not os.environ.get(paths.openssl_cafile_env):
                context.load_verify_locations(capath=paths.capath)
            else:
                context.load_default_certs()
            if ca_file:
                context.load_verify_locations(cafile=ca_file)
            _TLS[ca_file] = context
        return context


class Transient(Exception):
    """A failure worth retrying; ``retry_after`` is the server's hint, if it gave one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…"`` → ``("bearer", {"realm": …, "service": …})``."""
    scheme, _, rest = header.strip().partition(" ")
    params = {key.lower(): value.strip('"').replace('\\"', '"') for key, value in _PARAM.findall(rest)}
    return scheme.lower(), params


def _wait(config: RegistryConfig) -> Callable[[tenacity.RetryCallState], float]:
    """Exponential backoff, or the server's ``Retry-After`` when shorter than the cap."""
    exponential = tenacity.wait_exponential(multiplier=config.backoff, max=config.max_backoff)

    def wait(state: tenacity.RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        if isinstance(failure, Transient) and failure.retry_after is not None:
            return min(failure.retry_after, config.max_backoff)
        return float(exponential(state))

    return wait


def _log_retry(state: tenacity.RetryCallState) -> None:
    failure = state.outcome.exception() if state.outcome else None
    log.info("attempt %d failed (%s); retrying", state.attempt_number, failure)


def retrying(config: RegistryConfig) -> tenacity.Retrying:
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(1, config.attempts)),
        wait=_wait(config),
        retry=tenacity.retry_if_exception_type(Transient),
        before_sleep=_log_retry,
        reraise=True,
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def describe(response: httpx.Response) -> str:
    """``404 Not Found: MANIFEST_UNKNOWN manifest unknown`` from a registry's error body."""
    text = f"{response.status_code} {response.reason_phrase}".strip()
    try:
        body = response.content if response.is_stream_consumed else _read_limited(response)
        errors = json.loads(body).get("errors") or []
        details = "; ".join(" ".join(filter(None, (e.get("code"), e.get("message")))) for e in errors)
    except (ValueError, AttributeError, httpx.HTTPError):
        details = ""
    return f"{text}: {details}" if details else text


def _read_limited(response: httpx.Response) -> bytes:
    out = b""
    for chunk in response.iter_bytes():
        out += chunk
        if len(out) > _ERROR_BODY_LIMIT:
            break
    return out


class Session:
    """Requests to one repository of one registry, authenticated as needed.

    ``operation`` (``pull``, ``push``, ``login``) and ``target`` only shape error
    messages; ``actions`` is what bearer tokens ask for on ``target.repository``.
    """

    def __init__(
        self,
        target: Target,
        config: RegistryConfig,
        *,
        credentials: creds.Credentials | None,
        operation: str,
        actions: str = "pull",
    ) -> None:
        self.target = target
        self.config = config
        self.credentials = credentials
        self.operation = operation
        self.base = base_url(target, config)
        self.scope = f"repository:{target.repository}:{actions}" if target.repository else ""
        pool = config.parallel + 2
        self.client = httpx.Client(
            timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout),
            verify=tls_context(config.ca_file),
            headers={"User-Agent": config.user_agent},
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
        )
        self._scheme: str | None = None  # None before ping; "" when the registry wants no auth
        self._challenge: dict[str, str] = {}
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._ping_lock = threading.Lock()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    # --- errors and retries -----------------------------------------------

    def error(self, cause: str, *, reference: str | None = None) -> RegistryError:
        what = str(self.target) if self.target.repository else self.target.registry
        if reference is not None:
            what = self.target.name + ("@" if reference.startswith("sha256:") else ":") + reference
        return RegistryError(
            f"{self.operation} {what}: {cause}",
            registry=self.target.registry,
            repository=self.target.repository,
            reference=reference or self.target.reference,
            cause=cause,
        )

    def retry(self, action: Callable[[], T]) -> T:
        """``action()``, retried while it fails transiently; then a RegistryError
        (a transient failure's message names the request that failed)."""
        try:
            return retrying(self.config)(action)
        except Transient as exc:
            raise self.error(f"{exc} (gave up after {max(1, self.config.attempts)} attempts)") from None

    def auth_error(self) -> RegistryError:
        registry = self.target.registry
        if self.credentials is None:
            return self.error(f"authentication required for {registry}: no credentials (log in first)")
        return self.error(
            f"authentication required / wrong credentials for {registry} (as {self.credentials.username})"
        )

    # --- sending ----------------------------------------------------------

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base + path

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: Body,
        stream: bool,
        follow_redirects: bool,
    ) -> httpx.Response:
        """One request; transport faults and 5xx/429 become ``Transient``."""
        content = body() if callable(body) else body
        request = self.client.build_request(method, self.url(url), headers=headers, content=content)
        try:
            response = self.client.send(request, stream=stream, follow_redirects=follow_redirects)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise Transient(f"{method} {request.url}: {type(exc).__name__}: {exc or 'no detail'}") from None
        except httpx.HTTPError as exc:
            raise self.error(f"{method} {request.url}: {exc}") from None
        if response.status_code >= 500 or response.status_code == 429:
            try:
                message = f"{method} {request.url}: {describe(response)}"
            except httpx.HTTPError:
                message = f"{method} {request.url}: {response.status_code}"
            response.close()
            raise Transient(message, retry_after=_retry_after(response))
        return response

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: Body = None,
        scopes: Iterable[str] = (),
        stream: bool = False,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """An authenticated request (one attempt; wrap in ``retry``). A streamed
        response must be closed by the caller. ``body`` is bytes, or a function
        returning a fresh iterable of chunks, so a request can be sent again after
        a 401."""
        if self._scheme is None:
            with self._ping_lock:  # push's first requests come from several threads at once
                if self._scheme is None:
                    self.ping()
        wanted = tuple(sorted({self.scope, *scopes} - {""}))
        sent = dict(headers or {})
        sent.update(self._authorization(wanted))
        response = self._send(method, path, headers=sent, body=body, stream=stream, follow_redirects=follow_redirects)
        if response.status_code != 401:
            return response
        challenge = response.headers.get("WWW-Authenticate", "")
        response.close()
        wanted = self._answer(challenge, wanted, already_sent="Authorization" in sent)
        sent.update(self._authorization(wanted))
        response = self._send(method, path, headers=sent, body=body, stream=stream, follow_redirects=follow_redirects)
        if response.status_code == 401:
            response.close()
            raise self.auth_error()
        return response

    def _answer(self, challenge: str, scopes: tuple[str, ...], *, already_sent: bool) -> tuple[str, ...]:
        """Adopt the challenge of a 401 and the scopes to ask for next; an auth
        error when answering it cannot help (basic credentials already refused).
        Some registries leave ``/v2/`` open and challenge only per repository."""
        scheme, params = parse_challenge(challenge)
        if scheme == "bearer" and (params.get("realm") or self._challenge.get("realm")):
            extra = [s for s in params.get("scope", "").split(" ") if s]
            wanted = tuple(sorted({*scopes, *extra}))
            with self._lock:
                self._scheme = "bearer"
                self._challenge = {**self._challenge, **params}
                self._tokens.pop(scopes, None)
                self._tokens.pop(wanted, None)
            return wanted
        if scheme == "basic" and not (already_sent and self._scheme == "basic"):
            self._scheme = "basic"
            return scopes
        raise self.auth_error()

    @contextlib.contextmanager
    def stream(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, follow_redirects: bool = False
    ) -> Iterator[httpx.Response]:
        """``request`` with the body left to read; closed when the block ends."""
        response = self.request(method, path, headers=headers, stream=True, follow_redirects=follow_redirects)
        try:
            yield response
        finally:
            response.close()

    def iter_body(self, response: httpx.Response) -> Iterator[bytes]:
        """The body as it arrives; a connection lost mid-way is ``Transient``."""
        try:
            yield from response.iter_bytes()
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise Transient(f"{response.request.method} {response.request.url}: body cut short: {exc}") from None
        except httpx.HTTPError as exc:
            raise self.error(f"{response.request.method} {response.request.url}: {exc}") from None

    # --- authentication ---------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``: is this a registry, and what authentication does it want."""

        def once() -> httpx.Response:
            return self._send("GET", "/v2/", headers={}, body=None, stream=False, follow_redirects=True)

        response = self.retry(once)
        if response.status_code == 200:
            self._scheme = ""
            return
        if response.status_code != 401:
            raise self.error(f"{self.base} does not answer as a registry (GET /v2/: {describe(response)})")
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme not in ("basic", "bearer") or (scheme == "bearer" and "realm" not in params):
            raise self.error(
                f"{self.target.registry} asks for unsupported authentication {scheme or 'without a challenge'!r}"
            )
        self._scheme, self._challenge = scheme, params

    def _authorization(self, scopes: tuple[str, ...]) -> dict[str, str]:
        if self._scheme == "basic":
            if self.credentials is None:
                raise self.auth_error()
            return {"Authorization": "Basic " + self._basic(self.credentials)}
        if self._scheme == "bearer":
            return {"Authorization": "Bearer " + self.token(scopes)}
        return {}

    @staticmethod
    def _basic(credentials: creds.Credentials) -> str:
        return base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()

    def token(self, scopes: tuple[str, ...]) -> str:
        """A bearer token for ``scopes``, cached until shortly before it expires.
        Fetched under the lock so parallel downloads ask the token server once."""
        with self._lock:
            cached = self._tokens.get(scopes)
            if cached is not None and cached[1] > time.monotonic():
                return cached[0]
            token, lifetime = self.retry(lambda: self._fetch_token(scopes))
            self._tokens[scopes] = (token, time.monotonic() + max(1.0, lifetime * 0.9))
            return token

    def _fetch_token(self, scopes: tuple[str, ...]) -> tuple[str, float]:
        realm = self._challenge["realm"]
        params: list[tuple[str, str | int | float | bool | None]] = []
        if "service" in self._challenge:
            params.append(("service", self._challenge["service"]))
        params += [("scope", scope) for scope in scopes]
        headers = {"Authorization": "Basic " + self._basic(self.credentials)} if self.credentials else {}
        url = str(httpx.URL(realm).copy_merge_params(params))
        response = self._send("GET", url, headers=headers, body=None, stream=False, follow_redirects=True)
        if response.status_code in (401, 403):
            raise self.auth_error()
        if response.status_code != 200:
            raise self.error(f"token server {realm}: {describe(response)}")
        try:
            document = response.json()
            token = document.get("token") or document.get("access_token")
            lifetime = float(document.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            raise self.error(f"token server {realm} answered something that is not a token") from None
        if not isinstance(token, str) or not token:
            raise self.error(f"token server {realm} answered without a token")
        return token, lifetime

    def check_credentials(self) -> None:
        """Prove the credentials to the registry, as ``docker login`` does: basic
        auth on ``/v2/``, or a token fetched with them."""
        if self._scheme is None:
            self.ping()
        if self._scheme == "basic":
            response = self.request("GET", "/v2/")
            if response.status_code != 200:
                raise self.error(f"GET /v2/: {describe(response)}")
        elif self._scheme == "bearer":
            self.retry(lambda: self._fetch_token(()))


class Cancelled(Exception):
    """Another job of the same ``run_all`` failed: stop, letting go of what this one holds."""


def run_all(jobs: Sequence[Callable[[threading.Event], None]], *, workers: int) -> None:
    """Run ``jobs`` ``workers`` at a time, each given the shared cancel event.

    The first failure sets the event (running jobs see it between chunks and
    raise ``Cancelled``) and cancels those not started; this returns, raising
    that first failure, only once every job has finished, so nothing a job
    holds (an ingest, an open upload) outlives the call.
    """
    cancel = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(job, cancel) for job in jobs]
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        failed = [f for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
        if not failed:
            return
        cancel.set()
        for future in futures:
            future.cancel()
        concurrent.futures.wait(futures)
    errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
    first = next((e for e in errors if not isinstance(e, Cancelled)), errors[0])
    raise first  # type: ignore[misc]


def registry_target(registry: str) -> Target:
    """A target naming a registry only (for ``login``)."""
    name = canonical_registry(registry)
    host = DOCKER_HUB_API if name == DEFAULT_REGISTRY else name
    return Target(registry=name, host=host, repository="", tag=None, digest=None)


def open_session(
    target: Target, config: RegistryConfig, *, root: str | None, operation: str, actions: str = "pull"
) -> Session:
    """A session with the credentials stored for ``target.registry``, if any."""
    found = creds.lookup(target.registry, root=root, docker_config=config.docker_config)
    return Session(target, config, credentials=found, operation=operation, actions=actions)


def login(root: str, registry: str, username: str, password: str, *, config: RegistryConfig | None = None) -> None:
    """Check ``username``/``password`` against ``registry``, then store them in
    ``ROOT/auth.json`` for later pulls and pushes. Wrong credentials store nothing."""
    config = config or RegistryConfig()
    credentials = creds.Credentials(username, password)
    with Session(registry_target(registry), config, credentials=credentials, operation="login") as session:
        session.check_credentials()
    creds.store(root, registry, credentials)


def logout(root: str, registry: str) -> bool:
    """Forget the stored credentials of ``registry``; whether there were any."""
    return creds.forget(root, registry)
