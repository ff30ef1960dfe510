"""A ROS custom resource framework: decode, parse, dispatch, wait, always answer exactly once.

It knows the protocol and how to wait; it knows nothing of images. Each invocation reads like the protocol:

    decode -> check the ResponseURL -> parse -> (look -> decide)* -> answer | hand over | stop

The resource does the work and returns plain values (:class:`Seen`); :func:`waiting.decide` says what follows.
The invocation itself fails only when no answer can ever be sent (no usable ResponseURL), or when the answer could
not be delivered after every try, so that FC retries an asynchronous invocation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from copyimage import clock
from copyimage.config import Settings
from copyimage.credentials import Credentials, resolve_credentials
from copyimage.errors import AlreadyScheduled, InvalidRequest, NotConfirmed, ProviderError, Unanswerable
from copyimage.logs import begin_invocation, bind_request, guard_sdk_logs, log_fact, logger, redact_url, url_origin
from copyimage.outbound import answer_urls, deliver_answer, invoke_later, stop_task
from copyimage.protocol import (
    Answer,
    CreateRequest,
    DeleteRequest,
    RosRequest,
    UpdateRequest,
    decode_event,
    parse_request,
    partial_request,
    response_body,
)
from copyimage.sealing import KeyUnavailable, NotAuthentic, check, seal
from copyimage.verify import verify
from copyimage.waiting import (
    MAX_DELAY,
    Budget,
    Finish,
    HandOver,
    LookAgain,
    Seen,
    Stop,
    Wait,
    chain_mark,
    decide,
    task_id,
)

CONTINUATION = "Continuation"
CONTINUATION_VERSION = 4  # 4: sealed (sealing.py); 3 and 2 carried no seal, so they are refused
READABLE_VERSIONS = (4,)
DEFAULT_FUNCTION_TIMEOUT = 60.0
# Before answering, a continuation claims its chain's next hop with a receipt task, stopped once the answer is
# delivered: a twin or a retry of the answering run cannot claim it and stops; if this run dies before the answer
# went out, the receipt runs and answers instead. It is due once the answer's tries are surely over (so it never
# runs beside them), and at least this late.
MIN_RECEIPT_SECONDS = 20.0


class Resource(Protocol):
    """What a custom resource does; every method returns plain values or raises a ProviderError."""

    def start(self, request: CreateRequest, wait: Wait) -> Seen: ...

    def look(self, request: CreateRequest, wait: Wait) -> Seen: ...

    def update(self, request: UpdateRequest, wait: Wait) -> Seen: ...

    def delete(self, request: DeleteRequest, wait: Wait) -> Seen: ...

    def claim(self, request: RosRequest, wait: Wait, token: str) -> None: ...

    def finish(self, request: RosRequest, wait: Wait, delivered: bool) -> None: ...

    def discard(self, request: RosRequest, wait: Wait) -> Literal["removed", "usable", "not ours"]: ...

    def nothing_to_delete(self, request: DeleteRequest) -> str | None: ...


MakeResource = Callable[[RosRequest, Settings, Credentials], Resource]


def chain_of(request_id: str, request_type: str = "Create") -> str:
    """The chain id of a request's wait: the same for a request delivered twice, so that FC's task ids tell apart
    the hops of one chain and nothing else."""
    import hashlib

    seed = f"waiter\n{request_id}" if request_type == "Create" else f"{request_type}\n{request_id}"
    return {"Create": "w-", "Update": "u-", "Delete": "d-"}.get(request_type, "x-") + hashlib.sha256(
        seed.encode()
    ).hexdigest()[:16]


def first_token(request_id: str) -> str:
    """The mark a Create's first invocation writes on its copy."""
    return chain_mark(chain_of(request_id), 0)


def continuation(request_event: Mapping[str, object], wait: Wait) -> dict[str, object]:
    """What the invocation that picks the wait up needs: the ROS request as it came, and the wait (sealed by
    :func:`sealing.seal` before it is sent)."""
    return {"Version": CONTINUATION_VERSION, "Request": dict(request_event), "Wait": wait.to_json()}


def handle(event: object, context: object, make_resource: MakeResource) -> dict[str, str]:
    """The FC entry point's body (see handler.py)."""
    begin_invocation(str(getattr(context, "request_id", "") or ""))
    guard_sdk_logs()
    started_at = clock.current().now()
    settings = Settings.from_env()
    try:
        decoded = decode_event(event)
        if CONTINUATION in decoded and not _authentic(decoded, settings, context):
            return {"Status": "REFUSED"}
        request_event, wrapper = _unwrap(decoded)
        urls = _answer_urls(request_event, settings)
    except Unanswerable as error:
        logger.error("request cannot be answered: nothing is done for it", extra={"reason": str(error)})
        raise
    try:
        wait = _read_wait(wrapper)
        request = parse_request(request_event)
    except InvalidRequest as error:
        logger.error("malformed request", extra={"reason": str(error)})
        answer = Answer("FAILED", partial_request(request_event).answer_id, reason=f"malformed request: {error}")
        return _Invocation(partial_request(request_event), settings, context, started_at, urls).deliver(answer)
    bind_request(
        request_type=request.request_type,
        request_id=request.request_id,
        stack_id=request.stack_id,
        logical_resource_id=request.logical_resource_id,
    )
    logger.info(
        "request received",
        extra={
            "hop": wait.hop if wait else 0,
            "response_url": redact_url(request.response_url),
            "intranet_response_url": redact_url(request.intranet_response_url),
            "allowed_response_urls": len(urls),
        },
    )
    if wait is None:  # the request's first invocation: what it shows of the platform, once per request
        _log_platform_facts(request, context)
    return _Invocation(request, settings, context, started_at, urls).run(wait, make_resource)


def _answer_urls(request_event: Mapping[str, object], settings: Settings) -> list[str]:
    response_url = request_event.get("ResponseURL")
    if not isinstance(response_url, str) or not response_url.strip():
        raise Unanswerable("the request has no ResponseURL, so no answer can be sent")
    intranet_url = request_event.get("IntranetResponseURL")
    urls = answer_urls(response_url, intranet_url if isinstance(intranet_url, str) else None, settings)
    if not urls:
        raise Unanswerable(f"no allowed response URL (ResponseURL host: {redact_url(response_url)})")
    return urls


def _authentic(event: Mapping[str, object], settings: Settings, context: object) -> bool:
    """Whether a continuation is this function's own (its seal verifies). A forged or tampered one is refused
    before anything is done for it; when the key cannot be read, the invocation fails, so that FC retries it."""
    try:
        check(event, settings, resolve_credentials(context))
    except NotAuthentic as error:
        logger.error("continuation refused: not authentic", extra={"reason": str(error)})
        return False
    except KeyUnavailable as error:
        logger.error("continuation not checked: the key cannot be read; FC retries it", extra={"reason": str(error)})
        raise
    return True


def _log_platform_facts(request: RosRequest, context: object) -> None:
    """The response URLs' scheme and host, and what the context says of the invocation. Never in the way of the
    answer: a context that cannot be read is only noted."""
    log_fact(
        "response_url",
        response_url=url_origin(request.response_url),
        intranet_response_url=url_origin(request.intranet_response_url),
    )
    try:
        fields = sorted(name for name in dir(context) if not name.startswith("_"))
        exposed = next((name for name in fields if "invoc" in name.lower()), None)
        invocation_type = str(getattr(context, exposed)) if exposed else "not in the context"
    except Exception as error:  # a property of the runtime's context that raises
        logger.warning("the invocation context could not be read", extra={"error": type(error).__name__})
        return
    log_fact("invocation", invocation_type=invocation_type, context_fields=fields)


def _unwrap(event: Mapping[str, object]) -> tuple[Mapping[str, object], Mapping[str, object] | None]:
    """The ROS request an event carries (itself, or the one inside a continuation), and the continuation."""
    wrapper = event.get(CONTINUATION)
    if wrapper is None:
        return event, None
    request = wrapper.get("Request") if isinstance(wrapper, Mapping) else None
    if not isinstance(wrapper, Mapping) or not isinstance(request, Mapping):
        raise Unanswerable("malformed continuation: it carries no ROS request")
    return request, wrapper


def _read_wait(wrapper: Mapping[str, object] | None) -> Wait | None:
    if wrapper is None:
        return None
    if wrapper.get("Version") not in READABLE_VERSIONS:
        raise InvalidRequest(f"continuation version {wrapper.get('Version')!r} is not supported")
    return Wait.from_json(wrapper.get("Wait"))


@dataclass
class _Invocation:
    """One handler call: the request, where answers may go, and how long this invocation may wait."""

    request: RosRequest
    settings: Settings
    context: object
    started_at: float
    urls: list[str]

    def run(self, wait: Wait | None, make_resource: MakeResource) -> dict[str, str]:
        request = self.request
        resource = make_resource(request, self.settings, resolve_credentials(self.context))
        let_go = self._let_go(resource) if wait is None else None
        if let_go is not None:
            return let_go
        wait = wait or self._begin()
        budget = self._budget()
        while True:
            observed = self._look(resource, wait)
            if isinstance(observed, dict):
                return observed
            wait, seen = observed
            decision = decide(wait, seen, clock.current().now(), budget)
            if isinstance(decision, LookAgain):
                logger.debug("looking again", extra={"delay_seconds": decision.delay})
                clock.current().sleep(decision.delay)
                wait = decision.wait
                continue
            if isinstance(decision, Stop):
                return _stopped(decision.reason)
            if isinstance(decision, HandOver):
                handed = self._hand_over(resource, decision)
                if handed is None:
                    return {"Status": "WAITING"}
                if isinstance(handed, Stop):
                    return _stopped(handed.reason)
                decision = handed
            receipt = self._claim_answer(decision.wait)
            if isinstance(receipt, Stop):
                return _stopped(receipt.reason)
            if not decision.ok and decision.discard:
                # Remove what it made before FAILED; unless it finished (look again) or is another chain's.
                left = resource.discard(request, decision.wait)
                if left == "usable":
                    self._release(receipt)
                    wait = decision.wait
                    continue
                if left == "not ours":
                    self._release(receipt)
                    return _stopped("another invocation owns the work")
            try:
                result = self._answer(resource, decision)
            except ProviderError:
                if not isinstance(receipt, str):
                    raise  # FC retries the run
                logger.warning("the answer's receipt will try again", extra={"task_id": receipt})
                return {"Status": "UNDELIVERED"}
            self._release(receipt)
            return result

    def _look(self, resource: Resource, wait: Wait) -> tuple[Wait, Seen] | dict[str, str]:
        """The next look; the invocation's result instead when ROS contradicts the request (nothing is done)."""
        try:
            return self._observe(resource, wait)
        except NotConfirmed as error:
            logger.error("request not confirmed by ROS: nothing is done for it", extra={"ros_says": str(error)})
            return {"Status": "NOT_CONFIRMED"}

    def _begin(self) -> Wait:
        now = clock.current().now()
        request = self.request
        chain = chain_of(request.request_id, request.request_type)
        creating = isinstance(request, CreateRequest)
        limit = self.settings.max_wait_seconds if creating else self.settings.cleanup_wait_seconds
        return replace(Wait.begin(now, limit, owner=chain), verified=not self.settings.verify_with_ros)

    def _let_go(self, resource: Resource) -> dict[str, str] | None:
        """A Delete of what never existed is answered SUCCESS at once: no ECS call, and nothing to ask ROS, as
        nothing is done whoever sent it."""
        request = self.request
        if not isinstance(request, DeleteRequest):
            return None
        reason = resource.nothing_to_delete(request)
        if reason is None:
            return None
        logger.info("nothing to delete", extra={"reason": reason})
        return self.deliver(Answer("SUCCESS", request.answer_id))

    def _confirm(self, wait: Wait) -> tuple[Wait, Seen | None]:
        """Ask ROS whether the request is its own, once per request (and again before a restart starts the work
        anew: ROS still creates the resource); a contradiction raises NotConfirmed, or, before a restart of a request
        confirmed before, fails it: ROS no longer creates the resource (a rollback, the stack's Delete)."""
        if wait.verified:
            return wait, None
        if not self.settings.verify_with_ros:
            if wait.attempt > 0:  # nobody can say ROS still creates the resource: starting anew could orphan a copy
                detail = "the work was taken away and is not started again: COPYIMAGE_VERIFY_WITH_ROS is off"
                return wait, Seen("failed", detail=detail)
            return wait, None
        verdict = verify(self.request, self.settings, resolve_credentials(self.context))
        if verdict.kind == "contradicted" and wait.attempt > 0:
            return wait, Seen("failed", detail=f"the work was taken away and is not started again: {verdict.detail}")
        if verdict.kind == "contradicted":
            raise NotConfirmed(verdict.detail)
        if verdict.kind == "unreachable":
            logger.warning("ROS cannot confirm the request now", extra={"reason": verdict.detail})
            return wait, Seen("unreachable", detail=verdict.detail)
        if verdict.kind == "refused":
            logger.error("ROS refused to confirm the request", extra={"reason": verdict.detail})
            return wait, Seen("failed", detail=verdict.detail)
        logger.info("request confirmed by ROS", extra={"detail": verdict.detail})
        return replace(wait, verified=True), None

    def _budget(self) -> Budget:
        function = getattr(self.context, "function", None)
        timeout = float(getattr(function, "timeout", None) or DEFAULT_FUNCTION_TIMEOUT)
        reserve = self.settings.deadline_margin_seconds + self.settings.ecs_call_bound
        latest = self.started_at + max(0.0, timeout - reserve)
        precision = self.settings.precision_seconds
        if not self.settings.can_defer:
            return Budget(latest, can_defer=False, precision_seconds=precision)
        return Budget(min(latest, self.started_at + self.settings.inline_wait_seconds), precision_seconds=precision)

    def _observe(self, resource: Resource, wait: Wait) -> tuple[Wait, Seen]:
        """Do the request's next step and report what it found; errors become ``failed`` or ``unreachable``."""
        request = self.request
        wait, unconfirmed = self._confirm(wait)
        if unconfirmed is not None:
            return wait, unconfirmed
        try:
            if isinstance(request, CreateRequest):
                if not wait.state:
                    begun = resource.start(request, wait)
                    if begun.kind != "pending":
                        return wait, begun
                    wait = replace(
                        wait,
                        state=dict(begun.state or {}),
                        accepts=tuple(dict.fromkeys((*wait.accepts, *begun.accepts))),
                        started_at=clock.current().now(),
                    )
                return wait, resource.look(request, wait)
            if isinstance(request, UpdateRequest):
                return wait, resource.update(request, wait)
            return wait, resource.delete(request, wait)
        except ProviderError as error:
            if error.transient:
                logger.warning("the service refused for now", extra={"error_code": error.code, "reason": str(error)})
                return wait, Seen("unreachable", detail=str(error))
            logger.warning("request failed", extra={"reason": str(error), "error_type": type(error).__name__})
            return wait, Seen("failed", detail=str(error))
        except Exception as error:  # a bug: still answer, and leave the trace in the log
            logger.exception("unexpected error")
            return wait, Seen(
                "failed",
                detail=f"internal error in the provider: {type(error).__name__}: {error} "
                f"(FC request {getattr(self.context, 'request_id', '')}; see the function's logs)",
            )

    def _hand_over(self, resource: Resource, decision: HandOver) -> Finish | Stop | None:
        """Schedule the next invocation, then mark the work; a failure to schedule fails the request, and a task
        of the next hop scheduled already (a twin's, an earlier try's) stops this run."""
        identity = self.settings.function
        assert identity is not None  # decide hands over only when the settings allow it
        try:
            invoke_later(
                identity,
                seal(continuation(self.request.raw, decision.wait), self.settings, resolve_credentials(self.context)),
                decision.delay,
                resolve_credentials(self.context),
                self.settings,
                task_id=_task_of(decision.wait),
            )
        except AlreadyScheduled:
            return Stop(f"the next look (hop {decision.wait.hop}) was scheduled by another run of this hop")
        except ProviderError as error:
            logger.error("could not schedule the next look", extra={"reason": str(error)})
            return Finish(False, decision.wait, detail=str(error), discard=True)
        logger.info("next look scheduled", extra={"delay_seconds": decision.delay, "hop": decision.wait.hop})
        if decision.claim is not None:
            _quietly("claim", lambda: resource.claim(self.request, decision.wait, decision.claim or ""))
        return None

    def _claim_answer(self, wait: Wait) -> str | Stop | None:
        """Claim a continuation's answer: schedule the chain's next hop as a receipt. Returns its
        task id,
        Stop when another run of this hop holds it (it answers), or None when nothing could be claimed (no
        self-invocation here, or FC refused otherwise: answer all the same, as no twin can be proved)."""
        identity = self.settings.function
        task = _task_of(replace(wait, hop=wait.hop + 1))
        if wait.hop == 0 or identity is None or task is None or not self.settings.can_defer:
            return None  # ROS's own delivery answers as it comes: each delivery of the request may be answered
        if identity.service:
            return None  # FC 2.0: fc2 cannot stop the receipt, which would answer again; twins may answer twice
        delay = int(min(MAX_DELAY, max(MIN_RECEIPT_SECONDS, self.settings.answer_bound + self.settings.ecs_call_bound)))
        following = replace(wait, hop=wait.hop + 1, due_at=clock.current().now() + delay)
        try:
            invoke_later(
                identity,
                seal(continuation(self.request.raw, following), self.settings, resolve_credentials(self.context)),
                delay,
                resolve_credentials(self.context),
                self.settings,
                task_id=task,
            )
        except AlreadyScheduled:
            return Stop(f"another run of hop {wait.hop} claimed the answer")
        except ProviderError as error:
            logger.warning("could not claim the answer; answering all the same", extra={"reason": str(error)})
            return None
        return task

    def _release(self, receipt: str | Stop | None) -> None:
        """The answer went out: the receipt is not needed (if it cannot be stopped, it runs and stops at a look)."""
        identity = self.settings.function
        if isinstance(receipt, str) and identity is not None:
            task = receipt
            _quietly("release", lambda: stop_task(identity, task, resolve_credentials(self.context), self.settings))

    def _answer(self, resource: Resource, decision: Finish) -> dict[str, str]:
        request = self.request
        if decision.ok:
            physical_id = decision.physical_id or _request_physical_id(request)
            answer = Answer("SUCCESS", physical_id, data=decision.data)
        else:
            answer = Answer("FAILED", _request_physical_id(request), reason=decision.detail or "failed")
        result = self.deliver(answer)
        if result.get("Delivery") == "delivered":
            _quietly("finish", lambda: resource.finish(request, decision.wait, delivered=answer.status == "SUCCESS"))
        return result

    def deliver(self, answer: Answer) -> dict[str, str]:
        """Send the one answer; raise when it could not be delivered, so that FC retries the invocation."""
        delivery = deliver_answer(response_body(self.request, answer), self.urls, self.settings)
        extra = {"status": answer.status, "physical_resource_id": answer.physical_resource_id, "reason": answer.reason}
        if delivery.outcome == "undelivered":
            logger.error("answer not delivered", extra={**extra, "detail": delivery.detail})
            raise ProviderError(delivery.detail)
        if delivery.outcome == "refused":
            # ROS stopped waiting: what this request made stays tagged, for the stack's rollback or Delete.
            logger.error("ROS refused the answer", extra={**extra, "detail": delivery.detail})
        else:
            logger.info("answered", extra=extra)
        return {
            "Status": answer.status,
            "PhysicalResourceId": answer.physical_resource_id,
            "Delivery": delivery.outcome,
        }


def _stopped(reason: str) -> dict[str, str]:
    logger.info("stopping without an answer", extra={"reason": reason})
    return {"Status": "STOPPED"}


def _task_of(wait: Wait) -> str | None:
    """FC's task id of the invocation that carries ``wait`` (None for a chain without an id: version 2)."""
    return task_id(wait.owner, wait.hop) if wait.owner else None


def _request_physical_id(request: RosRequest) -> str:
    if isinstance(request, UpdateRequest):
        return request.physical_resource_id
    if isinstance(request, DeleteRequest):
        return request.answer_id
    return request.failed_create_id


def _quietly(name: str, step: Callable[[], Any]) -> None:
    """Tidying around the answer never turns into a failure of the invocation."""
    try:
        step()
    except Exception:
        logger.exception("tidying failed", extra={"step": name})
