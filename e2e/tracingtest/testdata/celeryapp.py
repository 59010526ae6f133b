"""A Celery app on both sides of a wasmrouter: `python3 celeryapp.py publish MARKER` sends a
task with W3C trace context in its headers (as OpenTelemetry's Celery instrumentation writes it)
to the router's source exchange; a worker (`celery -A celeryapp worker`) consumes the router's
target queue and writes what it saw of the task to RESULT_FILE.

Environment: CELERY_BROKER, SOURCE_EXCHANGE, WORKER_EXCHANGE, WORKER_QUEUE, RESULT_FILE,
TRACEPARENT, TRACESTATE."""

import json
import os
import sys

from celery import Celery
from kombu import Exchange, Queue

app = Celery("wasmrouter_traced", broker=os.environ["CELERY_BROKER"])
app.conf.update(
    task_queues=[
        Queue(
            os.environ["WORKER_QUEUE"],
            Exchange(os.environ["WORKER_EXCHANGE"], type="topic"),
            routing_key="#",
        )
    ],
    worker_hijack_root_logger=False,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)


@app.task(name="wasmrouter.traced", bind=True)
def traced(self, marker):
    request = self.request
    # Celery exposes the message headers it does not know as attributes of the request (which is
    # where OpenTelemetry's instrumentation reads traceparent), and some versions as .headers.
    headers = getattr(request, "headers", None) or {}

    def header(name):
        value = getattr(request, name, None)
        return value if value is not None else headers.get(name)

    seen = {
        "marker": marker,
        "task_id": request.id,
        "traceparent": header("traceparent"),
        "tracestate": header("tracestate"),
        "x-router-route": header("x-router-route"),
    }
    path = os.environ["RESULT_FILE"]
    with open(path + ".tmp", "w") as f:
        json.dump(seen, f)
    os.replace(path + ".tmp", path)
    return marker


def publish(marker):
    headers = {"traceparent": os.environ["TRACEPARENT"], "region": "eu"}
    if os.environ.get("TRACESTATE"):
        headers["tracestate"] = os.environ["TRACESTATE"]
    result = app.send_task(
        "wasmrouter.traced",
        args=[marker],
        exchange=Exchange(os.environ["SOURCE_EXCHANGE"], type="topic"),
        routing_key="celery.traced",
        headers=headers,
    )
    print(result.id)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "publish":
        sys.exit("usage: celeryapp.py publish MARKER")
    publish(sys.argv[2])
