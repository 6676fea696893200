# A database stand-in for the compose tests (Postgres cannot be pulled here): a line-based key-value
# server on port 5432 that keeps its data in /var/lib/kv - the volume a compose project declares - and
# stops at once on SIGTERM, as a real database does. `SET key value` answers OK, `GET key` the value.
FROM devcontainer-builder-test/debian:trixie-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends socat \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/kv \
 && printf '%s\n' '#!/bin/sh' \
      'read -r verb key value' \
      'case "$verb" in' \
      '  SET) printf "%s" "$value" > "/var/lib/kv/$key" && echo OK ;;' \
      '  GET) cat "/var/lib/kv/$key" 2>/dev/null; echo ;;' \
      '  *) echo ERR ;;' \
      'esac' > /usr/local/bin/kv-handle \
 && printf '%s\n' '#!/bin/sh' \
      'trap "exit 0" TERM INT' \
      'date >> /var/lib/kv/.starts' \
      'socat TCP-LISTEN:5432,fork,reuseaddr EXEC:/usr/local/bin/kv-handle & wait $!' > /usr/local/bin/kv-server \
 && chmod 0755 /usr/local/bin/kv-handle /usr/local/bin/kv-server
VOLUME /var/lib/kv
EXPOSE 5432
CMD ["kv-server"]
