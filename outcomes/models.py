# Filled by the outcomes / billing issues; the app exists now so that its place in the
# dependency order (metering <- outcomes <- billing) is fixed from the start.
