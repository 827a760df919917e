"""Sensors: streaming sensors that apply changes inside their ticks, and the plain Kafka
offset-range and S3 listing sensors that request runs (`sensors/mode.py` chooses which run by
default).

The run-requesting sensors name assets and jobs by key, never by import; the streaming sensors
call the domains' micro-batch modules (`rag_assets/*/streaming.py`), never the asset functions.
"""
