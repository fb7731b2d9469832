"""An ECS task runs a flow, and is stopped; the run's events tell both sides.

Run it from the repository root (it needs the ``aws`` extra and moto's server, both
in the ``dev`` extra)::

    python examples/ecs_observer.py

The script starts a local AWS endpoint (moto's server on 127.0.0.1) and creates
the SQS queue and the EventBridge rule the ECS observer reads from
(``EcsTaskObserver.create_queue``). A flow run makes a block call, then its ECS
task, tagged with the flow run's id, is stopped: moto's ECS emits no events, so
the script puts the "ECS Task State Change" event on the bus as ECS would. The
observer turns it into ``infra.ecs.task.stopped``, related to the flow run, and
the script prints the run's events in time order: the block call, then the
infrastructure's side of the story with the stopped reason.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta

from moto.server import ThreadedMotoServer

from blocks.aws import AwsClientParameters, AwsCredentials, EcsTaskObserver
from emitters import configure, flow_run, flush
from emitters.sql import SQLEventStore

STOPPED_REASON = "Essential container in task exited"


def start_tagged_task(credentials: AwsCredentials, run_id: str) -> dict[str, str]:
    """Start a task with run_task, tagged with the flow run's id."""
    ecs = credentials.get_client("ecs")
    cluster = ecs.create_cluster(clusterName="flows")["cluster"]["clusterArn"]
    ecs.register_task_definition(
        family="daily-orders",
        containerDefinitions=[{"name": "flow", "image": "flows:1", "memory": 512}],
    )
    ec2 = credentials.get_client("ec2")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)
    document = json.dumps({"instanceId": instance["Instances"][0]["InstanceId"]})
    ecs.register_container_instance(cluster="flows", instanceIdentityDocument=document)
    task = ecs.run_task(
        cluster="flows",
        taskDefinition="daily-orders",
        tags=[
            {"key": "eventblocks.io/flow-run-id", "value": run_id},
            {"key": "eventblocks.io/flow-run-name", "value": "daily-orders"},
        ],
    )["tasks"][0]
    return {"cluster": cluster, "task": task["taskArn"]}


def ecs_stops(credentials: AwsCredentials, task: dict[str, str]) -> None:
    """Put the task's STOPPED state change on the default bus, as ECS does."""
    stopped_at = datetime.now(UTC) + timedelta(seconds=1)
    detail = {
        "clusterArn": task["cluster"],
        "taskArn": task["task"],
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
        "launchType": "EC2",
        "stoppedReason": STOPPED_REASON,
        "stopCode": "EssentialContainerExited",
        "updatedAt": stopped_at.isoformat(),
        "containers": [{"name": "flow", "lastStatus": "STOPPED", "exitCode": 137}],
    }
    credentials.get_client("events").put_events(
        Entries=[
            {
                "Source": "aws.ecs",
                "DetailType": "ECS Task State Change",
                "Detail": json.dumps(detail),
            }
        ]
    )


def main() -> int:
    """Tell the story; return the exit status."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    home = tempfile.TemporaryDirectory()
    os.environ["EVENTBLOCKS_HOME"] = home.name
    store = SQLEventStore()  # the home database
    configure(emitters=[store])
    try:
        credentials = AwsCredentials(
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            region_name="eu-west-1",
            aws_client_parameters=AwsClientParameters(
                endpoint_url=f"http://{host}:{port}"
            ),
        )
        queue_url = EcsTaskObserver.create_queue(credentials)

        with flow_run("daily-orders") as run:
            credentials.get_client("s3")  # the flow's block calls
            task = start_tagged_task(credentials, run.id)
        ecs_stops(credentials, task)

        observer = EcsTaskObserver(credentials, queue_url, wait_seconds=1)
        stats = observer.run(once=True)
        flush()
        print(f"observer: {stats.line()}")

        print(f"\nEvents of flow run {run.id}, in time order:")
        events = store.events(flow_run=run.id, limit=None)
        for event in events:
            side = "infra" if event.event.startswith("infra.") else "block"
            print(f"  {side:<5} {event.occurred:%H:%M:%S.%f} {event.event}")
            if "stoppedReason" in event.payload:
                print(f"{'':8}{event.payload['stoppedReason']}")
        names = [e.event for e in events]
        if names[-1:] != ["infra.ecs.task.stopped"]:
            print("The task's stop was not stored.", file=sys.stderr)
            return 1
        return 0
    finally:
        configure()
        server.stop()
        home.cleanup()


if __name__ == "__main__":
    sys.exit(main())
