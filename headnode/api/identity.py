"""Who is calling, and what they may do: the one place the API decides identity and rights.

Identity comes from, in order: the client's TLS certificate (its common name; its
organizational unit says node, user, or a user's role), a signed user token in the
`authorization: Bearer ...` metadata, or, in plaintext mode only, the `shoal-user` metadata
the client sends (trusted: development only). A caller with none of them is UNAUTHENTICATED.

Roles follow HPC Pack: User, JobAdmin, Admin. A user's role is the highest of what the
head's config lists (`admins`, `job_admins`) and what their certificate or token says. Every
denial and every administrative action is logged as an `audit` event.

Identity comes first (issue 33): errors.py calls `user` (or `agent`) before a request is
parsed, and the principal it finds is kept for the rest of the call, which is rate-limited
once. Calls rate-limited per identity (rate_limit); a caller that fails to identify itself
counts against its peer address's bucket (UNIDENTIFIED_RATE), so anonymous callers cannot
crowd out the ones who identify. Audit events quote at most 200 characters of any input.
"""

from __future__ import annotations

import contextvars
import functools
from dataclasses import dataclass
from typing import Any

import grpc

from common import log, tls, tokens
from common.clock import Clock
from common.config import HeadConfig
from common.errors import PermissionDenied, ResourceExhausted, Unauthenticated, quote
from headnode.domain.model import Job
from headnode.services.join_tokens import JoinTokens
from headnode.services.revocations import Revocations

USER_METADATA = "shoal-user"
AUTHORIZATION = "authorization"
NODE_TOKEN = "shoal-node-token"
JOIN_TOKEN = "shoal-join-token"
ANONYMOUS = "anonymous"
USER, JOB_ADMIN, ADMIN = "User", "JobAdmin", "Admin"
_RANK = {USER: 0, JOB_ADMIN: 1, ADMIN: 2}

# Calls a second from one peer address that fail to identify themselves (no credential, a
# bad or revoked one), at most (and never more than rate_limit); twice that in a burst.
UNIDENTIFIED_RATE = 10.0


def _quoted(value: object) -> object:
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, (list, tuple)):
        return [quote(v) for v in value[:20]] + (["…"] if len(value) > 20 else [])
    return value


class _Audit:
    """The `audit` logger, quoting at most 200 characters of any value (names come from
    requests: ten denied calls with a 10 MiB name added 105 MB to the log, issue 33)."""

    def __init__(self) -> None:
        self._log = log.get("audit")

    def info(self, event: str, **fields: Any) -> None:
        self._log.info(event, **{k: _quoted(v) for k, v in fields.items()})

    def warning(self, event: str, **fields: Any) -> None:
        self._log.warning(event, **{k: _quoted(v) for k, v in fields.items()})


_audit = _Audit()
# The caller of the call under way (its context, and who it is): found once per call, before
# the request is parsed (errors.py), then answered from here. gRPC runs each call in its own
# task, so each call sees its own.
_caller: contextvars.ContextVar[tuple[object, Principal] | None] = contextvars.ContextVar("caller", default=None)


def peer_address(context: grpc.aio.ServicerContext) -> str:
    """The caller's address without its port ("ipv4:127.0.0.1"): one bucket however many
    connections it opens; "" where there is none (the dashboard's in-process calls)."""
    peer = getattr(context, "peer", None)
    text = peer() if peer is not None else ""
    if not isinstance(text, str) or not text:
        return ""
    kind, _, rest = text.partition(":")
    if kind in ("ipv4", "ipv6"):
        rest = rest.rpartition(":")[0] or rest
    return quote(f"{kind}:{rest}", 80)


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str = USER
    node: bool = False  # a compute node's certificate
    # The credential's own end (0: none, as for plaintext callers) and the revocation keys that
    # revoke it: what a token it mints inherits, so a minted token never outlives its parent.
    expires: float = 0.0
    chain: tuple[str, ...] = ()

    def at_least(self, role: str) -> bool:
        return not self.node and _RANK[self.role] >= _RANK[role]


@dataclass(frozen=True, slots=True)
class Admission:
    """What admit_node decided: the groups a join token puts the node in, the node credential
    to hand its agent, and the join token whose use it took ("" for none)."""

    groups: tuple[str, ...] = ()
    node_token: str = ""
    join_token: str = ""


def metadata(context: grpc.aio.ServicerContext, key: str) -> str:
    for k, value in context.invocation_metadata() or ():
        if k == key and isinstance(value, str):
            return value.strip()
    return ""


@functools.lru_cache(maxsize=4096)
def _identify(pem: bytes) -> tuple[str, str, str, float]:
    return (*tls.identify(pem), tls.expiry(pem))  # parsed once per certificate, not once per call


def peer_certificate(context: grpc.aio.ServicerContext,
                     revocations: Revocations | None = None) -> tuple[str, str, str, float] | None:
    """(common name, unit, serial, expiry) of the client's verified certificate, if it names
    someone (the shared client certificate does not: its holder identifies with a token)."""
    pem = (context.auth_context() or {}).get("x509_pem_cert")
    if not pem:
        return None
    name, unit, serial, expires = _identify(pem[0])
    if revocations is not None and revocations.revoked(f"cert:{serial}", float("-inf")):
        _audit.warning("audit", who=name, action="connect", certificate=serial, allowed=False)
        raise Unauthenticated(f"certificate {serial} ({name}) has been revoked; ask an admin for a new one "
                              "(`shoal certs issue`)")
    return None if unit == tls.CLIENT else (name, unit, serial, expires)


class Authority:
    def __init__(self, config: HeadConfig, clock: Clock, token_key: str,
                 revocations: Revocations | None = None, join_tokens: JoinTokens | None = None) -> None:
        self.config = config
        self.clock = clock
        self.token_key = token_key
        self.revocations = revocations or Revocations(None, clock)
        self.join_tokens = join_tokens or JoinTokens(None, clock)
        # Token buckets per caller: name -> (tokens, monotonic time of the last refill); and
        # per peer address, for calls that fail to identify themselves.
        self._buckets: dict[str, tuple[float, float]] = {}
        self._peers: dict[str, tuple[float, float]] = {}

    def throttle(self, name: str) -> None:
        """Count one request of `name`'s against rate_limit (user() counts each call; a stream
        of requests, SubmitJobStream's, counts each of the rest)."""
        rate = self.config.rate_limit
        if rate and not self._take(self._buckets, name, rate):
            raise ResourceExhausted(f"too many requests from {quote(name, 64)}: at most {rate:g} per second; "
                                    "slow down and retry")

    def _take(self, buckets: dict[str, tuple[float, float]], key: str, rate: float) -> bool:
        now, burst = self.clock.monotonic(), 2 * rate
        tokens_left, at = buckets.get(key, (burst, now))
        tokens_left = min(burst, tokens_left + (now - at) * rate)
        if len(buckets) > 100_000:  # forget idle callers rather than grow without end
            for k in [k for k, v in buckets.items() if now - v[1] >= 60]:
                del buckets[k]
        if tokens_left < 1:
            buckets[key] = (tokens_left, now)
            return False
        buckets[key] = (tokens_left - 1, now)
        return True

    def _unidentified(self, context: grpc.aio.ServicerContext, error: Unauthenticated) -> Exception:
        """What a call that failed to identify itself is answered: its error, unless its peer
        address is past UNIDENTIFIED_RATE such calls a second (then RESOURCE_EXHAUSTED)."""
        rate = min(self.config.rate_limit, UNIDENTIFIED_RATE)
        address = peer_address(context)
        if not rate or not address or self._take(self._peers, address, rate):
            return error
        return ResourceExhausted(f"too many unauthenticated requests from {address}: at most {rate:g} per second; "
                                 "present a valid credential (a client certificate or `shoal user token`)")

    def _config_role(self, name: str) -> str:
        if name in self.config.admins:
            return ADMIN
        if name in self.config.job_admins:
            return JOB_ADMIN
        return USER

    def _higher(self, a: str, b: str) -> str:
        return a if _RANK.get(a, 0) >= _RANK.get(b, 0) else b

    def who(self, context: grpc.aio.ServicerContext) -> Principal:
        try:
            return self._who(context)
        except Unauthenticated as e:
            raise self._unidentified(context, e) from None

    def _who(self, context: grpc.aio.ServicerContext) -> Principal:
        # A plaintext head has no TLS, so no certificate to look for: its auth context, built
        # into a dict on every call, was about 1% of a busy head's time.
        cert = None if self.config.plaintext else peer_certificate(context, self.revocations)
        if cert is not None:
            name, unit, serial, expires = cert
            if unit == "node":
                return Principal(name, USER, node=True)
            return Principal(name, self._higher(self._config_role(name), unit if unit in _RANK else USER),
                             expires=expires, chain=(f"cert:{serial}", f"user:{name}"))
        bearer = metadata(context, AUTHORIZATION)
        if bearer:
            token = bearer.removeprefix("Bearer ").strip()
            try:
                claims = tokens.verify(self.token_key, token, self.clock.now(), "user")
            except tokens.BadToken as e:
                raise Unauthenticated(f"the caller's token is {e}; get a new one with `shoal user token`") from None
            if self.revocations.revoked(f"user:{claims.subject}", claims.issued):
                raise Unauthenticated(f"the caller's token was revoked (all of {claims.subject}'s tokens issued "
                                      "before then); get a new one with `shoal user token`")
            for parent in claims.parents:
                if self.revocations.revoked(parent, claims.issued):
                    raise Unauthenticated(f"the caller's token was minted with a credential since revoked "
                                          f"({parent[:80]}); get a new one with `shoal user token`")
            return Principal(claims.subject, self._higher(self._config_role(claims.subject), claims.role or USER),
                             expires=claims.expires, chain=(*claims.parents, f"user:{claims.subject}"))
        if self.config.plaintext:
            name = metadata(context, USER_METADATA)[:64] or ANONYMOUS
            return Principal(name, self._config_role(name))
        raise Unauthenticated("no identity: present a client certificate (`shoal certs issue --user`) or a token "
                              "(`shoal user token`), e.g. with --cert/--key or SHOAL_TOKEN")

    def user(self, context: grpc.aio.ServicerContext) -> Principal:
        """The calling user, authenticated and counted against its rate once per call (the
        first time; errors.py asks before the request is parsed)."""
        known = _caller.get()
        if known is not None and known[0] is context:
            return known[1]
        p = self.who(context)
        self.throttle(p.name)
        if p.node:
            raise PermissionDenied(f"node {p.name}'s certificate identifies a node, not a user")
        _caller.set((context, p))
        return p

    def agent(self, context: grpc.aio.ServicerContext) -> None:
        """Before an agent's first message is read: it presents a node certificate or a node or
        join token this cluster signed (admit_node then decides which node it may speak for)."""
        if self.config.plaintext:
            return
        try:
            cert = peer_certificate(context, self.revocations)
            if cert is not None:
                return
            for key, kind in ((NODE_TOKEN, "node"), (JOIN_TOKEN, "join")):
                if token := metadata(context, key):
                    try:
                        tokens.verify(self.token_key, token, self.clock.now(), kind)
                    except tokens.BadToken as e:
                        raise Unauthenticated(f"the agent's {kind} token is {e}") from None
                    return
            raise Unauthenticated("an agent joins with a join token (`shoal node token create`, then "
                                  "--join-token-file) or a node certificate (`shoal certs issue --node NAME`)")
        except Unauthenticated as e:
            raise self._unidentified(context, e) from None

    # -- nodes ---------------------------------------------------------------------------------

    def admit_node(self, context: grpc.aio.ServicerContext, name: str, known: bool,
                   groups: tuple[str, ...] = ()) -> Admission:
        """May this agent speak for node `name` (asking for node `groups`)? A join takes one of
        its join token's uses at once: the caller saves it (Admission.join_token) once the
        session opened, or releases it."""
        if self.config.plaintext:
            return Admission()
        cert = peer_certificate(context, self.revocations)
        if cert is not None:
            cn, unit = cert[:2]
            if unit != "node":
                raise PermissionDenied(f"{cn}'s certificate is a user's; an agent needs a node certificate")
            if cn != name:
                raise PermissionDenied(f"this agent's certificate is for node {cn}, not {quote(name, 64)}")
            return Admission()
        now = self.clock.now()
        if own := metadata(context, NODE_TOKEN):
            try:
                claims = tokens.verify(self.token_key, own, now, "node")
            except tokens.BadToken as e:
                raise Unauthenticated(f"the agent's node token is {e}") from None
            if claims.subject != name:
                raise PermissionDenied(f"this agent's node token is for node {claims.subject}, not {quote(name, 64)}")
            if self.revocations.revoked(f"node:{name}", claims.issued):
                raise Unauthenticated(f"node {name}'s credential was revoked (the node was removed or revoked); "
                                      "join it anew with a join token (`shoal node token create`)")
            return Admission()
        if join := metadata(context, JOIN_TOKEN):
            try:
                claims = tokens.verify(self.token_key, join, now, "join")
            except tokens.BadToken as e:
                raise Unauthenticated(f"the agent's join token is {e}; create one with `shoal node token create`") \
                    from None
            if self.revocations.revoked("join:*", claims.issued):
                raise Unauthenticated("the agent's join token was revoked; create a new one with "
                                      "`shoal node token create`")
            if known:
                raise PermissionDenied(f"node {name} is already registered and joins again only with its own "
                                       f"credential; remove it (`shoal node remove {name}`) to join it anew")
            if self.revocations.revoked(f"node:{name}", claims.issued):
                raise PermissionDenied(f"node {name} was removed after this join token was made; join it anew "
                                       "with a new token (`shoal node token create`)")
            token = self.join_tokens.reserve(claims.subject, name, groups)
            _audit.info("audit", who=name, action="join", join_token=token.id, groups=token.groups, allowed=True)
            return Admission(tuple(token.groups), tokens.sign(self.token_key, tokens.Claims("node", name, issued=now)),
                             token.id)
        raise Unauthenticated("an agent joins with a join token (`shoal node token create`, then --join-token-file) "
                              "or a node certificate (`shoal certs issue --node NAME`)")

    # -- rights --------------------------------------------------------------------------------

    def require(self, context: grpc.aio.ServicerContext, role: str, action: str) -> Principal:
        p = self.user(context)
        # Development mode with no admins configured: cluster management is open (job
        # ownership still holds), so a local cluster needs no set-up.
        open_dev = self.config.plaintext and not self.config.admins
        if not p.at_least(role) and not open_dev:
            _audit.warning("audit", who=p.name, role=p.role, action=action, allowed=False)
            raise PermissionDenied(f"{p.name} may not {quote(action)}: that needs the {role} role")
        _audit.info("audit", who=p.name, role=p.role, action=action, allowed=True)
        return p

    def on_job(self, context: grpc.aio.ServicerContext, job: Job, action: str) -> Principal:
        """Act on a job: its owner, a JobAdmin or an Admin."""
        p = self.user(context)
        if p.name == job.owner:
            return p
        if not p.at_least(JOB_ADMIN):
            _audit.warning("audit", who=p.name, role=p.role, action=action, job_id=job.id, owner=job.owner,
                           allowed=False)
            raise PermissionDenied(f"{p.name} may not {action} job {job.id}: it is {job.owner}'s, and acting on "
                                   f"others' jobs needs the JobAdmin role")
        _audit.info("audit", who=p.name, role=p.role, action=action, job_id=job.id, owner=job.owner, allowed=True)
        return p

    def changes_what_runs(self, context: grpc.aio.ServicerContext, job: Job, action: str) -> Principal:
        """Decide what a job runs: add tasks, change a task's command, environment, working
        directory, files or sweep, queue a Configuring job or put it back to Configuring. Only
        its owner, whatever the caller's role: its tasks run as the owner's Unix user, so a
        JobAdmin's (or an Admin's) command would run with the owner's rights (issue 33). A
        JobAdmin still cancels, requeues, holds, releases and reschedules others' jobs (on_job);
        a clone is the cloner's own job."""
        p = self.user(context)
        if p.name != job.owner:
            _audit.warning("audit", who=p.name, role=p.role, action=action, job_id=job.id, owner=job.owner,
                           allowed=False)
            raise PermissionDenied(f"{p.name} may not {action} job {job.id}: it is {job.owner}'s, and only its "
                                   f"owner changes what runs")
        return p

    def may_view(self, context: grpc.aio.ServicerContext, job: Job) -> Principal:
        """See a job: its state, owner, name, resources, timings and reasons (what it runs
        only where sees_payload). Everyone may, unless users_list_others_jobs is off."""
        p = self.user(context)
        if p.name != job.owner and not self.config.users_list_others_jobs and not p.at_least(JOB_ADMIN):
            _audit.warning("audit", who=p.name, action="view", job_id=job.id, owner=job.owner, allowed=False)
            raise PermissionDenied(f"{p.name} may not view job {job.id}: it is {job.owner}'s, and this cluster "
                                   f"shows users only their own jobs")
        return p

    def sees_payload(self, p: Principal, job: Job) -> bool:
        """Whether `p` sees what the job runs: its tasks' command lines, environments, working
        directories, stdin/stdout/stderr paths, and its output. The owner, JobAdmins and Admins
        do; other Users only where users_see_all_jobs is on (off by default: a job's
        environment and output often carry its owner's secrets)."""
        return p.name == job.owner or self.config.users_see_all_jobs or p.at_least(JOB_ADMIN)

    def may_read_output(self, context: grpc.aio.ServicerContext, job: Job) -> Principal:
        p = self.may_view(context, job)
        if not self.sees_payload(p, job):
            _audit.warning("audit", who=p.name, action="read output", job_id=job.id, owner=job.owner, allowed=False)
            raise PermissionDenied(f"{p.name} may not read the output of job {job.id}: it is {job.owner}'s, and "
                                   f"others' output is for JobAdmins (users_see_all_jobs is off)")
        return p

    def may_use_template(self, context: grpc.aio.ServicerContext, name: str, users: list[str]) -> Principal:
        """Submit with a template: anyone when it names no users; else those it names, and Admins."""
        p = self.user(context)
        if users and p.name not in users and not p.at_least(ADMIN):
            _audit.warning("audit", who=p.name, action="use template", template=name, allowed=False)
            raise PermissionDenied(f"{p.name} may not use template {name}: it is for {', '.join(users[:10])}"
                                   f"{' …' if len(users) > 10 else ''} (an Admin sets who with "
                                   f"`shoal template create {name} --replace --user NAME`)")
        return p

    def sees_all(self, p: Principal) -> bool:
        """Whether `p` may list everyone's jobs (and watch them, and see their usage): rows of
        state, owner, name and timings, never what a job runs (that is sees_payload's)."""
        return self.config.users_list_others_jobs or p.at_least(JOB_ADMIN)

