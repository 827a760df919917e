"""`rag-assets stream --source S` offers exactly the sources it can run: the CLI's choices
(kept import-light in sensors/mode.py) and the streaming specs by source are one list."""

from rag_assets.cli import build_parser
from sensors.mode import STREAM_SOURCES
from sensors.stream_command import STREAMS


def test_every_source_offered_has_a_streaming_worker_and_every_worker_is_offered():
    assert sorted(STREAMS) == sorted(STREAM_SOURCES)
    for source in STREAM_SOURCES:
        assert build_parser().parse_args(["stream", "--source", source]).source == source
