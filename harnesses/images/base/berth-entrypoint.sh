#!/bin/sh
# The CA-bundle hook: when the vault proxy's CA certificate is mounted at /etc/berth/ca/ca.crt,
# every TLS client in the sandbox must trust it (the proxy terminates TLS with leaves it signs).
# Builds one bundle of the system CAs plus the Berth CA in a writable place and points the usual
# variables at it, then becomes sandboxd, whose execs inherit this environment.
set -eu
ca=${BERTH_CA_FILE:-/etc/berth/ca/ca.crt}
if [ -s "$ca" ]; then
  bundle=${TMPDIR:-/tmp}/berth-ca-bundle.crt
  cat /etc/ssl/certs/ca-certificates.crt "$ca" >"$bundle"
  export SSL_CERT_FILE="$bundle" REQUESTS_CA_BUNDLE="$bundle" CURL_CA_BUNDLE="$bundle" GIT_SSL_CAINFO="$bundle"
  export NODE_EXTRA_CA_CERTS="$ca"
fi
exec /usr/local/bin/sandboxd "$@"
