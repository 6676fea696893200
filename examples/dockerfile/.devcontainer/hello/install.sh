#!/bin/sh
# Runs at image build time with the feature's options as upper-case environment variables.
set -eu
printf '#!/bin/sh\necho "%s"\n' "$GREETING" > /usr/local/bin/hello
chmod 0755 /usr/local/bin/hello
