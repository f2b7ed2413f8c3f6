"""The benchmark's baseline: a Faust worker with the pipeline's app settings whose one agent copies
news.raw to ``bench.noop`` unchanged (same broker, same client settings, no parsing or tagging).

    SIGNALWATCH_BROKER=... python -m bench.noop_app worker
"""

from __future__ import annotations

import faust
from faust.worker import Worker

from streams.cli.processes import tune_runtime
from streams.settings import Settings


def create_noop_app(settings: Settings) -> faust.App:
    (settings.data_dir / "worker" / settings.app_id).mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id, broker=settings.broker, value_serializer="raw", key_serializer="raw",
        topic_partitions=settings.partitions, store="memory://",
        datadir=str(settings.data_dir / "worker" / settings.app_id), web_host=settings.web_host,
        web_port=settings.web_port, web_bind=settings.web_host, consumer_auto_offset_reset="earliest",
        producer_acks=-1, broker_max_poll_records=500, producer_max_request_size=4 * 1024 * 1024,
        consumer_max_fetch_size=8 * 1024 * 1024, autodiscover=False,
    )
    raw = app.topic(settings.topics.raw, value_type=bytes, key_type=bytes)
    out = app.topic("bench.noop", value_type=bytes, key_type=bytes)

    @app.agent(raw)
    async def passthrough(stream):
        async for event in stream.events():
            await out.send(key=event.message.key, value=event.message.value)

    return app


def main() -> None:
    settings = Settings.from_env()
    runner = Worker(create_noop_app(settings), loglevel=settings.log_level, quiet=True)
    tune_runtime()  # the same runtime as the pipeline's worker
    runner.execute_from_commandline()


if __name__ == "__main__":
    main()
