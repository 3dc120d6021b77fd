#!/usr/bin/env bash
# The MPI pool across two hosts, simulated on this machine (run by .ci/run,
# which installs Open MPI and openssh-server):
#
#   tests/mpi_two_hosts.sh <mpi_fib binary> <conformance test binary>
#
# Open MPI treats --host 127.0.0.2:N,127.0.0.3:M as two remote hosts and
# starts one orted on each through its remote-shell agent. The agent here is
# a real ssh to a real sshd, started by this script on loopback with a
# throwaway host key and user key, and gone when it ends. Every byte stays
# on loopback (oob_tcp_if_include, btl_tcp_if_include, btl tcp,self).
#
# Each run must start one daemon a host over ssh (the sshd log is
# counted), and passes: the seeds' fib and the conformance suite's MPI pool
# tests, in the static mode (ranks on both hosts) and the dynamic one (the
# client on the first host, its spawned workers on the second).
set -euo pipefail

fib=$(realpath "$1")
conformance=$(realpath "$2")
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../.ci/spawning.sh
source "$here/.ci/spawning.sh"

dir=$(mktemp -d)
sshd_pid=""
cleanup() {
  if [ -n "$sshd_pid" ]; then kill "$sshd_pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$dir/user_key"
cp "$dir/user_key.pub" "$dir/authorized_keys"
chmod 600 "$dir/authorized_keys"
# sshd's privilege separation directory (Debian's package makes it at boot).
if [ ! -d /run/sshd ]; then mkdir -p /run/sshd; fi

# A free port: sshd says when it listens; another port if it cannot bind.
for try in 1 2 3 4 5 6 7 8; do
  port=$((20000 + RANDOM % 20000))
  cat > "$dir/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.2
ListenAddress 127.0.0.3
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
EOF
  : > "$dir/sshd.log"
  /usr/sbin/sshd -D -f "$dir/sshd_config" -E "$dir/sshd.log" &
  sshd_pid=$!
  for _ in $(seq 100); do
    if [ "$(grep -c "Server listening" "$dir/sshd.log")" -ge 2 ]; then break 2; fi
    if ! kill -0 "$sshd_pid" 2>/dev/null; then break; fi
    sleep 0.05
  done
  kill "$sshd_pid" 2>/dev/null || true
  wait "$sshd_pid" 2>/dev/null || true
  sshd_pid=""
  echo "sshd did not listen on port $port (try $try):"
  cat "$dir/sshd.log"
done
if [ -z "$sshd_pid" ]; then
  echo "no sshd on loopback: giving up"
  exit 1
fi

cat > "$dir/agent" <<EOF
#!/bin/sh
exec ssh -p $port -i $dir/user_key -o StrictHostKeyChecking=no \
  -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR "\$@"
EOF
chmod +x "$dir/agent"
"$dir/agent" 127.0.0.3 true

mpi=(mpirun --mca plm_rsh_agent "$dir/agent"
  --mca oob_tcp_if_include lo --mca btl_tcp_if_include lo --mca btl tcp,self)

# Runs one case and checks that it started one daemon on each host.
case_on_two_hosts() {
  local name=$1
  shift
  local before after
  before=$(grep -c "Accepted publickey" "$dir/sshd.log" || true)
  echo "--- two hosts: $name"
  "$@"
  after=$(grep -c "Accepted publickey" "$dir/sshd.log" || true)
  # Two a run (one a host); a run that `spawning` ran twice started four.
  local started=$((after - before))
  if [ "$started" -lt 2 ] || [ $((started % 2)) -ne 0 ]; then
    echo "two hosts: $name started $started daemons over ssh, not one a host"
    exit 1
  fi
}

case_on_two_hosts "fib, static (2 ranks a host)" \
  timeout 120 "${mpi[@]}" --host 127.0.0.2:2,127.0.0.3:2 -n 4 "$fib" 25..32
case_on_two_hosts "fib, dynamic (client on one host, 3 workers spawned on the other)" \
  spawning timeout 120 "${mpi[@]}" --host 127.0.0.2:1,127.0.0.3:3 -n 1 "$fib" 25..32 3
case_on_two_hosts "conformance, static (3 ranks a host)" \
  timeout 300 "${mpi[@]}" --host 127.0.0.2:3,127.0.0.3:3 -n 6 "$conformance" --test-threads=1 mpi_pool
case_on_two_hosts "conformance, dynamic (workers spawned on the second host)" \
  spawning timeout 300 "${mpi[@]}" --host 127.0.0.2:1,127.0.0.3:5 -n 1 "$conformance" mpi_pool
echo "two hosts: all cases passed"
