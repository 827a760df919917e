"""Sensors: Kafka offset-range sensors and the S3 document sensor.

They name assets and jobs by key, never by import, so the asset modules do not import sensors
and sensors do not import assets.
"""
