"""The custom resource framework: parse the request, do the work, always answer exactly once.

Reads like the protocol: decode -> parse -> (Create | Update | Delete) -> answer. Any failure becomes a
FAILED answer with a reason. The invocation itself fails only for a request without a usable ResponseURL,
or when the answer could not be delivered after every try (so that FC retries an asynchronous one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

from copyimage.config import Settings
from copyimage.credentials import Credentials, resolve_credentials
from copyimage.errors import (
    CopyFailed,
    CopyVanished,
    Deferred,
    EcsError,
    InvalidRequest,
    ProviderError,
    ReplacementRequired,
    ResponseRefused,
    Stale,
)
from copyimage.images import EcsImages
from copyimage.logs import bind_request, guard_sdk_logs, logger, redact_url
from copyimage.outbound import deliver_answer, invoke_later
from copyimage.properties import (
    CopyImageProperties,
    is_image_id,
    parse_delete_options,
    parse_properties,
    replacement_changes,
)
from copyimage.protocol import (
    Answer,
    RosRequest,
    decode_event,
    failed_create_id,
    parse_request,
    response_body,
    response_url_of,
)
from copyimage.resource import CopyImageResource
from copyimage.waiting import (
    Budget,
    CopyWait,
    WaitState,
    continuation_payload,
    continuation_state,
    first_waiter,
    wrapped_request,
)

DEFAULT_FUNCTION_TIMEOUT = 60.0
WAITING, SUPERSEDED = "WAITING", "SUPERSEDED"  # what an invocation that does not answer returns


@dataclass
class Outcome:
    """What to tell ROS, and what to do once ROS took the answer or refused it."""

    answer: Answer | None  # None: nothing to say in this invocation
    note: str = ""  # why there is no answer: WAITING or SUPERSEDED
    on_delivered: Callable[[], None] | None = None
    on_refused: Callable[[], None] | None = None


@dataclass
class Invocation:
    """Everything one handler call works with."""

    settings: Settings
    context: object
    started_at: float
    request: RosRequest
    state: WaitState | None  # set when this invocation continues an earlier one's wait
    fc_request_id: str = field(default="")

    @cached_property
    def credentials(self) -> Credentials:
        return resolve_credentials(self.context)

    @cached_property
    def resource(self) -> CopyImageResource:
        images = EcsImages(self.settings, self.credentials)
        return CopyImageResource(images, self.request, self.settings.clock.sleep)

    def budget(self) -> Budget:
        function = getattr(self.context, "function", None)
        timeout = float(getattr(function, "timeout", None) or DEFAULT_FUNCTION_TIMEOUT)
        return Budget.for_invocation(
            self.started_at,
            timeout,
            reserve=self.settings.deadline_margin_seconds + self.settings.ecs_call_bound,
            inline_wait=self.settings.inline_wait_seconds,
            can_defer=self.settings.can_defer,
        )


def handle(event: object, context: object) -> dict:
    """FC entry point (see index.py)."""
    settings = Settings.from_env()
    started_at = settings.clock.now()
    fc_request_id = str(getattr(context, "request_id", "") or "")
    guard_sdk_logs()
    try:
        payload = decode_event(event)
        raw_request = wrapped_request(payload)
        response_url_of(raw_request)
    except InvalidRequest as error:
        logger.error("request cannot be answered", extra={"reason": str(error), "fc_request_id": fc_request_id})
        raise
    try:
        state = continuation_state(payload)
        request = parse_request(raw_request)
    except InvalidRequest as error:
        return _answer_unparsable(raw_request, str(error), settings)

    bind_request(
        request_type=request.request_type,
        request_id=request.request_id,
        stack_id=request.stack_id,
        logical_resource_id=request.logical_resource_id,
        fc_request_id=fc_request_id,
    )
    logger.info(
        "request received",
        extra={"continuation": state.continuations if state else 0, "response_url": redact_url(request.response_url)},
    )
    invocation = Invocation(settings, context, started_at, request, state, fc_request_id)
    outcome = _run(invocation)
    if outcome.answer is None:
        return {"Status": outcome.note}
    _deliver(invocation, outcome)
    return {"Status": outcome.answer.status, "PhysicalResourceId": outcome.answer.physical_resource_id}


def _run(invocation: Invocation) -> Outcome:
    """Do the request's work; every error becomes a FAILED answer here."""
    request = invocation.request
    try:
        if request.request_type == "Create":
            return _create(invocation)
        if request.request_type == "Update":
            return Outcome(_update(invocation))
        return Outcome(_delete(invocation))
    except ProviderError as error:
        logger.warning("request failed", extra={"reason": str(error), "error_type": type(error).__name__})
        return Outcome(_failed(request, str(error)))
    except Exception as error:  # a bug: still answer, and leave the trace in the log
        logger.exception("unexpected error")
        reason = (
            f"internal error in the provider: {type(error).__name__}: {error} "
            f"(FC request {invocation.fc_request_id}; see the function's logs)"
        )
        return Outcome(_failed(request, reason))


def _failed(request: RosRequest, reason: str) -> Answer:
    physical_id = request.physical_resource_id or failed_create_id(request.request_id)
    return Answer("FAILED", physical_id, reason=reason)


def _success(physical_id: str, image_id: str | None = None) -> Answer:
    return Answer("SUCCESS", physical_id, data={"ImageId": image_id} if image_id else None)


# --- Create --------------------------------------------------------------------------------------------


def _create(invocation: Invocation) -> Outcome:
    request = invocation.request
    settings = invocation.settings
    props = parse_properties(request.resource_properties, request.region_id)
    resource = invocation.resource
    state = invocation.state or WaitState(began_at=invocation.started_at)
    wait = CopyWait(
        now=settings.clock.now,
        sleep=settings.clock.sleep,
        look=lambda image_id: resource.look(props, image_id),
        check=lambda image_id, view: resource.check(props, image_id, view),
        mark_waiter=lambda image_id, token: resource.mark_waiter(props, image_id, token),
        schedule=lambda next_state, delay: _schedule(invocation, next_state, delay),
        budget=invocation.budget(),
        max_wait=settings.max_wait_seconds,
        can_defer=settings.can_defer,
    )
    try:
        if state.image_id is None:
            state = _start_copy(invocation, props, wait, state)
        view = wait.until_available(state)
    except Deferred as pending:
        logger.info("waiting continues in a later invocation", extra={"detail": str(pending)})
        return Outcome(None, note=WAITING)
    except Stale as stale:
        logger.info("another invocation owns this wait; stopping", extra={"detail": str(stale)})
        return Outcome(None, note=SUPERSEDED)
    except CopyVanished:
        raise  # nothing left to remove
    except Exception:
        # Whatever failed, nothing this Create started may stay behind.
        resource.discard(props, state.image_id, state.tokens or (first_waiter(request.request_id),))
        raise
    logger.info("copy available", extra={"image_id": view.image_id})
    return Outcome(
        _success(view.image_id, view.image_id),
        on_delivered=lambda: resource.clear_waiter(props, view.image_id),
        on_refused=lambda: resource.discard_if_unanswered(props, view.image_id, state.tokens),
    )


def _start_copy(invocation: Invocation, props: CopyImageProperties, wait: CopyWait, state: WaitState) -> WaitState:
    """CopyImage; throttling or a transient error that outlasts the retries is tried again later."""
    waiter = first_waiter(invocation.request.request_id)
    try:
        image_id = invocation.resource.start_copy(props, waiter)
    except EcsError as error:
        if error.quota:
            raise CopyFailed(
                f"{error}. The account's custom image quota in {props.destination_region_id} is used up: "
                "delete images you no longer need, or ask for a higher quota, then retry"
            ) from None
        waited = invocation.settings.clock.now() - state.began_at
        if not (error.transient and invocation.settings.can_defer and waited < invocation.settings.max_wait_seconds):
            raise
        logger.warning("ECS cannot start the copy yet; retrying later", extra={"error_code": error.code})
        wait.retry_later(state, error)
    return replace(state, image_id=image_id, copy_started_at=invocation.settings.clock.now(), waiter=waiter)


def _schedule(invocation: Invocation, state: WaitState, delay: float) -> None:
    identity = invocation.settings.function
    assert identity is not None
    payload = continuation_payload(invocation.request.raw, state)
    invoke_later(identity, payload, delay, invocation.credentials, invocation.settings)
    logger.info("next look scheduled", extra={"delay_seconds": round(delay), "continuation": state.continuations})


# --- Update and Delete ---------------------------------------------------------------------------------


def _update(invocation: Invocation) -> Answer:
    request = invocation.request
    new = parse_properties(request.resource_properties, request.region_id)
    old = parse_properties(request.old_resource_properties, request.region_id)
    changed = replacement_changes(old, new)
    if changed:
        raise ReplacementRequired(changed)
    physical_id = request.physical_resource_id
    if not is_image_id(physical_id):
        raise CopyFailed(
            f"this resource has no image to update (PhysicalResourceId {physical_id!r}): its Create failed"
        )
    actions = invocation.resource.update(old, new, physical_id)
    logger.info("copy updated", extra={"image_id": physical_id, "actions": actions})
    return _success(physical_id, physical_id)


def _delete(invocation: Invocation) -> Answer:
    request = invocation.request
    physical_id = request.physical_resource_id or failed_create_id(request.request_id)
    if not is_image_id(physical_id):
        try:
            parse_properties(request.resource_properties, request.region_id)
        except ProviderError as error:
            # The Create refused these properties before any ECS call: there is nothing to remove.
            logger.info("nothing to delete: the properties never validated", extra={"reason": str(error)})
            return _success(physical_id)
    options = parse_delete_options(request.resource_properties)
    if options.retain_on_delete and is_image_id(physical_id):
        logger.info("copy retained (RetainOnDelete)", extra={"image_id": physical_id})
        return _success(physical_id, physical_id)
    removed = invocation.resource.delete(options, physical_id)
    logger.info("delete done", extra={"removed": removed, "looked_up_by_tags": not is_image_id(physical_id)})
    return _success(physical_id)


# --- answering -----------------------------------------------------------------------------------------


def _deliver(invocation: Invocation, outcome: Outcome) -> None:
    request = invocation.request
    answer = outcome.answer
    assert answer is not None
    body = response_body(request, answer)
    try:
        deliver_answer(body, request.response_url, request.intranet_response_url, invocation.settings)
    except ResponseRefused as refused:
        logger.error("ROS refused the answer", extra={"reason": str(refused), "status": answer.status})
        _after_answer("on_refused", outcome.on_refused)
        return
    except ProviderError as undelivered:
        logger.error("answer not delivered", extra={"reason": str(undelivered), "status": answer.status})
        raise  # FC retries an asynchronous invocation; the request is answered again then
    logger.info(
        "answered",
        extra={"status": answer.status, "physical_resource_id": answer.physical_resource_id, "reason": answer.reason},
    )
    _after_answer("on_delivered", outcome.on_delivered)


def _after_answer(name: str, hook: Callable[[], None] | None) -> None:
    """Tidying after the answer never turns into a failure of the invocation: ROS already has its answer."""
    if hook is None:
        return
    try:
        hook()
    except Exception:
        logger.exception("tidying after the answer failed", extra={"hook": name})


def _answer_unparsable(raw: Mapping, reason: str, settings: Settings) -> dict:
    """A request with a ResponseURL but other fields missing still gets a FAILED answer."""
    logger.error("malformed request", extra={"reason": reason})

    def text(name: str) -> str:
        value = raw.get(name)
        return value if isinstance(value, str) else ""

    request = RosRequest(
        request_type=text("RequestType"),
        response_url=text("ResponseURL"),
        intranet_response_url=text("IntranetResponseURL") or None,
        stack_id=text("StackId"),
        stack_name=text("StackName"),
        request_id=text("RequestId"),
        logical_resource_id=text("LogicalResourceId"),
        region_id=text("RegionId"),
        resource_properties=None,
        physical_resource_id=text("PhysicalResourceId") or None,
    )
    answer = _failed(request, f"malformed request: {reason}")
    try:
        deliver_answer(response_body(request, answer), request.response_url, request.intranet_response_url, settings)
    except ResponseRefused as refused:
        logger.error("ROS refused the answer", extra={"reason": str(refused)})
    return {"Status": "FAILED"}
