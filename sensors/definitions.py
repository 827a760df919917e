"""Every sensor of the product, by the job and asset names it triggers."""

from __future__ import annotations

from sensors.customers import cdc_sensor
from sensors.feedback import feedback_sensor
from sensors.privacy import erasure_sensor
from sensors.s3_documents import knowledge_sensors

all_sensors = [cdc_sensor, feedback_sensor, erasure_sensor, *knowledge_sensors]
