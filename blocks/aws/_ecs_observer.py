"""``EcsTaskObserver``: ECS task state changes from an SQS queue, as events related
to the flow run each task ran.

EventBridge routes "ECS Task State Change" events to an SQS queue (see
:meth:`EcsTaskObserver.create_queue`). The observer long-polls the queue, reads
each message, relates it to the flow run named by the task's tags
(``DescribeTasks(include=["TAGS"])``, cached per task), emits the event with an id
made from EventBridge's own event id, and deletes the messages only once
``emitters.flush()`` confirmed every sink took them: delivery is at least once, and
the stores, idempotent by event id, keep each change once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from blocks._observers import ObserverStats, RunLoop
from blocks.aws._credentials import AwsCredentials
from blocks.aws._ecs_events import ECS_DETAIL_TYPE, NotAnEcsEvent, parse_message
from emitters import Event, emit_event, flush, observed_event_id, related_runs

__all__ = ["EcsTaskObserver"]

log = logging.getLogger("blocks.aws.ecs")


class EcsTaskObserver:
    """Turns ECS task state changes, routed by EventBridge to SQS, into events.

    Each change becomes ``infra.ecs.task.<status>`` (``running``, ``stopped``...)
    about ``ecs-task.<task id>``, at the time ECS recorded it, related to the flow
    run (and task run) that the task's tags name: ``eventblocks.io/flow-run-id``
    or Prefect's ``prefect.io/flow-run-id``. A message that is not such an event
    is logged and set aside: moved to ``dead_letter_queue_url`` when one is given,
    else deleted.

    Example:
        >>> from blocks.aws import AwsCredentials, EcsTaskObserver
        >>> observer = EcsTaskObserver(
        ...     AwsCredentials(region_name="eu-west-1"),
        ...     "https://sqs.eu-west-1.amazonaws.com/123456789012/ecs-events",
        ... )
        >>> observer.run(once=True)  # doctest: +SKIP

    Args:
        credentials: The AWS credentials the SQS and ECS clients are made from.
        queue_url: The SQS queue EventBridge sends the task state changes to.
        dead_letter_queue_url: Where messages that cannot be read go; None
            deletes them after logging.
        wait_seconds: How long one receive waits for messages (long polling,
            0 to 20).
        flush_timeout: Seconds to wait for the sinks before a batch counts as
            not delivered (its messages come back after the visibility timeout).
        tag_cache_size: How many tasks' tags to keep.

    Raises:
        ValueError: ``queue_url`` is empty or ``wait_seconds`` out of range.
    """

    def __init__(
        self,
        credentials: AwsCredentials,
        queue_url: str,
        *,
        dead_letter_queue_url: str | None = None,
        wait_seconds: int = 20,
        flush_timeout: float = 30.0,
        tag_cache_size: int = 1024,
    ) -> None:
        if not isinstance(queue_url, str) or not queue_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError(f"queue_url must be an SQS queue URL, not {queue_url!r}")
        if isinstance(wait_seconds, bool) or not 0 <= wait_seconds <= 20:
            raise ValueError(f"wait_seconds must be 0 to 20, not {wait_seconds!r}")
        self.credentials = credentials
        self.queue_url = queue_url
        self.dead_letter_queue_url = dead_letter_queue_url
        self.wait_seconds = wait_seconds
        self.flush_timeout = flush_timeout
        self.stats = ObserverStats()
        self.busy = False
        """True while a batch of received messages is being handled."""
        self._tags: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._tag_cache_size = tag_cache_size

    def _client(self, service: str) -> Any:
        # The credentials' shared client, without a get_client event per poll.
        return self.credentials._clients().get(service, self.credentials)

    @classmethod
    def create_queue(
        cls,
        credentials: AwsCredentials,
        *,
        cluster_arn: str | None = None,
        queue_name: str = "eventblocks-ecs-task-events",
        rule_name: str = "eventblocks-ecs-task-events",
    ) -> str:
        """Create (or update) the SQS queue and the EventBridge rule feeding it.

        The rule matches ``aws.ecs`` "ECS Task State Change" events (of one
        cluster when ``cluster_arn`` is given) and targets the queue; the queue's
        policy lets EventBridge send to it from that rule only. Calling it again
        changes nothing.

        Returns:
            The queue's URL, for ``EcsTaskObserver(credentials, url)``.
        """
        sqs = credentials.get_client("sqs")
        events = credentials.get_client("events")
        url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        pattern: dict[str, Any] = {
            "source": ["aws.ecs"],
            "detail-type": [ECS_DETAIL_TYPE],
        }
        if cluster_arn:
            pattern["detail"] = {"clusterArn": [cluster_arn]}
        rule_arn = events.put_rule(
            Name=rule_name,
            EventPattern=json.dumps(pattern),
            State="ENABLED",
            Description="ECS task state changes for eventblocks' observer",
        )["RuleArn"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "eventblocks-ecs-task-events",
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
        sqs.set_queue_attributes(
            QueueUrl=url, Attributes={"Policy": json.dumps(policy)}
        )
        events.put_targets(
            Rule=rule_name, Targets=[{"Id": "eventblocks-sqs", "Arn": queue_arn}]
        )
        return str(url)

    def _task_tags(self, cluster_arn: str, task_arn: str) -> dict[str, str]:
        cached = self._tags.get(task_arn)
        if cached is not None:
            self._tags.move_to_end(task_arn)
            return cached
        ecs = self._client("ecs")
        kwargs: dict[str, Any] = {"tasks": [task_arn], "include": ["TAGS"]}
        if cluster_arn:
            kwargs["cluster"] = cluster_arn
        found = ecs.describe_tasks(**kwargs).get("tasks") or []
        tags = {
            str(t["key"]): str(t["value"])
            for t in (found[0].get("tags") or [] if found else [])
            if "key" in t and "value" in t
        }
        if found:  # a task ECS no longer knows is asked again next time
            self._tags[task_arn] = tags
            while len(self._tags) > self._tag_cache_size:
                self._tags.popitem(last=False)
        return tags

    def _set_aside(self, message: dict[str, Any], why: str) -> None:
        self.stats.set_aside += 1
        log.warning("set aside SQS message %s: %s", message.get("MessageId", "?"), why)
        if self.dead_letter_queue_url:
            sqs = self._client("sqs")
            sqs.send_message(
                QueueUrl=self.dead_letter_queue_url, MessageBody=message["Body"]
            )

    def handle(self, messages: list[dict[str, Any]]) -> bool:
        """Emit the events of received messages, deliver them, delete the messages.

        Returns:
            True if the messages were delivered and deleted; False if the sinks
            did not confirm delivery in time (the messages stay in the queue and
            come back after its visibility timeout).
        """
        done: list[dict[str, Any]] = []
        emitted: list[Event] = []
        for message in messages:
            self.stats.seen += 1
            try:
                change = parse_message(message.get("Body", ""))
            except NotAnEcsEvent as exc:
                self._set_aside(message, str(exc))
                done.append(message)
                continue
            tags = self._task_tags(change.cluster_arn, change.task_arn)
            emitted.append(
                emit_event(
                    change.name,
                    change.resource,
                    related=related_runs(tags),
                    payload=change.payload,
                    id=observed_event_id("aws.ecs", change.source_id),
                    occurred=change.occurred,
                    context=False,
                )
            )
            done.append(message)
        if emitted and not flush(self.flush_timeout):
            self.stats.errors += 1
            log.warning(
                "the sinks did not confirm %d ECS events: their messages stay queued",
                len(emitted),
            )
            return False
        self.stats.delivered(emitted)
        if done:
            sqs = self._client("sqs")
            for start in range(0, len(done), 10):
                sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(done[start : start + 10])
                    ],
                )
        return True

    def poll(self, wait_seconds: int | None = None) -> int:
        """Receive up to ten messages (waiting at most ``wait_seconds``) and
        handle them; return how many were received.

        Raises:
            botocore.exceptions.ClientError: SQS or ECS refused a call.
        """
        sqs = self._client("sqs")
        wait = self.wait_seconds if wait_seconds is None else wait_seconds
        messages = sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
        ).get("Messages", [])
        if messages:
            self.busy = True
            try:
                if not self.handle(messages):
                    raise RuntimeError("the sinks did not confirm delivery")
            finally:
                self.busy = False
        return len(messages)

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        once: bool = False,
        status: Callable[[ObserverStats], None] | None = None,
        status_every: float = 60.0,
    ) -> ObserverStats:
        """Poll until ``stop`` is set (or, with ``once``, until the queue is empty).

        Errors are logged and counted, and polling backs off (1 s doubling to a
        minute) until a poll succeeds. The batch in hand is finished before
        ``stop`` is honoured.

        Args:
            stop: Set it (from a signal handler, another thread) to stop.
            once: Handle what is in the queue now and return.
            status: Called with the counters every ``status_every`` seconds.
            status_every: Seconds between two status calls.

        Returns:
            The counters.
        """
        loop = RunLoop(self.stats, log, "ECS observer", "retrying", once_failures=2)
        loop.run(
            lambda: self.poll(1 if once else None) == 0,
            stop or threading.Event(),
            once=once,
            status=status,
            status_every=status_every,
        )
        flush(self.flush_timeout)
        return self.stats
