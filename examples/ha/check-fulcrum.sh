#!/bin/sh
# keepalived's vrrp_script: exit 0 while fulcrum's admin API answers
# GET /healthz on this node, non-zero otherwise. /healthz needs no token, so
# this works with admin.token_file set too.
exec curl --silent --fail --max-time 1 --output /dev/null http://127.0.0.1:9090/healthz
