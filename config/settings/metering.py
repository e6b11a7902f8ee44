from config.env import env_int

# How far back an event's timestamp may lie. Billing periods close after a grace window,
# and events later than this are refused rather than silently billed into an old month.
METERING_LATE_EVENT_WINDOW_DAYS = env_int("METERING_LATE_EVENT_WINDOW_DAYS", 35)
# How far ahead of the server's clock an event's timestamp may lie (clock skew).
METERING_FUTURE_TOLERANCE_SECONDS = env_int("METERING_FUTURE_TOLERANCE_SECONDS", 300)
METERING_MAX_BATCH = 1000
# Batches up to this size are merged as parameters of one statement (one round trip);
# larger ones are copied into a staging table first (faster per row). See
# metering/services/ingest.py and bench/ingest.py.
METERING_COPY_THRESHOLD = env_int("METERING_COPY_THRESHOLD", 20)
METERING_MAX_PROPERTIES_BYTES = 8 * 1024
# The events table has a partition per month (metering/services/partitions.py); beat
# creates this month's and this many months' ahead.
METERING_EVENT_PARTITIONS_AHEAD = env_int("METERING_EVENT_PARTITIONS_AHEAD", 3)
