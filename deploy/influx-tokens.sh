#!/bin/sh
# compose's influx-init service: with the admin token, creates once
#   /tokens/kilnwatch/kilnwatch.token  write-only, kilnwatch's bucket (read by kilnwatch)
#   /tokens/grafana/grafana.token      read-only, the same bucket (read by Grafana)
# Each file lives in a volume that only its consumer mounts. The influx CLI takes INFLUX_HOST,
# INFLUX_TOKEN and INFLUX_ORG from the environment.
set -eu
umask 022  # the consumers run as other users; each token's volume is mounted by its consumer only
bucket="${KILNWATCH_INFLUX_BUCKET:-kilnwatch}"
dir="${TOKENS_DIR:-/tokens}"

json_value() {  # the first "key": "value" of the influx CLI's --json output
    sed -n "s/^[[:space:]]*\"$1\":[[:space:]]*\"\([^\"]*\)\".*/\1/p" | head -n 1
}

bucket_id=$(influx bucket list --name "$bucket" --json | json_value id)
if [ -z "$bucket_id" ]; then
    echo "influx-init: bucket $bucket not found in org $INFLUX_ORG" >&2
    exit 1
fi

make_token() {  # make_token <file> <description> <--write-bucket|--read-bucket>
    if [ -s "$1" ]; then
        echo "influx-init: $1 exists, kept"
        return
    fi
    token=$(influx auth create --description "$2" "$3" "$bucket_id" --json | json_value token)
    if [ -z "$token" ]; then
        echo "influx-init: creating the token for $2 failed" >&2
        exit 1
    fi
    printf '%s\n' "$token" > "$1.tmp"
    mv "$1.tmp" "$1"
    echo "influx-init: created $1 ($2)"
}

make_token "$dir/kilnwatch/kilnwatch.token" "kilnwatch: write $bucket" --write-bucket
make_token "$dir/grafana/grafana.token" "grafana: read $bucket" --read-bucket
