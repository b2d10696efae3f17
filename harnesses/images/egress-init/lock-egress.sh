#!/bin/sh
# lock-egress PROXY_UID: in the pod's network namespace (shared by all its containers), allow
# outbound traffic only on loopback, as replies on connections opened from outside (sandboxd
# answering the worker), or from PROXY_UID (the vault proxy). Everything else is rejected, for
# IPv4 and IPv6, so a program that ignores HTTPS_PROXY reaches nothing.
set -eu
proxy_uid=${1:?usage: lock-egress PROXY_UID}
case $proxy_uid in *[!0-9]*) echo "lock-egress: uid must be a number, got $proxy_uid" >&2; exit 2 ;; esac
for ipt in iptables ip6tables; do
  "$ipt" -w -F OUTPUT
  "$ipt" -w -A OUTPUT -o lo -j ACCEPT
  "$ipt" -w -A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  "$ipt" -w -A OUTPUT -m owner --uid-owner "$proxy_uid" -j ACCEPT
  "$ipt" -w -A OUTPUT -j REJECT
done
echo "lock-egress: only uid $proxy_uid may open connections out of this pod"
