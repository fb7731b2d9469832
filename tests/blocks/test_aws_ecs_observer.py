"""EcsTaskObserver against moto's threaded server: a real EventBridge rule feeding a
real SQS queue, a task started with run_task, its state changes put with put_events
(moto's ECS emits none itself), stored once in the SQL event store."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from blocks.aws import AwsCredentials, EcsTaskObserver
from emitters import Emitter, Event, configure, observed_event_id
from emitters.sql import SQLEventStore

FLOW_RUN = "0192f0c1-7d2e-7a3b-9c4d-5e6f7a8b9c0d"


@pytest.fixture
def creds(
    clean_aws: None, make_credentials: Callable[..., AwsCredentials], moto_url: str
) -> Iterator[AwsCredentials]:
    """Credentials on a freshly reset moto server."""
    with make_credentials(moto_url, aws_access_key_id="AKIAOBSERVER") as credentials:
        yield credentials


def run_tagged_task(creds: AwsCredentials, tags: dict[str, str]) -> dict[str, Any]:
    """Start a task with run_task on a new cluster, tagged with ``tags``."""
    ecs = creds.get_client("ecs")
    cluster = ecs.create_cluster(clusterName="flows")["cluster"]["clusterArn"]
    ecs.register_task_definition(
        family="etl",
        containerDefinitions=[{"name": "main", "image": "etl:1", "memory": 512}],
    )
    ec2 = creds.get_client("ec2")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]
    document = json.dumps({"instanceId": instance["InstanceId"]})
    ecs.register_container_instance(cluster="flows", instanceIdentityDocument=document)
    task = ecs.run_task(
        cluster="flows",
        taskDefinition="etl",
        count=1,
        tags=[{"key": k, "value": v} for k, v in tags.items()],
    )["tasks"][0]
    task["clusterArn"] = cluster
    return task


def put_state_change(
    creds: AwsCredentials, task: dict[str, Any], status: str, **extra: Any
) -> None:
    """Put the task's state change on the default bus, as ECS would."""
    detail = {
        "clusterArn": task["clusterArn"],
        "taskArn": task["taskArn"],
        "taskDefinitionArn": task["taskDefinitionArn"],
        "lastStatus": status,
        "desiredStatus": "STOPPED",
        "launchType": "EC2",
        "group": "family:etl",
        "updatedAt": "2026-03-01T12:00:05.123Z",
        "containers": [
            {"name": "main", "lastStatus": status, "exitCode": 137, "reason": "OOM"}
        ],
        **extra,
    }
    entry = {
        "Source": "aws.ecs",
        "DetailType": "ECS Task State Change",
        "Detail": json.dumps(detail),
        "Resources": [task["taskArn"]],
    }
    result = creds.get_client("events").put_events(Entries=[entry])
    assert result["FailedEntryCount"] == 0


def test_stopped_task_is_stored_related_to_its_flow_run(
    creds: AwsCredentials, store: SQLEventStore
) -> None:
    """The stopped task becomes infra.ecs.task.stopped of its flow run, with the
    stopped reason, at ECS's own time; the queue is empty afterwards."""
    url = EcsTaskObserver.create_queue(creds)
    task = run_tagged_task(
        creds,
        {
            "eventblocks.io/flow-run-id": FLOW_RUN,
            "eventblocks.io/flow-run-name": "nightly-etl",
        },
    )
    put_state_change(
        creds,
        task,
        "STOPPED",
        stoppedReason="Essential container in task exited",
        stopCode="EssentialContainerExited",
    )
    observer = EcsTaskObserver(creds, url, wait_seconds=1)
    stats = observer.run(once=True)
    assert (stats.seen, stats.stored, stats.related, stats.set_aside) == (1, 1, 1, 0)

    [event] = store.events(flow_run=FLOW_RUN)
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    assert event.event == "infra.ecs.task.stopped"
    assert event.resource.id == f"ecs-task.{task_id}"
    assert event.resource.name == task["taskArn"]
    assert event.resource.labels["cluster"] == task["clusterArn"]
    assert event.resource.labels["launch-type"] == "EC2"
    assert event.payload["stoppedReason"] == "Essential container in task exited"
    assert event.payload["stopCode"] == "EssentialContainerExited"
    assert event.payload["containers"][0]["exitCode"] == 137
    assert event.occurred.isoformat() == "2026-03-01T12:00:05.123000+00:00"
    [run] = event.related_by_role("flow-run")
    assert (run.id, run.name, run.labels) == (
        f"flow-run.{FLOW_RUN}",
        "nightly-etl",
        {"source": "eventblocks"},
    )
    assert event.id == observed_event_id("aws.ecs", event.payload["source_event_id"])
    sqs = creds.get_client("sqs")
    left = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    assert "Messages" not in left


def test_redelivered_message_is_stored_once(
    creds: AwsCredentials, store: SQLEventStore
) -> None:
    """The same EventBridge event delivered twice (two messages) is stored once;
    Prefect's tags relate it with source=prefect."""
    url = EcsTaskObserver.create_queue(creds)
    assert EcsTaskObserver.create_queue(creds) == url  # idempotent
    task = run_tagged_task(
        creds,
        {"prefect.io/flow-run-id": FLOW_RUN, "prefect.io/flow-run-name": "brave-fox"},
    )
    put_state_change(creds, task, "RUNNING")
    sqs = creds.get_client("sqs")
    [message] = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    sqs.send_message(QueueUrl=url, MessageBody=message["Body"])  # the redelivery
    observer = EcsTaskObserver(creds, url, wait_seconds=1)
    observer.run(once=True)  # the first copy comes back after its visibility timeout
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )
    stats = observer.run(once=True)
    assert stats.seen == 2
    events = store.events(flow_run=FLOW_RUN)
    assert [e.event for e in events] == ["infra.ecs.task.running"]
    [run] = events[0].related_by_role("flow-run")
    assert (run.name, run.labels) == ("brave-fox", {"source": "prefect"})
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)


def test_message_that_is_not_an_ecs_event_is_set_aside(
    creds: AwsCredentials, store: SQLEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A message that is not an ECS task state change is logged and moved to the
    dead-letter queue; nothing is stored and the queue is empty."""
    sqs = creds.get_client("sqs")
    url = sqs.create_queue(QueueName="events")["QueueUrl"]
    dlq = sqs.create_queue(QueueName="events-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="not json at all")
    sqs.send_message(
        QueueUrl=url,
        MessageBody=json.dumps({"source": "aws.ec2", "detail-type": "EC2 Spot"}),
    )
    observer = EcsTaskObserver(creds, url, dead_letter_queue_url=dlq, wait_seconds=1)
    with caplog.at_level(logging.WARNING, logger="blocks.aws.ecs"):
        stats = observer.run(once=True)
    assert (stats.seen, stats.stored, stats.set_aside) == (2, 0, 2)
    assert "not JSON" in caplog.text
    assert "aws.ec2" in caplog.text
    assert store.events(name="infra.*") == []
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    moved = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in moved) == [
        "not json at all",
        json.dumps({"source": "aws.ec2", "detail-type": "EC2 Spot"}),
    ]


def test_unreachable_queue_backs_off_and_counts_errors(
    creds: AwsCredentials, store: SQLEventStore
) -> None:
    """A queue that does not exist is an error, counted; --once gives up after
    its retries instead of looping."""
    sqs = creds.get_client("sqs")
    url = sqs.create_queue(QueueName="gone")["QueueUrl"]
    sqs.delete_queue(QueueUrl=url)
    observer = EcsTaskObserver(creds, url, wait_seconds=0)
    observer.run(once=True)
    assert observer.stats.errors >= 2
    assert observer.stats.stored == 0


def test_bad_arguments_name_the_field(creds: AwsCredentials) -> None:
    """A queue URL or wait that cannot be right is refused, naming it."""
    with pytest.raises(ValueError, match="queue_url"):
        EcsTaskObserver(creds, "my-queue")
    with pytest.raises(ValueError, match="wait_seconds"):
        EcsTaskObserver(creds, "https://sqs.example/q", wait_seconds=30)


def test_event_ids_are_uuid5_of_the_source_event() -> None:
    """observed_event_id is deterministic per source and parts."""
    a = observed_event_id("aws.ecs", "e1")
    assert a == observed_event_id("aws.ecs", "e1")
    assert a.version == 5
    assert a != observed_event_id("aws.ecs", "e2")
    assert isinstance(a, uuid.UUID)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "blocks", "observe", *args]


def _queued(creds: AwsCredentials, url: str) -> int:
    attrs = creds.get_client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
        ],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


def test_cli_observe_ecs_once_stores_the_run_event(
    creds: AwsCredentials, eventblocks_home: Path
) -> None:
    """`eventblocks observe ecs --once` with saved credentials stores the stopped
    task in the home database, found by its flow run, and prints a status line."""
    creds.save("ops")
    url = EcsTaskObserver.create_queue(creds)
    task = run_tagged_task(creds, {"eventblocks.io/flow-run-id": FLOW_RUN})
    put_state_change(creds, task, "STOPPED", stoppedReason="Task failed to start")
    done = subprocess.run(
        _cli(
            "ecs", "--queue-url", url, "--credentials", "aws-credentials/ops", "--once"
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "observe ecs: seen 1, stored 1, related to runs 1, errors 0" in done.stderr
    store = SQLEventStore(f"sqlite:///{eventblocks_home / 'eventblocks.db'}")
    [event] = store.events(flow_run=FLOW_RUN)
    assert event.payload["stoppedReason"] == "Task failed to start"
    assert creds.aws_secret_access_key is not None
    secret = creds.aws_secret_access_key.get_secret_value()
    assert secret not in done.stdout + done.stderr


def test_cli_observe_ecs_refuses_a_bad_reference(creds: AwsCredentials) -> None:
    """--credentials must name saved aws-credentials; a wrong slug is a usage error."""
    done = subprocess.run(
        _cli(
            "ecs", "--queue-url", "http://q", "--credentials", "s3-bucket/x", "--once"
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "expected aws-credentials/NAME" in done.stderr


@pytest.mark.slow
def test_killed_observer_restarted_stores_each_change_once(
    stored_infra_events: Callable[[], int],
    creds: AwsCredentials,
    eventblocks_home: Path,
) -> None:
    """An observer killed (SIGKILL) while the queue still holds messages, started
    again, stores every change exactly once and leaves the queue empty."""
    creds.save("ops")
    url = EcsTaskObserver.create_queue(creds)
    sqs = creds.get_client("sqs")
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "2"})
    task = run_tagged_task(creds, {"eventblocks.io/flow-run-id": FLOW_RUN})
    total = 150
    for start in range(0, total, 10):
        entries = [
            {
                "Source": "aws.ecs",
                "DetailType": "ECS Task State Change",
                "Detail": json.dumps(
                    {
                        "clusterArn": task["clusterArn"],
                        "taskArn": task["taskArn"],
                        "lastStatus": "RUNNING",
                        "version": n,
                        "updatedAt": "2026-03-01T12:00:05Z",
                    }
                ),
            }
            for n in range(start, start + 10)
        ]
        assert (
            creds.get_client("events").put_events(Entries=entries)["FailedEntryCount"]
            == 0
        )
    command = _cli("ecs", "--queue-url", url, "--credentials", "aws-credentials/ops")
    first = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while stored_infra_events() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    killed_at = stored_infra_events()
    assert 0 < killed_at < total, "the observer was not killed in the middle"
    assert _queued(creds, url) > 0
    time.sleep(2.5)  # the messages it held come back after the visibility timeout
    done = subprocess.run(
        [*command, "--once"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    store = SQLEventStore(f"sqlite:///{eventblocks_home / 'eventblocks.db'}")
    events = store.events(flow_run=FLOW_RUN, limit=None)
    assert len(events) == total
    assert len({e.id for e in events}) == total
    assert _queued(creds, url) == 0


class _Down(Emitter):
    """A sink whose collector is down: every batch raises."""

    def emit_batch(self, events: Sequence[Event]) -> None:
        """Refuse the batch."""
        raise ConnectionError("the store is down")


def test_undelivered_events_leave_their_messages_in_the_queue(
    creds: AwsCredentials, tmp_path: Path
) -> None:
    """While the sink fails, the observer deletes nothing (the error is counted);
    once the store is back, the message comes again and is stored once."""
    url = EcsTaskObserver.create_queue(creds)
    sqs = creds.get_client("sqs")
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "1"})
    task = run_tagged_task(creds, {"eventblocks.io/flow-run-id": FLOW_RUN})
    put_state_change(creds, task, "STOPPED", stoppedReason="Spot interruption")
    configure(emitters=[_Down()])
    down = EcsTaskObserver(creds, url, wait_seconds=1, flush_timeout=5)
    with pytest.raises(RuntimeError, match="did not confirm"):
        down.poll()
    assert (down.stats.seen, down.stats.stored, down.stats.errors) == (1, 0, 1)
    assert _queued(creds, url) == 1

    store = SQLEventStore(f"sqlite:///{tmp_path / 'events.db'}")
    configure(emitters=[store])
    time.sleep(1.2)  # the visibility timeout
    stats = EcsTaskObserver(creds, url, wait_seconds=1).run(once=True)
    assert stats.stored == 1
    [event] = store.events(flow_run=FLOW_RUN)
    assert event.payload["stoppedReason"] == "Spot interruption"
    assert _queued(creds, url) == 0
