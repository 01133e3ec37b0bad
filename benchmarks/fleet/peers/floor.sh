#!/usr/bin/env bash
# The floor of the fleet benchmark: the least work this release can be done with, by no tool.
# One OpenSSH connection per host, all hosts at once, one remote command each that receives
# the artifact on stdin, checks its sha256, unpacks it, switches `current` atomically and runs
# restart.sh; then curl until the host serves the version. No state, no preflight, no plan,
# no rollback: what is left is the hosts' own work and the cheapest client there is, so any
# tool's time at N hosts is at least this one's on the same machine.
#
#   floor.sh ARTIFACT VERSION PORT USER KEY KNOWN_HOSTS HTTP_PORT ADDR...
#
# Key exchange and cipher are those releasegate's asyncssh negotiates with these hosts
# (curve25519, AES-GCM), so the hosts' side costs the same for both.
set -euo pipefail
artifact=$1 version=$2 port=$3 user=$4 key=$5 known=$6 http_port=$7
shift 7
sum=$(sha256sum -- "$artifact")
sum=${sum%% *}
[[ $version =~ ^[A-Za-z0-9._-]+$ && $sum =~ ^[0-9a-f]{64}$ ]] || {
  echo "floor.sh: bad version or digest" >&2
  exit 2
}
# Both values were checked above: plain words, safe inside the remote command's quotes.
remote="set -e; app=/srv/bench/app; v='$version'; in=\$app/.in-\$\$; cat > \"\$in\"
echo '$sum  '\"\$in\" | sha256sum -c --status
rm -rf \"\$app/releases/\$v\"; mkdir -p \"\$app/releases/\$v\"
tar -xzf \"\$in\" -C \"\$app/releases/\$v\" --no-same-owner; rm -f \"\$in\"
ln -sfn \"releases/\$v\" \"\$app/.current-\$\$\"; mv -T \"\$app/.current-\$\$\" \"\$app/current\"
sh \"\$app/current/restart.sh\""

deploy() {
  local addr=$1 _
  ssh -F /dev/null -p "$port" -i "$key" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$known" -o GlobalKnownHostsFile=/dev/null \
    -o KexAlgorithms=curve25519-sha256 -o Ciphers=aes128-gcm@openssh.com \
    "$user@$addr" "$remote" <"$artifact" || return 1
  for _ in $(seq 100); do
    if [[ $(curl -fsS --noproxy '*' --max-time 2 "http://$addr:$http_port/version.txt" 2>/dev/null) == "$version" ]]; then
      return 0
    fi
    sleep 0.05
  done
  echo "floor.sh: $addr does not serve $version" >&2
  return 1
}

pids=()
for addr in "$@"; do
  deploy "$addr" &
  pids+=("$!")
done
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done
exit "$failed"
