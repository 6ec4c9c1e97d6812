#!/bin/sh
# The image's one entry point: the first argument chooses what this container runs.
set -eu
umask 077
cmd="${1:-portal}"
[ "$#" -gt 0 ] && shift
case "$cmd" in
    portal)
        exec gunicorn --bind "$MULTIFLEXI_WEB_BIND" --workers "$MULTIFLEXI_WEB_WORKERS" \
            --access-logfile - "$@" app:app ;;
    scheduler) exec python3 -m daemons.scheduler "$@" ;;
    executor) exec python3 -m daemons.executor "$@" ;;
    eventor) exec python3 -m daemons.eventor "$@" ;;
    migrate) exec python3 -m multiflexi_web.cli db upgrade ;;
    multiflexi) exec python3 -m multiflexi_web.cli "$@" ;;
    *) echo "usage: portal|scheduler|executor|eventor|migrate|multiflexi ARGS" >&2; exit 64 ;;
esac
