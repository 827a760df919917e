"""Every sensor of the product, by the job and asset names it triggers."""

from __future__ import annotations

from dagster import AssetSelection, AutomationConditionSensorDefinition, DefaultSensorStatus

from sensors.customers import cdc_sensor, cdc_stream
from sensors.feedback import feedback_sensor, feedback_stream
from sensors.privacy import erasure_sensor
from sensors.s3_documents import knowledge_sensors

automation_sensor = AutomationConditionSensorDefinition(
    "automation_sensor",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates the assets' declarative automation conditions (e.g. the periodic "
                "fine-tuning export).",
)

all_sensors = [cdc_sensor, cdc_stream, feedback_sensor, feedback_stream, erasure_sensor,
               *knowledge_sensors, automation_sensor]
