#!/usr/bin/env bash
# Starts or stops the Azurite storage emulator on loopback, with its data in .azurite/ (git-ignored).
#   scripts/azurite.sh start    # blob 10000, queue 10001, table 10002 (AZURITE_*_PORT to change)
#   scripts/azurite.sh stop
#   scripts/azurite.sh status
# Installed by `npm ci` at the repository root (package.json pins the version).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="$root/.azurite"
pidfile="$data/azurite.pid"
blob=${AZURITE_BLOB_PORT:-10000}
queue=${AZURITE_QUEUE_PORT:-10001}
table=${AZURITE_TABLE_PORT:-10002}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case "${1:-}" in
  start)
    if running; then echo "azurite already running (pid $(cat "$pidfile"))"; exit 0; fi
    bin="$root/node_modules/.bin/azurite"
    [ -x "$bin" ] || { echo "azurite is not installed: run 'npm ci' at the repository root" >&2; exit 1; }
    mkdir -p "$data"
    nohup "$bin" --silent --loose --skipApiVersionCheck --location "$data" \
      --blobHost 127.0.0.1 --blobPort "$blob" --queueHost 127.0.0.1 --queuePort "$queue" \
      --tableHost 127.0.0.1 --tablePort "$table" >"$data/azurite.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 100); do
      if (exec 3<>/dev/tcp/127.0.0.1/"$table") 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/"$queue") 2>/dev/null; then
        echo "azurite running (pid $(cat "$pidfile")): blob $blob, queue $queue, table $table"; exit 0
      fi
      sleep 0.1
    done
    echo "azurite did not start; see $data/azurite.log" >&2; exit 1 ;;
  stop)
    if running; then kill "$(cat "$pidfile")"; rm -f "$pidfile"; echo "azurite stopped"; else echo "azurite not running"; fi ;;
  status)
    if running; then echo "azurite running (pid $(cat "$pidfile"))"; else echo "azurite not running"; exit 1; fi ;;
  *)
    echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
