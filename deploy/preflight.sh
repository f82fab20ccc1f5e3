#!/bin/sh
# compose's first service: refuses to let the stack start while a secret is empty or still the
# sample env file's placeholder. Every other service waits for it to succeed.
set -eu
bad=""
for name in INFLUXDB_ADMIN_PASSWORD INFLUXDB_ADMIN_TOKEN GRAFANA_ADMIN_PASSWORD; do
    eval "value=\${$name:-}"
    lower=$(printf '%s' "$value" | tr '[:upper:]' '[:lower:]')
    case "$lower" in
        "" | *change-me* | *changeme* | *change_me* | *replace-me* | *"<your"*) bad="$bad $name" ;;
    esac
done
# InfluxDB refuses admin passwords shorter than 8 characters.
if [ -z "$bad" ] && [ "${#INFLUXDB_ADMIN_PASSWORD}" -lt 8 ]; then
    bad=" INFLUXDB_ADMIN_PASSWORD (shorter than 8 characters)"
fi
if [ -n "$bad" ]; then
    echo "kilnwatch preflight: refusing to start, empty or still a placeholder:$bad" >&2
    echo "kilnwatch preflight: set them in deploy/kilnwatch.env (e.g. openssl rand -hex 32)" >&2
    exit 1
fi
echo "kilnwatch preflight: secrets set"
