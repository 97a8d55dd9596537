#!/usr/bin/env bash
# The VPC lab: network namespaces that play an EC2 instance in a private subnet with S3 and
# DynamoDB gateway endpoints, and the servers around it (VPC resolver, IMDS, S3/DynamoDB/STS
# fronts to moto, an internet canary, a corporate proxy and DNS). See lab/README.md.
#
#   lab.sh up                 build the lab (removes leftovers of an earlier run first)
#   lab.sh down               remove everything (idempotent; safe after any failure)
#   lab.sh apply FAULT...     break something (lab.sh faults lists them)
#   lab.sh reset              back to healthy without rebuilding
#   lab.sh status             what is up, which faults are applied
#   lab.sh faults             the fault names
#   lab.sh probe [VAR=VALUE...] [ARGS...]
#                             run target/debug/vpce-probe (or $VPL_PROBE) in the instance with
#                             the suite's standard arguments plus ARGS and environment VAR=VALUE
#   lab.sh exec CMD...        run CMD in the instance namespace with the probe's environment
#   lab.sh seed N             add buckets lab-bucket-01..N and tables lab-table-01..N (moto and
#                             the VPC resolver), for probes of many targets (benches/bench.py)
#   lab.sh seed --canned N    name buckets lab-canned-bucket-01..N and tables lab-canned-table-01..N
#                             that the S3 and DynamoDB fronts answer themselves as healthy ones
#                             (no moto behind them): the probe's own scaling, without the emulator
#
# Run as root. Install steps live in scripts/install-lab-deps.sh, not here.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB_DIR=${VPL_DIR:-/run/vpce-lab}
# One lab per machine (the namespaces, veths and /etc/netns entries are machine-wide, whichever
# checkout runs it): lab.sh, run_scenarios.py, benches/bench.py and scripts/demo.sh take an
# exclusive flock on this file. It stays in /run (tmpfs) between runs, which is harmless.
LOCK_FILE=${VPL_LOCK_FILE:-/run/vpce-lab.lock}
# Where a failed `up` leaves the daemons' logs (the lab itself is removed).
FAILED_LOGS=$LAB_DIR.failed-logs
LAB_SERVERS=${VPL_SERVERS:-$REPO/target/debug/examples/lab_servers}
MOTO=${VPCE_PROBE_MOTO:-/opt/vpce-probe-test/venv/bin/moto_server}
MOTO_PY=$(dirname "$MOTO")/python
MOTO_PORT=5000

NS_INST=vpl-inst   # the EC2 instance
NS_RTR=vpl-rtr     # the VPC router: the subnet's route table and network ACL
NS_AWS=vpl-aws     # S3, DynamoDB, STS (moto behind TLS fronts) and the internet
NS_META=vpl-meta   # the instance's link-local services: IMDS and the VPC resolver
NS_CORP=vpl-corp   # another subnet: corporate proxy (tinyproxy) and DNS (dnsmasq)
NS_FW=vpl-fw       # a firewall subnet: an appliance that forwards (fault appliance-in-path)
NAMESPACES=("$NS_INST" "$NS_RTR" "$NS_AWS" "$NS_META" "$NS_CORP" "$NS_FW")

REGION=eu-west-1
ACCOUNT=123456789012
BUCKET=lab-bucket
# S3 access point aliases are used as bucket names (`--bucket ALIAS`): the SDKs address them as
# virtual-hosted buckets. moto knows no access points, so the live alias is a bucket of that name;
# the gone one (an alias of a deleted access point) resolves, as every S3 name does, but holds
# nothing.
AP_ALIAS=lab-ap-7rk2fq4cw9xh3nd8mzt6vbps1yjg5euw1a-s3alias
AP_ALIAS_GONE=lab-gone-2hd8xk4mq7wz1tj5rbv9cnfs3pyl6euw1a-s3alias
TABLE=lab-table
# Buckets and tables the fronts answer themselves (`lab.sh seed --canned N`): names with these
# prefixes and a two-digit number.
CANNED_BUCKET=lab-canned-bucket
CANNED_TABLE=lab-canned-table
# An S3 Express One Zone directory bucket in eu-west-1's zone euw1-az1 (`--bucket DIR_BUCKET`):
# its zonal name and the regional control name are served by their own front (S3X_IP), which
# answers CreateSession and the zonal calls itself (moto knows no directory buckets).
DIR_BUCKET=lab-dir--euw1-az1--x-s3
S3X_ZONE=euw1-az1
ROLE=lab-role
INSTANCE_ID=i-0a1b2c3d4e5f60718
LAB_CA_NAME="vpce-probe lab CA"
INSPECT_CA_NAME="Corp TLS Inspection CA"
ROGUE_CA_NAME="Untrusted Middlebox CA"

INST_IP=10.0.1.10
SUBNET=10.0.1.0/24
VPC_CIDR=10.0.0.0/16
CORP_IP=10.0.2.10       # tinyproxy :3128 (allows), :3129 (denies every CONNECT), :3130 (needs a password)
CORP_DNS=10.0.2.53      # dnsmasq answering like the VPC resolver
CORP_DNS_OVERRIDE=10.0.2.54 # dnsmasq with a "private zone" that overrides S3
S3_PREFIX=198.51.100.0/26       # S3 in eu-west-1 (the lab's ip-ranges.json)
DDB_PREFIX=198.51.100.64/26     # DYNAMODB in eu-west-1
S3_USE1_PREFIX=198.51.100.128/26
DDB_USE1_PREFIX=198.51.100.192/26
S3_IP=198.51.100.10
DDB_IP=198.51.100.70
S3_USE1_IP=198.51.100.140
S3_IP2=198.51.100.11    # second addresses of S3 and DynamoDB (fault dns-second-address)
DDB_IP2=198.51.100.71
DDB_USE1_IP=198.51.100.200
IFE_IP=10.0.1.50        # an S3 interface endpoint's network interface in the subnet
EC2_IFE_IP=10.0.1.51    # an EC2 interface endpoint's network interface (fault ec2-vpc-model)
FW_RTR_IP=10.0.3.1      # the router's end of the firewall subnet
FW_IP=10.0.3.10         # the firewall appliance's network interface (fault appliance-in-path)
CANARY_IP=203.0.113.10  # an internet host (the probe's --internet-canary)
STS_IP=203.0.113.20     # STS's public address: no endpoint, reachable only through NAT
OUTSIDE_IP=203.0.113.80 # an address in no AWS range
S3_STALE_IP=198.51.100.12 # inside the S3 range, but no front serves it (a pinned address gone stale)
S3X_PREFIX=192.0.2.0/26 # the com.amazonaws.eu-west-1.s3express prefix list (in no ip-ranges entry, as on AWS)
S3X_IP=192.0.2.10       # S3 Express One Zone's zonal and control endpoints
EC2_IP=203.0.113.30     # EC2's public API address: reachable only through NAT; a front to moto (whose
                        # VPC model does not hold the lab's ids, so reads find nothing) or, with the
                        # ec2-describe-denied fault, EC2's UnauthorizedOperation answer
PROXY_PASSWORD=s3cr3t-lab-proxy-pw
# IPv6 (documentation prefix 2001:db8::/32): the subnet, the gateway endpoint link and the
# fronts carry it; the corporate subnet, IMDS, the resolver and the internet stay IPv4-only.
INST_IP6=2001:db8:1::10
RTR_SUB_IP6=2001:db8:1::1
SUBNET6=2001:db8:1::/64
VPC_CIDR6=2001:db8:1::/56
RTR_GWE_IP6=2001:db8:ff::1      # the router's end of the gateway endpoint link (/64)
AWS_GWE_IP6=2001:db8:ff::2
S3_PREFIX6=2001:db8:100::/122   # S3 in eu-west-1 (ipv6_prefixes of the lab's ip-ranges.json)
DDB_PREFIX6=2001:db8:100::40/122 # DYNAMODB in eu-west-1
S3_IP6=2001:db8:100::10
DDB_IP6=2001:db8:100::70
S3_OVERRIDE6=2001:db8:100::10/124 # route-override-blackhole's more specific IPv6 route (S3)

# The services refuse requests signed too far from their clock, as AWS does (S3 allows 15
# minutes, DynamoDB 5): what a probe whose clock is off (the runner's clock-ahead-30m) meets.
S3_SKEW='"max_request_skew_secs": 900'
DDB_SKEW='"max_request_skew_secs": 300'

IMDS_IP=169.254.169.254
VPC_DNS_IP=169.254.169.253

FAULTS=(
  "sg-egress-drop:security group: no egress rule (every packet the instance sends on its subnet interface is dropped)"
  "nacl-ephemeral-narrow:network ACL: inbound allows TCP 1024-32767 only (return traffic to 32768-65535 dropped)"
  "nacl-outbound-deny-443:network ACL: outbound TCP 443 denied"
  "endpoint-route-missing:route table: no prefix-list routes for S3 and DynamoDB, IPv4 or IPv6 (private subnet: nothing else)"
  "ddb-endpoint-missing:route table: only the S3 gateway endpoint exists (no DynamoDB prefix-list route, IPv4 or IPv6)"
  "s3express-endpoint-missing:route table: no route for the s3express gateway endpoint's prefix list ($S3X_PREFIX; S3 and DynamoDB intact)"
  "route-override-blackhole:route table: a more specific route for 198.51.100.0/28 and $S3_OVERRIDE6 (S3) to a deleted appliance (blackhole)"
  "endpoint-route-missing-v6:route table: no IPv6 prefix-list routes for S3 and DynamoDB (IPv4 ones intact); IPv6 falls to the blackhole default (silent drop)"
  "endpoint-route-unreachable-v6:route table: the IPv6 prefix-list routes of S3 and DynamoDB replaced by unreachable routes (the router answers ICMPv6 no-route: ENETUNREACH)"
  "nat-gateway:route table: default route to a NAT gateway (the instance has an internet path; the NAT's hop answers from the private address EC2 describes for it, NAT_IP in ec2-model.env)"
  "appliance-in-path:route table: the S3 prefix list's IPv4 range routed through a firewall appliance ($FW_IP) that forwards it to the gateway endpoint (S3 still works, one hop further)"
  "icmp-filtered:router: sends no ICMP time exceeded (IPv4 and IPv6), so every hop before the service is silent"
  "dns-nxdomain:VPC resolver: NXDOMAIN for the S3 and DynamoDB names (a private zone shadows them)"
  "dns-outside-range:VPC resolver: S3 names answer $S3_USE1_IP (an S3 range of us-east-1)"
  "dns-interface-endpoint:VPC resolver: S3 names answer $IFE_IP (interface endpoint private DNS); a front serves it"
  "vpc-dns-disabled:VPC resolver: does not answer (enableDnsSupport off)"
  "dns-custom-resolver:instance: resolv.conf points at a corporate resolver ($CORP_DNS, dnsmasq) with the same answers"
  "dns-first-server-silent:instance: resolv.conf lists a corporate name server that no longer answers ($CORP_DNS, its UDP 53 dropped) before the VPC resolver"
  "dns-search-wildcard:instance: resolv.conf has 'search corp.lab' with 'options ndots:5', and the VPC resolver answers the S3 names under corp.lab with $OUTSIDE_IP (a wildcard record in the search domain)"
  "dns-custom-resolver-override:instance: resolv.conf points at a corporate resolver ($CORP_DNS_OVERRIDE) answering S3 with $OUTSIDE_IP"
  "imds-no-role:IMDS: no instance profile (no role, no credentials)"
  "imds-blocked:IMDS: 169.254.169.254 does not answer (IMDS disabled / hop limit)"
  "s3-bucket-other-region:S3 front: the bucket lives in us-west-2 (301 PermanentRedirect, x-amz-bucket-region)"
  "s3-endpoint-policy-deny:S3 front: AccessDenied because no VPC endpoint policy allows the action"
  "s3-bucket-policy-deny:S3 front: AccessDenied with an explicit deny in a resource-based policy (bucket policy)"
  "ddb-identity-deny:DynamoDB front: AccessDeniedException, no identity-based policy allows DescribeTable"
  "tls-intercept:S3 front: certificate from '$INSPECT_CA_NAME', which the instance trusts (TLS inspection)"
  "tls-intercept-untrusted:S3 front: certificate from '$ROGUE_CA_NAME', which the instance does not trust"
  "proxy-down:corporate proxy: port 3128 refuses connections (proxy service stopped)"
  "ec2-describe-denied:EC2 API: every call answers 403 UnauthorizedOperation (the role may not describe the VPC)"
  "dns-second-address:VPC resolver: S3 names answer $S3_IP and $S3_IP2, DynamoDB names $DDB_IP and $DDB_IP2 (fronts serve all four)"
  "blackhole-s3:route table: $S3_IP/32 and $S3_IP6/128 (S3) to a deleted appliance (blackhole: connections time out)"
  "blackhole-ddb:route table: $DDB_IP/32 and $DDB_IP6/128 (DynamoDB) to a deleted appliance (blackhole: connections time out)"
  "fips-names:VPC resolver: the FIPS names (s3-fips, dynamodb-fips) answer the service addresses, which serve them"
  "fips-names-outside:VPC resolver: the FIPS names answer $OUTSIDE_IP (outside the prefix lists: no route through the endpoint)"
  "dualstack-names:VPC resolver: the dual-stack names (s3.dualstack, dynamodb.<region>.api.aws) answer the service addresses (A only)"
  "dualstack-names-v6:VPC resolver: the dual-stack names answer A and AAAA ($S3_IP6, $DDB_IP6), as AWS's do"
  "local-cache-stale:instance: resolv.conf points at a local caching resolver (127.0.0.53) that answers the S3 names with $S3_STALE_IP (a stale cache)"
  "nsswitch-resolve:instance: nsswitch lists systemd-resolved's module (files resolve [!UNAVAIL=return] dns), which is not installed"
  "hosts-stale-s3:instance: /etc/hosts pins the S3 names to $S3_STALE_IP (in the S3 range, no longer serving)"
  "hosts-stale-s3-regional:instance: /etc/hosts pins only s3.$REGION.amazonaws.com (the path-style name) to $S3_STALE_IP"
  "hosts-pinned-s3:instance: /etc/hosts pins the S3 names to $S3_IP (today's address: works, goes stale later)"
  "blackhole-second-addresses:route table: $S3_IP2/32 and $DDB_IP2/32 (the second addresses) to a deleted appliance (blackhole)"
  "s3-port-8443:S3 front: also serves port 8443 (for the profile whose endpoint_url names that port)"
  "ec2-vpc-model:EC2 API: describes the lab's VPC (moto holds its VPC, subnet, route table with the prefix-list routes (gone with endpoint-route-missing) and, with nat-gateway, the NAT default route, gateway endpoints, NAT gateway, security group, network ACL; IMDS serves those ids), reached through an EC2 interface endpoint ($EC2_IFE_IP, private DNS)"
)

# The faults the EC2 model does not mirror: with ec2-vpc-model, the route table, security
# group and network ACL moto describes would no longer be the lab's, so they are refused.
EC2_MODEL_UNMIRRORED=(sg-egress-drop nacl-ephemeral-narrow nacl-outbound-deny-443
  ddb-endpoint-missing s3express-endpoint-missing route-override-blackhole endpoint-route-missing-v6 endpoint-route-unreachable-v6
  vpc-dns-disabled blackhole-s3 blackhole-ddb blackhole-second-addresses)

log() { printf 'lab: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

need_root() { [ "$(id -u)" -eq 0 ] || die "run as root (namespaces, veths, iptables)"; }

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
ipt() { local ns=$1; shift; ip netns exec "$ns" iptables -w "$@"; }
ip6t() { local ns=$1; shift; ip netns exec "$ns" ip6tables -w "$@"; }
# Both families: the security group and network ACL rules hold for IPv4 and IPv6.
ipt46() { ipt "$@"; ip6t "$@"; }

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }

# ---------------------------------------------------------------- processes

pidfile() { echo "$LAB_DIR/pids/$1.pid"; }

# Whether PID runs. A process that exited stays a zombie until PID 1 reaps it (slowly, on
# some hosts); it holds no socket any more, so a zombie counts as gone.
running() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

starttime() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }

# The recorded pid of NAME, only if that pid is still the process the lab started (same start
# time), so that a recycled pid is never signalled.
pid_of() {
  local f pid start
  f=$(pidfile "$1")
  [ -s "$f" ] || return 1
  read -r pid start <"$f"
  [ -n "$pid" ] && [ "$(starttime "$pid")" = "$start" ] && echo "$pid"
}

alive() {
  local pid
  pid=$(pid_of "$1") && running "$pid"
}

# start NAME NS CMD...: runs CMD in NS in the background, records its pid and start time (ip
# netns exec execs the command, so $! is the daemon itself), logs to $LAB_DIR/logs/NAME.log.
start_proc() {
  local name=$1 ns=$2 pid; shift 2
  (
    # A daemon keeps no descriptor but 0-2: a lock held by whoever started lab.sh (fd 9 here,
    # any fd under `flock FILE lab.sh ...`) would otherwise live on in the daemon and block
    # every later lab command. `exec` keeps the recorded pid the daemon's own.
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null
    done
    exec ip netns exec "$ns" "$@" </dev/null >>"$LAB_DIR/logs/$name.log" 2>&1
  ) &
  pid=$!
  echo "$pid $(starttime "$pid")" >"$(pidfile "$name")"
}

# stop_proc NAME: SIGTERM the recorded pid, wait up to 3 s, then SIGKILL.
stop_proc() {
  local f pid i
  f=$(pidfile "$1")
  pid=$(pid_of "$1") || { rm -f "$f"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 150); do
    running "$pid" || break
    sleep 0.02
  done
  if running "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do running "$pid" || break; sleep 0.02; done
  fi
  rm -f "$f"
}

# Kills every process still inside the lab's namespaces (leftovers of a crashed run), by pid.
kill_ns_procs() {
  local ns pids=() p i
  for ns in "${NAMESPACES[@]}"; do
    ns_exists "$ns" || continue
    while read -r p; do [ -n "$p" ] && pids+=("$p"); done < <(ip netns pids "$ns" 2>/dev/null || true)
  done
  [ "${#pids[@]}" -gt 0 ] || return 0
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for i in $(seq 1 150); do
    local left=0
    for p in "${pids[@]}"; do running "$p" && left=1; done
    [ "$left" -eq 0 ] && return 0
    sleep 0.02
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}

wait_file() { # wait_file FILE PROCNAME TIMEOUT_S
  local i n
  n=$(awk -v t="$3" 'BEGIN{print int(t/0.02)}')
  for i in $(seq 1 "$n"); do
    [ -s "$1" ] && return 0
    alive "$2" || { log "$2 exited during startup; its log:"; tail -n 20 "$LAB_DIR/logs/$2.log" >&2; return 1; }
    sleep 0.02
  done
  log "$2: $1 did not appear within $3 s; its log:"; tail -n 20 "$LAB_DIR/logs/$2.log" >&2
  return 1
}

# wait_listen NAME NS tcp|udp ADDR:PORT: until a socket listens there (or NAME died).
wait_listen() {
  local name=$1 ns=$2 proto=$3 addr=$4 i flag=-ltn
  [ "$proto" = udp ] && flag=-lun
  for i in $(seq 1 250); do
    ip netns exec "$ns" ss -H "$flag" "src $addr" 2>/dev/null | grep -q . && return 0
    alive "$name" || { log "$name exited during startup; its log:"; tail -n 20 "$LAB_DIR/logs/$name.log" >&2; return 1; }
    sleep 0.02
  done
  log "$name: nothing listens on $proto $addr after 5 s"
  return 1
}

# ---------------------------------------------------------------- faults state

has_fault() { grep -qx "$1" "$LAB_DIR/faults" 2>/dev/null; }

known_fault() {
  local f
  for f in "${FAULTS[@]}"; do [ "${f%%:*}" = "$1" ] && return 0; done
  return 1
}

# ---------------------------------------------------------------- server configs

q() { printf '"%s"' "$1"; }

# JSON object of DNS records from "name=ip[,ip...]" words (ip empty: NODATA).
records_json() {
  local out="" w name ip ips a addrs
  for w in "$@"; do
    name=${w%%=*}; ip=${w#*=}; ips=""
    IFS=, read -ra addrs <<<"$ip"
    for a in "${addrs[@]}"; do ips+="${ips:+, }$(q "$a")"; done
    out+="${out:+, }$(q "$name"): [$ips]"
  done
  printf '{%s}' "$out"
}

meta_config() {
  local s3=$S3_IP ddb=$DDB_IP mode=answer role
  role=$(q "$ROLE")
  has_fault dns-outside-range && s3=$S3_USE1_IP
  has_fault dns-interface-endpoint && s3=$IFE_IP
  if has_fault dns-second-address; then s3+=",$S3_IP2"; ddb+=",$DDB_IP2"; fi
  has_fault vpc-dns-disabled && mode=drop
  local fips_s3="" fips_ddb=""
  has_fault fips-names && { fips_s3=$S3_IP; fips_ddb=$DDB_IP; }
  has_fault fips-names-outside && { fips_s3=$OUTSIDE_IP; fips_ddb=$OUTSIDE_IP; }
  has_fault imds-no-role && role=null
  local recs=()
  if ! has_fault dns-nxdomain; then
    recs+=("s3.$REGION.amazonaws.com=$s3" "$BUCKET.s3.$REGION.amazonaws.com=$s3"
      "$AP_ALIAS.s3.$REGION.amazonaws.com=$s3" "$AP_ALIAS_GONE.s3.$REGION.amazonaws.com=$s3"
      "dynamodb.$REGION.amazonaws.com=$ddb" "$ACCOUNT.ddb.$REGION.amazonaws.com=$ddb"
      "$DIR_BUCKET.s3express-$S3X_ZONE.$REGION.amazonaws.com=$S3X_IP" "s3express-control.$REGION.amazonaws.com=$S3X_IP")
    if [ -n "$fips_s3" ]; then
      recs+=("s3-fips.$REGION.amazonaws.com=$fips_s3" "$BUCKET.s3-fips.$REGION.amazonaws.com=$fips_s3"
        "dynamodb-fips.$REGION.amazonaws.com=$fips_ddb")
    fi
    if has_fault dualstack-names-v6; then
      recs+=("s3.dualstack.$REGION.amazonaws.com=$s3,$S3_IP6" "$BUCKET.s3.dualstack.$REGION.amazonaws.com=$s3,$S3_IP6"
        "dynamodb.$REGION.api.aws=$ddb,$DDB_IP6" "$ACCOUNT.ddb.$REGION.api.aws=$ddb,$DDB_IP6")
    elif has_fault dualstack-names; then
      recs+=("s3.dualstack.$REGION.amazonaws.com=$s3" "$BUCKET.s3.dualstack.$REGION.amazonaws.com=$s3"
        "dynamodb.$REGION.api.aws=$ddb" "$ACCOUNT.ddb.$REGION.api.aws=$ddb")
    fi
    if has_fault dns-search-wildcard; then
      recs+=("s3.$REGION.amazonaws.com.corp.lab=$OUTSIDE_IP" "$BUCKET.s3.$REGION.amazonaws.com.corp.lab=$OUTSIDE_IP")
    fi
    local b
    if [ -s "$LAB_DIR/extra-buckets" ]; then
      while read -r b; do recs+=("$b.s3.$REGION.amazonaws.com=$s3"); done <"$LAB_DIR/extra-buckets"
    fi
    local i
    for ((i = 1; i <= $(canned_count); i++)); do
      recs+=("$(printf '%s-%02d' "$CANNED_BUCKET" "$i").s3.$REGION.amazonaws.com=$s3")
    done
  fi
  local ec2=$EC2_IP vpc_id=vpc-0a0a0a0a0a0a0a0a0 subnet_id=subnet-0b1b1b1b1b1b1b1b1 sg_id=sg-0c2c2c2c2c2c2c2c2
  if has_fault ec2-vpc-model; then
    ec2=$EC2_IFE_IP
    vpc_id=$(ec2_model VPC_ID) subnet_id=$(ec2_model SUBNET_ID) sg_id=$(ec2_model SG_ID)
  fi
  recs+=("sts.$REGION.amazonaws.com=$STS_IP" "sts.amazonaws.com=$STS_IP" "ec2.$REGION.amazonaws.com=$ec2"
    "s3.us-east-1.amazonaws.com=$S3_USE1_IP" "$BUCKET.s3.us-east-1.amazonaws.com=$S3_USE1_IP"
    "s3.amazonaws.com=$S3_USE1_IP" "$BUCKET.s3.amazonaws.com=$S3_USE1_IP"
    "dynamodb.us-east-1.amazonaws.com=$DDB_USE1_IP" "$ACCOUNT.ddb.us-east-1.amazonaws.com=$DDB_USE1_IP"
    "sts.us-east-1.amazonaws.com=$STS_IP")
  cat <<EOF
{
  "ready_file": "$LAB_DIR/meta.ready",
  "dns": [{"bind": "$VPC_DNS_IP:53", "mode": "$mode", "records": $(records_json "${recs[@]}")}],
  "imds": [{"bind": "$IMDS_IP:80", "mode": "normal", "facts": {
    "region": "$REGION", "az": "${REGION}a", "instance_id": "$INSTANCE_ID", "account_id": "$ACCOUNT",
    "mac": "0e:1a:b2:c3:d4:e5", "vpc_id": "$vpc_id", "subnet_id": "$subnet_id",
    "security_group_ids": ["$sg_id"], "vpc_cidrs": ["$VPC_CIDR"], "local_ipv4": "$INST_IP",
    "public_ipv4": null, "role": $role}}]
}
EOF
}

# How many canned buckets and tables `lab.sh seed --canned` named (0: none).
canned_count() { cat "$LAB_DIR/canned-targets" 2>/dev/null || echo 0; }

principal() { echo "arn:aws:sts::$ACCOUNT:assumed-role/$ROLE/$INSTANCE_ID"; }

# ec2_model KEY: an id of the lab's VPC in moto (written by seed_moto).
ec2_model() { sed -n "s/^$1=//p" "$LAB_DIR/ec2-model.env"; }

# EC2's GetManagedPrefixListEntries answer holding CIDRs, as a lab_servers raw response.
pl_entries() {
  local items="" c
  for c in "$@"; do items+="<item><cidr>$c</cidr><description>lab</description></item>"; done
  printf '{"raw": {"status": 200, "headers": [["Content-Type", "text/xml;charset=UTF-8"]], "body": "%s"}}' \
    "<?xml version='1.0' encoding='UTF-8'?><GetManagedPrefixListEntriesResponse xmlns='http://ec2.amazonaws.com/doc/2016-11-15/'><requestId>lab-entries</requestId><entrySet>$items</entrySet></GetManagedPrefixListEntriesResponse>"
}

# One EC2 Query call to moto (no signature check there; the Authorization header names the
# region and service). Prints the HTTP status.
moto_ec2() {
  ip netns exec "$NS_AWS" curl -s -o /dev/null -w '%{http_code}' -H "Host: ec2.$REGION.amazonaws.com" \
    -H "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/$REGION/ec2/aws4_request, SignedHeaders=host, Signature=0" \
    --data "Version=2016-11-15&$1" "http://127.0.0.1:$MOTO_PORT/"
}

# The EC2 model mirrors the faults it knows: nat-gateway's default route, and
# endpoint-route-missing (the endpoints no longer serve the subnet's route table, and their
# prefix-list routes are gone). Reset restores both.
ec2_model_sync() {
  [ -s "$LAB_DIR/ec2-model.env" ] || return 0
  local rtb code
  rtb=$(ec2_model RTB_ID)
  if has_fault ec2-vpc-model && has_fault nat-gateway; then
    if [ ! -e "$LAB_DIR/ec2-model.nat" ]; then
      code=$(moto_ec2 "Action=CreateRoute&RouteTableId=$rtb&DestinationCidrBlock=0.0.0.0/0&NatGatewayId=$(ec2_model NAT_ID)")
      [ "$code" = 200 ] || die "moto: CreateRoute 0.0.0.0/0 -> NAT answered $code"
      : >"$LAB_DIR/ec2-model.nat"
    fi
  elif [ -e "$LAB_DIR/ec2-model.nat" ]; then
    code=$(moto_ec2 "Action=DeleteRoute&RouteTableId=$rtb&DestinationCidrBlock=0.0.0.0/0")
    [ "$code" = 200 ] || die "moto: DeleteRoute 0.0.0.0/0 answered $code"
    rm -f "$LAB_DIR/ec2-model.nat"
  fi
  local svc vpce pl
  if has_fault ec2-vpc-model && has_fault endpoint-route-missing; then
    if [ ! -e "$LAB_DIR/ec2-model.no-endpoint-routes" ]; then
      for svc in S3 DDB; do
        vpce=$(ec2_model "${svc}_VPCE") pl=$(ec2_model "${svc}_PL")
        code=$(moto_ec2 "Action=ModifyVpcEndpoint&VpcEndpointId=$vpce&RemoveRouteTableId.1=$rtb")
        [ "$code" = 200 ] || die "moto: ModifyVpcEndpoint $vpce -$rtb answered $code"
        # moto keeps the prefix-list route when the table leaves the endpoint (AWS removes it).
        code=$(moto_ec2 "Action=DeleteRoute&RouteTableId=$rtb&DestinationPrefixListId=$pl")
        [ "$code" = 200 ] || die "moto: DeleteRoute $pl answered $code"
      done
      : >"$LAB_DIR/ec2-model.no-endpoint-routes"
    fi
  elif [ -e "$LAB_DIR/ec2-model.no-endpoint-routes" ]; then
    for svc in S3 DDB; do
      vpce=$(ec2_model "${svc}_VPCE") pl=$(ec2_model "${svc}_PL")
      code=$(moto_ec2 "Action=ModifyVpcEndpoint&VpcEndpointId=$vpce&AddRouteTableId.1=$rtb")
      [ "$code" = 200 ] || die "moto: ModifyVpcEndpoint $vpce +$rtb answered $code"
      # What AWS adds with the association (moto's CreateRoute takes the endpoint as gateway).
      code=$(moto_ec2 "Action=CreateRoute&RouteTableId=$rtb&DestinationPrefixListId=$pl&GatewayId=$vpce")
      [ "$code" = 200 ] || die "moto: CreateRoute $pl -> $vpce answered $code"
    done
    rm -f "$LAB_DIR/ec2-model.no-endpoint-routes"
  fi
}

s3_deny_rules() { # s3_deny_rules "because no VPC endpoint policy allows the %s action"
  local why=$1 host="$BUCKET.s3.$REGION.amazonaws.com" p
  p=$(principal)
  local loc list obj
  # shellcheck disable=SC2059
  loc="User: $p is not authorized to perform: s3:GetBucketLocation on resource: \\\"arn:aws:s3:::$BUCKET\\\" $(printf "$why" s3:GetBucketLocation)"
  # shellcheck disable=SC2059
  list="User: $p is not authorized to perform: s3:ListBucket on resource: \\\"arn:aws:s3:::$BUCKET\\\" $(printf "$why" s3:ListBucket)"
  # shellcheck disable=SC2059
  obj="User: $p is not authorized to perform: s3:GetObject on resource: \\\"arn:aws:s3:::$BUCKET/probe/object.txt\\\" $(printf "$why" s3:GetObject)"
  cat <<EOF
{"host": "$host", "path_prefix": "/?location", "response": {"s3_error": {"status": 403, "code": "AccessDenied", "message": "$loc"}}},
{"host": "$host", "path_prefix": "/probe/", "response": {"s3_error": {"status": 403, "code": "AccessDenied", "message": "$obj"}}},
{"host": "$host", "response": {"s3_error": {"status": 403, "code": "AccessDenied", "message": "$list"}}}
EOF
}

# The zonal endpoint of the directory bucket answers as S3 Express One Zone does (moto knows no
# directory buckets): CreateSession (GET /?session, signed with the role's credentials) hands
# out session credentials; HeadBucket, ListObjectsV2 and the ranged GetObject (signed with the
# session, x-amz-s3session-token) answer with S3's headers; anything else goes on to moto.
s3express_rules() {
  local host="$DIR_BUCKET.s3express-$S3X_ZONE.$REGION.amazonaws.com"
  local xml='<?xml version=\"1.0\" encoding=\"UTF-8\"?>' ns='xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"'
  local ids='["x-amz-id-2", "lab-s3express-host-id"], ["Server", "AmazonS3"]'
  local session="$xml<CreateSessionResult $ns><Credentials><SessionToken>lab-s3express-session-token</SessionToken><SecretAccessKey>lab-s3express-session-secret</SecretAccessKey><AccessKeyId>ASIALABS3EXPRESS0001</AccessKeyId><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></CreateSessionResult>"
  local list="$xml<ListBucketResult $ns><Name>$DIR_BUCKET</Name><Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>true</IsTruncated><Contents><Key>probe/object.txt</Key><Size>24</Size><StorageClass>EXPRESS_ONEZONE</StorageClass></Contents></ListBucketResult>"
  cat <<EOF
{"host": "$host", "method": "GET", "path_prefix": "/?session", "response": {"raw": {"status": 200, "headers": [["Content-Type", "application/xml"], $ids], "body": "$session"}}},
{"host": "$host", "method": "HEAD", "response": {"raw": {"status": 200, "headers": [["x-amz-bucket-region", "$REGION"], ["x-amz-bucket-location-type", "AvailabilityZone"], ["x-amz-bucket-location-name", "$S3X_ZONE"], $ids]}}},
{"host": "$host", "method": "GET", "path_prefix": "/?list-type=2", "response": {"raw": {"status": 200, "headers": [["Content-Type", "application/xml"], $ids], "body": "$list"}}},
{"host": "$host", "method": "GET", "path_prefix": "/probe/object.txt", "response": {"raw": {"status": 206, "headers": [["Content-Type", "text/plain"], ["Content-Range", "bytes 0-15/24"], ["x-amz-storage-class", "EXPRESS_ONEZONE"], $ids], "body": "hello from the l"}}}
EOF
}

aws_config() {
  local s3_rules="" ddb_rules="" s3_ca=lab
  if has_fault s3-bucket-other-region; then
    s3_rules+="${s3_rules:+,}{\"host\": \"$BUCKET.s3.$REGION.amazonaws.com\", \"response\": {\"s3_wrong_region\": {\"bucket\": \"$BUCKET\", \"region\": \"us-west-2\"}}}"
  fi
  if has_fault s3-endpoint-policy-deny; then
    s3_rules+="${s3_rules:+,}$(s3_deny_rules 'because no VPC endpoint policy allows the %s action')"
  fi
  if has_fault s3-bucket-policy-deny; then
    s3_rules+="${s3_rules:+,}$(s3_deny_rules 'with an explicit deny in a resource-based policy')"
  fi
  if has_fault ddb-identity-deny; then
    local m
    m="User: $(principal) is not authorized to perform: dynamodb:DescribeTable on resource: arn:aws:dynamodb:$REGION:$ACCOUNT:table/$TABLE because no identity-based policy allows the dynamodb:DescribeTable action"
    ddb_rules+="${ddb_rules:+,}{\"amz_target_contains\": \"DescribeTable\", \"response\": {\"dynamodb_error\": {\"status\": 400, \"type\": \"AccessDeniedException\", \"message\": \"$m\"}}}"
  fi
  local ec2_rules=""
  if has_fault ec2-describe-denied; then
    # EC2's own error document (ec2Query protocol), as AWS answers a role without ec2:Describe*.
    local body
    body="<?xml version=\\\"1.0\\\" encoding=\\\"UTF-8\\\"?><Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation. User: $(principal) is not authorized to perform: ec2:DescribeRouteTables because no identity-based policy allows the ec2:DescribeRouteTables action</Message></Error></Errors><RequestID>lab-ec2-denied</RequestID></Response>"
    ec2_rules="{\"host\": \"ec2.$REGION.amazonaws.com\", \"response\": {\"raw\": {\"status\": 403, \"reason\": \"Forbidden\", \"headers\": [[\"Content-Type\", \"text/xml;charset=UTF-8\"]], \"body\": \"$body\"}}}"
  fi
  local ec2_body_rules=""
  if has_fault ec2-vpc-model; then
    # moto's AWS-managed prefix lists hold AWS's real CIDRs; the lab's services live in the
    # lab's ranges, so EC2 answers the lists' entries as AWS would for them.
    ec2_body_rules="[\"PrefixListId=$(ec2_model S3_PL)\", $(pl_entries "$S3_PREFIX" "$S3_PREFIX6")],
      [\"PrefixListId=$(ec2_model DDB_PL)\", $(pl_entries "$DDB_PREFIX" "$DDB_PREFIX6")]"
  fi
  has_fault tls-intercept && s3_ca=inspect
  has_fault tls-intercept-untrusted && s3_ca=rogue
  local s3_names ddb_names up="127.0.0.1:$MOTO_PORT"
  # The certificates cover the FIPS and dual-stack names as AWS's do; the fronts hand moto
  # the classic names, which it routes.
  s3_names="[\"s3.$REGION.amazonaws.com\", \"*.s3.$REGION.amazonaws.com\", \"s3-fips.$REGION.amazonaws.com\", \"*.s3-fips.$REGION.amazonaws.com\", \"s3.dualstack.$REGION.amazonaws.com\", \"*.s3.dualstack.$REGION.amazonaws.com\"]"
  ddb_names="[\"dynamodb.$REGION.amazonaws.com\", \"*.ddb.$REGION.amazonaws.com\", \"dynamodb-fips.$REGION.amazonaws.com\", \"dynamodb.$REGION.api.aws\", \"*.ddb.$REGION.api.aws\"]"
  local rewrite="[[\"ddb.$REGION.amazonaws.com\", \"dynamodb.$REGION.amazonaws.com\"], [\"dynamodb-fips.$REGION.amazonaws.com\", \"dynamodb.$REGION.amazonaws.com\"], [\"dynamodb.$REGION.api.aws\", \"dynamodb.$REGION.amazonaws.com\"], [\"ddb.$REGION.api.aws\", \"dynamodb.$REGION.amazonaws.com\"]]"
  local s3_rewrite="[[\"$BUCKET.s3-fips.$REGION.amazonaws.com\", \"$BUCKET.s3.$REGION.amazonaws.com\"], [\"s3-fips.$REGION.amazonaws.com\", \"s3.$REGION.amazonaws.com\"], [\"$BUCKET.s3.dualstack.$REGION.amazonaws.com\", \"$BUCKET.s3.$REGION.amazonaws.com\"], [\"s3.dualstack.$REGION.amazonaws.com\", \"s3.$REGION.amazonaws.com\"]]"
  # The canned targets' rules sit after the fault rules, on every S3 and DynamoDB front.
  local canned=""
  if [ "$(canned_count)" -gt 0 ]; then
    canned="\"canned_targets\": {\"bucket_prefix\": \"$CANNED_BUCKET-\", \"table_prefix\": \"$CANNED_TABLE-\", \"region\": \"$REGION\"}, "
  fi
  local second=""
  if has_fault dns-second-address; then
    second="
    {\"bind\": \"$S3_IP2:443\", \"ca\": \"$s3_ca\", \"names\": $s3_names, \"upstream\": \"$up\", \"rules\": [$s3_rules], $canned$S3_SKEW},
    {\"bind\": \"$DDB_IP2:443\", \"ca\": \"lab\", \"names\": $ddb_names, \"upstream\": \"$up\", \"rules\": [$ddb_rules], \"host_rewrites\": $rewrite, $canned$DDB_SKEW},"
  fi
  cat <<EOF
{
  "ready_file": "$LAB_DIR/aws.ready",
  "cas": [
    {"id": "lab", "name": "$LAB_CA_NAME", "cert": "$LAB_DIR/ca/lab-ca.pem", "key": "$LAB_DIR/ca/lab-ca.key"},
    {"id": "inspect", "name": "$INSPECT_CA_NAME", "cert": "$LAB_DIR/ca/inspect-ca.pem", "key": "$LAB_DIR/ca/inspect-ca.key"},
    {"id": "rogue", "name": "$ROGUE_CA_NAME", "cert": "$LAB_DIR/ca/rogue-ca.pem", "key": "$LAB_DIR/ca/rogue-ca.key"}
  ],
  "fronts": [
    {"bind": "$S3_IP:443", "ca": "$s3_ca", "names": $s3_names, "upstream": "$up", "rules": [$s3_rules], "host_rewrites": $s3_rewrite, $canned$S3_SKEW},
    {"bind": "$DDB_IP:443", "ca": "lab", "names": $ddb_names, "upstream": "$up", "rules": [$ddb_rules], "host_rewrites": $rewrite, $canned$DDB_SKEW},$second
    {"bind": "[$S3_IP6]:443", "ca": "$s3_ca", "names": $s3_names, "upstream": "$up", "rules": [$s3_rules], "host_rewrites": $s3_rewrite, $canned$S3_SKEW},
    {"bind": "[$DDB_IP6]:443", "ca": "lab", "names": $ddb_names, "upstream": "$up", "rules": [$ddb_rules], "host_rewrites": $rewrite, $canned$DDB_SKEW},
    {"bind": "$S3X_IP:443", "ca": "lab", "names": ["*.s3express-$S3X_ZONE.$REGION.amazonaws.com", "s3express-control.$REGION.amazonaws.com"], "upstream": "$up", "rules": [$(s3express_rules)], $S3_SKEW},
    {"bind": "$IFE_IP:443", "ca": "lab", "names": $s3_names, "upstream": "$up", $S3_SKEW},
    {"bind": "$STS_IP:443", "ca": "lab", "names": ["sts.$REGION.amazonaws.com", "sts.amazonaws.com"], "upstream": "$up"},
    {"bind": "$EC2_IP:443", "ca": "lab", "names": ["ec2.$REGION.amazonaws.com"], "upstream": "$up", "rules": [$ec2_rules], "body_rules": [$ec2_body_rules]},
    {"bind": "$EC2_IFE_IP:443", "ca": "lab", "names": ["ec2.$REGION.amazonaws.com"], "upstream": "$up", "rules": [$ec2_rules], "body_rules": [$ec2_body_rules]}
  ],
  "tcp_sinks": [{"bind": "$CANARY_IP:443"}]
}
EOF
}

# (Re)starts a lab_servers process when its config changed or it is not running.
sync_server() { # sync_server NAME NS
  local name=$1 ns=$2 cfg new
  cfg="$LAB_DIR/$name.json"
  new=$("${name}_config")
  if [ -s "$cfg" ] && [ "$new" = "$(cat "$cfg")" ] && alive "$name"; then
    return 0
  fi
  stop_proc "$name"
  printf '%s\n' "$new" >"$cfg"
  rm -f "$LAB_DIR/$name.ready"
  start_proc "$name" "$ns" "$LAB_SERVERS" "$cfg"
  wait_file "$LAB_DIR/$name.ready" "$name" 10
}

sync_servers() {
  sync_server meta "$NS_META"
  sync_server aws "$NS_AWS"
}

# ---------------------------------------------------------------- network

write_resolv_conf() { # the instance's /etc/resolv.conf (ip netns exec bind-mounts it): SERVER...
  { printf 'nameserver %s\n' "$@"; printf 'options timeout:1 attempts:1\n'; } >"/etc/netns/$NS_INST/resolv.conf"
}

# The instance's /etc/hosts and /etc/nsswitch.conf (bind-mounted the same way), so the lab
# never depends on the machine's own files; extra lines pin names as an administrator would.
write_hosts() {
  printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n%s' "${1:-}" >"/etc/netns/$NS_INST/hosts"
  write_nsswitch 'files dns'
}
write_nsswitch() { printf 'hosts: %s\n' "$1" >"/etc/netns/$NS_INST/nsswitch.conf"; }
s3_names() { echo "s3.$REGION.amazonaws.com $BUCKET.s3.$REGION.amazonaws.com"; }

# Healthy routes, firewall and resolver; idempotent. Routes the faults touch carry proto static.
net_healthy() {
  local ns
  for ns in "${NAMESPACES[@]}"; do
    ipt "$ns" -F
    ipt "$ns" -t nat -F
    ipt "$ns" -t mangle -F
    ip6t "$ns" -F
    ip6t "$ns" -t mangle -F
  done
  # The route table of the subnet: the gateway endpoints' prefix-list routes; no internet.
  ip -n "$NS_RTR" route flush proto static
  ip -n "$NS_RTR" route add "$S3_PREFIX" via 10.255.0.2 proto static
  ip -n "$NS_RTR" route add "$DDB_PREFIX" via 10.255.0.2 proto static
  ip -n "$NS_RTR" route add "$S3X_PREFIX" via 10.255.0.2 proto static
  ip -n "$NS_RTR" route add blackhole default proto static
  # The same for IPv6 (the prefix lists' IPv6 entries; no egress-only internet gateway).
  ip -6 -n "$NS_RTR" route flush proto static
  ip -6 -n "$NS_RTR" route add "$S3_PREFIX6" via "$AWS_GWE_IP6" proto static
  ip -6 -n "$NS_RTR" route add "$DDB_PREFIX6" via "$AWS_GWE_IP6" proto static
  ip -6 -n "$NS_RTR" route add blackhole default proto static
  # What the NAT gateway does when a default route points at it.
  ipt "$NS_RTR" -t nat -A POSTROUTING -o igw -j MASQUERADE
  # The router answers the subnet from its own address (nat-gateway lends it the NAT's).
  ip -n "$NS_RTR" route replace "$SUBNET" dev sub proto kernel scope link src 10.0.1.1
  ip -n "$NS_RTR" -4 addr flush dev lo scope global
  # The VPC router is not a hop: where it delivers to a gateway endpoint or to a network
  # interface in the VPC, the packet arrives with the TTL it was sent with (a TTL restore
  # before the router's own decrement, which happens before FORWARD: hence PREROUTING). Faults
  # that remove or override a route remove its restore; the router playing a NAT gateway
  # (default route to igw) keeps its hop, as a NAT gateway is one.
  ttl_restore -A sub 4 "$S3_PREFIX" "$DDB_PREFIX" "$S3X_PREFIX" "$IFE_IP/32"
  ttl_restore -A sub 6 "$S3_PREFIX6" "$DDB_PREFIX6"
  # The firewall subnet's own route table sends the prefix lists to the endpoint (table 100).
  ttl_restore -A fw 4 "$S3_PREFIX" "$DDB_PREFIX"
  write_resolv_conf "$VPC_DNS_IP"
  write_hosts
}

# ttl_restore -A|-D|-I IFACE 4|6 DEST...: the router's TTL (hop limit) restore for packets from
# IFACE to each DEST; -I inserts a RETURN (no restore) instead, for a route that overrides one.
ttl_restore() {
  local op=$1 iface=$2 family=$3 d; shift 3
  for d in "$@"; do
    if [ "$op" = -I ]; then
      if [ "$family" = 4 ]; then ipt "$NS_RTR" -t mangle -I PREROUTING -i "$iface" -d "$d" -j RETURN
      else ip6t "$NS_RTR" -t mangle -I PREROUTING -i "$iface" -d "$d" -j RETURN; fi
    elif [ "$family" = 4 ]; then
      ipt "$NS_RTR" -t mangle "$op" PREROUTING -i "$iface" -d "$d" -j TTL --ttl-inc 1
    else
      ip6t "$NS_RTR" -t mangle "$op" PREROUTING -i "$iface" -d "$d" -j HL --hl-inc 1
    fi
  done
}

apply_net_fault() {
  case "$1" in
    sg-egress-drop)
      ipt46 "$NS_INST" -A OUTPUT -o eth0 -j DROP ;;
    nacl-ephemeral-narrow)
      ipt46 "$NS_RTR" -A FORWARD -o sub -p tcp ! --dport 1024:32767 -j DROP ;;
    nacl-outbound-deny-443)
      ipt46 "$NS_RTR" -A FORWARD -i sub -p tcp --dport 443 -j DROP ;;
    endpoint-route-missing)
      ip -n "$NS_RTR" route del "$S3_PREFIX" 2>/dev/null || true
      ip -n "$NS_RTR" route del "$DDB_PREFIX" 2>/dev/null || true
      ip -6 -n "$NS_RTR" route del "$S3_PREFIX6" 2>/dev/null || true
      ip -6 -n "$NS_RTR" route del "$DDB_PREFIX6" 2>/dev/null || true
      ttl_restore -D sub 4 "$S3_PREFIX" "$DDB_PREFIX" 2>/dev/null || true
      ttl_restore -D sub 6 "$S3_PREFIX6" "$DDB_PREFIX6" 2>/dev/null || true ;;
    endpoint-route-missing-v6)
      ip -6 -n "$NS_RTR" route del "$S3_PREFIX6" 2>/dev/null || true
      ip -6 -n "$NS_RTR" route del "$DDB_PREFIX6" 2>/dev/null || true
      ttl_restore -D sub 6 "$S3_PREFIX6" "$DDB_PREFIX6" 2>/dev/null || true ;;
    endpoint-route-unreachable-v6)
      ip -6 -n "$NS_RTR" route replace unreachable "$S3_PREFIX6" proto static
      ip -6 -n "$NS_RTR" route replace unreachable "$DDB_PREFIX6" proto static
      ttl_restore -D sub 6 "$S3_PREFIX6" "$DDB_PREFIX6" 2>/dev/null || true ;;
    s3express-endpoint-missing)
      ip -n "$NS_RTR" route del "$S3X_PREFIX" 2>/dev/null || true
      ttl_restore -D sub 4 "$S3X_PREFIX" 2>/dev/null || true ;;
    ddb-endpoint-missing)
      ip -n "$NS_RTR" route del "$DDB_PREFIX" 2>/dev/null || true
      ip -6 -n "$NS_RTR" route del "$DDB_PREFIX6" 2>/dev/null || true
      ttl_restore -D sub 4 "$DDB_PREFIX" 2>/dev/null || true
      ttl_restore -D sub 6 "$DDB_PREFIX6" 2>/dev/null || true ;;
    route-override-blackhole)
      ip -n "$NS_RTR" route replace blackhole 198.51.100.0/28 proto static
      ip -6 -n "$NS_RTR" route replace blackhole "$S3_OVERRIDE6" proto static
      ttl_restore -I sub 4 198.51.100.0/28
      ttl_restore -I sub 6 "$S3_OVERRIDE6" ;;
    blackhole-s3)
      ip -n "$NS_RTR" route replace blackhole "$S3_IP/32" proto static
      ip -6 -n "$NS_RTR" route replace blackhole "$S3_IP6/128" proto static
      ttl_restore -I sub 4 "$S3_IP/32"
      ttl_restore -I sub 6 "$S3_IP6/128" ;;
    blackhole-ddb)
      ip -n "$NS_RTR" route replace blackhole "$DDB_IP/32" proto static
      ip -6 -n "$NS_RTR" route replace blackhole "$DDB_IP6/128" proto static
      ttl_restore -I sub 4 "$DDB_IP/32"
      ttl_restore -I sub 6 "$DDB_IP6/128" ;;
    blackhole-second-addresses)
      ip -n "$NS_RTR" route replace blackhole "$S3_IP2/32" proto static
      ip -n "$NS_RTR" route replace blackhole "$DDB_IP2/32" proto static
      ttl_restore -I sub 4 "$S3_IP2/32" "$DDB_IP2/32" ;;
    nat-gateway)
      ip -n "$NS_RTR" route replace default via 10.255.1.2 dev igw proto static
      # In AWS the VPC router is never a hop; the NAT gateway is, answering from its private
      # address (the one EC2 describes). The router's ICMP errors toward the subnet take the
      # source of its route there: the NAT's address, on the router's lo.
      local nat_ip
      nat_ip=$(ec2_model NAT_IP)
      [ -n "$nat_ip" ] || die "no NAT_IP in $LAB_DIR/ec2-model.env (lab.sh up seeds it)"
      ip -n "$NS_RTR" addr replace "$nat_ip/32" dev lo
      ip -n "$NS_RTR" route replace "$SUBNET" dev sub proto kernel scope link src "$nat_ip" ;;
    appliance-in-path)
      # The VPC router delivers to the appliance's interface (no hop: the restore stays), the
      # appliance forwards (its hop), and the firewall subnet's table sends it to the endpoint.
      ip -n "$NS_RTR" route replace "$S3_PREFIX" via "$FW_IP" dev fw proto static ;;
    icmp-filtered)
      ipt "$NS_RTR" -A OUTPUT -p icmp --icmp-type time-exceeded -j DROP
      ip6t "$NS_RTR" -A OUTPUT -p ipv6-icmp --icmpv6-type time-exceeded -j DROP ;;
    dns-custom-resolver)
      write_resolv_conf "$CORP_DNS" ;;
    dns-search-wildcard)
      { printf 'search corp.lab\nnameserver %s\n' "$VPC_DNS_IP"
        printf 'options ndots:5 timeout:1 attempts:1\n'; } >"/etc/netns/$NS_INST/resolv.conf" ;;
    dns-first-server-silent)
      ipt "$NS_CORP" -A INPUT -d "$CORP_DNS" -p udp --dport 53 -j DROP
      write_resolv_conf "$CORP_DNS" "$VPC_DNS_IP" ;;
    local-cache-stale)
      write_resolv_conf 127.0.0.53 ;;
    nsswitch-resolve)
      write_nsswitch 'files resolve [!UNAVAIL=return] dns' ;;
    hosts-stale-s3)
      write_hosts "$S3_STALE_IP $(s3_names) # pinned during an outage
" ;;
    hosts-stale-s3-regional)
      write_hosts "$S3_STALE_IP s3.$REGION.amazonaws.com
" ;;
    hosts-pinned-s3)
      write_hosts "$S3_IP $(s3_names)
" ;;
    dns-custom-resolver-override)
      write_resolv_conf "$CORP_DNS_OVERRIDE" ;;
    imds-blocked)
      ipt "$NS_META" -A INPUT -p tcp --dport 80 -j DROP ;;
    proxy-down)
      ipt "$NS_CORP" -A INPUT -p tcp --dport 3128 -j REJECT --reject-with tcp-reset ;;
    s3-port-8443)
      ipt "$NS_AWS" -t nat -A PREROUTING -d "$S3_IP" -p tcp --dport 8443 -j DNAT --to-destination "$S3_IP:443" ;;
    *) : ;; # a server fault: the configs say it
  esac
}

veth() { # veth NS1 IF1 NS2 IF2
  ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
}

build_network() {
  local ns
  [ -d /etc/netns ] || : >"$LAB_DIR/made-etc-netns"
  mkdir -p "/etc/netns/$NS_INST" "/etc/netns/$NS_CORP"
  for ns in "${NAMESPACES[@]}"; do
    ip netns add "$ns"
    # No IPv6 duplicate address detection (addresses usable at once, link-local ones too) and
    # no router advertisements: the lab configures every IPv6 address and route itself.
    nsx "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
      net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
      net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
    ip -n "$ns" link set lo up
  done
  # The router forwards both families and answers every packet it cannot route with an ICMPv6
  # error at once (ratelimit 0; endpoint-route-unreachable-v6), never with a few per second.
  nsx "$NS_RTR" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv6.icmp.ratelimit=0
  # ICMP time exceeded is rate-limited per destination (a burst of 6, then 1 a second): the hop
  # checks of back-to-back scenarios would see `*` where a hop answers. No limit in the lab.
  nsx "$NS_RTR" sysctl -qw net.ipv4.icmp_ratelimit=0

  # instance eth0 <-> router "sub" (the subnet; the router answers ARP for the interface
  # endpoint's address, which lives in the aws namespace)
  veth "$NS_INST" eth0 "$NS_RTR" sub
  ip -n "$NS_INST" addr add "$INST_IP/24" dev eth0
  ip -n "$NS_INST" route add default via 10.0.1.1
  ip -n "$NS_RTR" addr add 10.0.1.1/24 dev sub
  # The VPC router answers ARP at once; Linux delays proxy ARP answers by up to 0.8 s
  # (neigh proxy_delay), longer than --silence-timeout: a first connection to an interface
  # endpoint would look silent.
  nsx "$NS_RTR" sysctl -qw net.ipv4.conf.sub.proxy_arp=1 net.ipv4.neigh.sub.proxy_delay=0
  ip -n "$NS_INST" addr add "$INST_IP6/64" dev eth0 nodad
  ip -n "$NS_RTR" addr add "$RTR_SUB_IP6/64" dev sub nodad
  ip -n "$NS_INST" -6 route add default via "$RTR_SUB_IP6"

  # instance meta0 <-> meta "inst": the link-local services, outside route table, SG and NACL
  veth "$NS_INST" meta0 "$NS_META" inst
  ip -n "$NS_INST" route add 169.254.169.252/30 dev meta0 src "$INST_IP"
  ip -n "$NS_META" addr add "$IMDS_IP/32" dev lo
  ip -n "$NS_META" addr add "$VPC_DNS_IP/32" dev lo
  ip -n "$NS_META" route add "$SUBNET" dev inst

  # router "gwe" <-> aws "gwe": the gateway endpoint; router "igw" <-> aws "igw": the internet
  veth "$NS_RTR" gwe "$NS_AWS" gwe
  ip -n "$NS_RTR" addr add 10.255.0.1/30 dev gwe
  ip -n "$NS_AWS" addr add 10.255.0.2/30 dev gwe
  veth "$NS_RTR" igw "$NS_AWS" igw
  ip -n "$NS_RTR" addr add 10.255.1.1/30 dev igw
  ip -n "$NS_AWS" addr add 10.255.1.2/30 dev igw
  ip -n "$NS_AWS" route add "$VPC_CIDR" via 10.255.0.1
  local a
  for a in "$S3_IP" "$DDB_IP" "$S3_IP2" "$DDB_IP2" "$S3X_IP" "$IFE_IP" "$EC2_IFE_IP" "$CANARY_IP" "$STS_IP" "$EC2_IP"; do
    ip -n "$NS_AWS" addr add "$a/32" dev lo
  done
  ip -n "$NS_RTR" addr add "$RTR_GWE_IP6/64" dev gwe nodad
  ip -n "$NS_AWS" addr add "$AWS_GWE_IP6/64" dev gwe nodad
  ip -n "$NS_AWS" -6 route add "$VPC_CIDR6" via "$RTR_GWE_IP6"
  for a in "$S3_IP6" "$DDB_IP6"; do
    ip -n "$NS_AWS" addr add "$a/128" dev lo nodad
  done
  ip -n "$NS_RTR" route add "$IFE_IP/32" via 10.255.0.2
  ip -n "$NS_RTR" route add "$EC2_IFE_IP/32" via 10.255.0.2

  # router "fw" <-> fw eth0: a firewall subnet with an appliance that forwards (fault
  # appliance-in-path); its own route table (100) sends the prefix lists to the endpoint.
  veth "$NS_RTR" fw "$NS_FW" eth0
  ip -n "$NS_RTR" addr add "$FW_RTR_IP/24" dev fw
  ip -n "$NS_FW" addr add "$FW_IP/24" dev eth0
  ip -n "$NS_FW" route add default via "$FW_RTR_IP"
  nsx "$NS_FW" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.icmp_ratelimit=0
  ip -n "$NS_RTR" rule add iif fw table 100 pref 100
  ip -n "$NS_RTR" route add "$S3_PREFIX" via 10.255.0.2 table 100
  ip -n "$NS_RTR" route add "$DDB_PREFIX" via 10.255.0.2 table 100

  # router "corp" <-> corp eth0: another subnet with the corporate proxy and DNS
  veth "$NS_RTR" corp "$NS_CORP" eth0
  ip -n "$NS_RTR" addr add 10.0.2.1/24 dev corp
  for a in "$CORP_IP" "$CORP_DNS" "$CORP_DNS_OVERRIDE"; do
    ip -n "$NS_CORP" addr add "$a/24" dev eth0
  done
  ip -n "$NS_CORP" route add default via 10.0.2.1
  printf 'nameserver %s\noptions timeout:1 attempts:1\n' "$CORP_DNS" >"/etc/netns/$NS_CORP/resolv.conf"
}

write_files() {
  mkdir -p "$LAB_DIR"/{pids,logs,ca,corp}
  # Shared AWS config with the profiles scenarios select (AWS_CONFIG_FILE + AWS_PROFILE); a
  # profile changes nothing until it is selected.
  cat >"$LAB_DIR/aws-config" <<EOF
[default]
region = $REGION

[profile fips]
region = $REGION
use_fips_endpoint = true

[profile dualstack]
use_dualstack_endpoint = true

[profile pathstyle]
region = $REGION
s3 =
  addressing_style = path

[profile elsewhere]
region = $REGION
services = s3-elsewhere

[services s3-elsewhere]
s3 =
  endpoint_url = https://s3.us-east-1.amazonaws.com

[profile badurl]
region = $REGION
endpoint_url = not a url

[profile port8443]
region = $REGION
services = s3-port8443

[services s3-port8443]
s3 =
  endpoint_url = https://s3.$REGION.amazonaws.com:8443
EOF
  cat >"$LAB_DIR/ip-ranges.json" <<EOF
{
  "syncToken": "1732406400",
  "createDate": "2026-11-01-00-00-00",
  "prefixes": [
    {"ip_prefix": "$S3_PREFIX", "region": "$REGION", "service": "AMAZON", "network_border_group": "$REGION"},
    {"ip_prefix": "$S3_PREFIX", "region": "$REGION", "service": "S3", "network_border_group": "$REGION"},
    {"ip_prefix": "$DDB_PREFIX", "region": "$REGION", "service": "AMAZON", "network_border_group": "$REGION"},
    {"ip_prefix": "$DDB_PREFIX", "region": "$REGION", "service": "DYNAMODB", "network_border_group": "$REGION"},
    {"ip_prefix": "$S3_USE1_PREFIX", "region": "us-east-1", "service": "S3", "network_border_group": "us-east-1"},
    {"ip_prefix": "$DDB_USE1_PREFIX", "region": "us-east-1", "service": "DYNAMODB", "network_border_group": "us-east-1"}
  ],
  "ipv6_prefixes": [
    {"ipv6_prefix": "$S3_PREFIX6", "region": "$REGION", "service": "AMAZON", "network_border_group": "$REGION"},
    {"ipv6_prefix": "$S3_PREFIX6", "region": "$REGION", "service": "S3", "network_border_group": "$REGION"},
    {"ipv6_prefix": "$DDB_PREFIX6", "region": "$REGION", "service": "AMAZON", "network_border_group": "$REGION"},
    {"ipv6_prefix": "$DDB_PREFIX6", "region": "$REGION", "service": "DYNAMODB", "network_border_group": "$REGION"}
  ]
}
EOF
  local port
  for port in 3128 3129 3130; do
    cat >"$LAB_DIR/corp/tinyproxy-$port.conf" <<EOF
Port $port
Listen $CORP_IP
Timeout 30
MaxClients 50
Allow $VPC_CIDR
ConnectPort 443
LogLevel Info
LogFile "$LAB_DIR/logs/tinyproxy-$port.access.log"
ViaProxyName "corp-proxy"
EOF
  done
  # 3129: the proxy's ACL denies every destination.
  : >"$LAB_DIR/corp/deny-all.filter"
  printf 'Filter "%s"\nFilterDefaultDeny Yes\n' "$LAB_DIR/corp/deny-all.filter" >>"$LAB_DIR/corp/tinyproxy-3129.conf"
  # 3130: Basic authentication (the probe must never print the password).
  printf 'BasicAuth labuser %s\n' "$PROXY_PASSWORD" >>"$LAB_DIR/corp/tinyproxy-3130.conf"
}

dnsmasq_args() { # dnsmasq_args LISTEN S3_ANSWER
  echo -k --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces --listen-address="$1" \
    --pid-file= --user=root --group=root --log-facility=- \
    --address=/s3."$REGION".amazonaws.com/"$2" \
    --address=/dynamodb."$REGION".amazonaws.com/"$DDB_IP" \
    --address=/ddb."$REGION".amazonaws.com/"$DDB_IP" \
    --address=/sts."$REGION".amazonaws.com/"$STS_IP" \
    --local=/#/
}

start_daemons() {
  [ -x "$LAB_SERVERS" ] || die "$LAB_SERVERS missing: cargo build --example lab_servers"
  [ -x "$MOTO" ] || die "$MOTO missing: sudo bash scripts/install-lab-deps.sh"
  local t
  for t in tinyproxy dnsmasq iptables; do
    command -v "$t" >/dev/null || die "$t missing: sudo bash scripts/install-lab-deps.sh"
  done
  start_proc moto "$NS_AWS" "$MOTO" -H 127.0.0.1 -p "$MOTO_PORT"
  start_proc tinyproxy-3128 "$NS_CORP" tinyproxy -d -c "$LAB_DIR/corp/tinyproxy-3128.conf"
  start_proc tinyproxy-3129 "$NS_CORP" tinyproxy -d -c "$LAB_DIR/corp/tinyproxy-3129.conf"
  start_proc tinyproxy-3130 "$NS_CORP" tinyproxy -d -c "$LAB_DIR/corp/tinyproxy-3130.conf"
  # shellcheck disable=SC2046
  start_proc dnsmasq-corp "$NS_CORP" dnsmasq $(dnsmasq_args "$CORP_DNS" "$S3_IP")
  # shellcheck disable=SC2046
  start_proc dnsmasq-override "$NS_CORP" dnsmasq $(dnsmasq_args "$CORP_DNS_OVERRIDE" "$OUTSIDE_IP")
  # A local caching resolver on the instance (at systemd-resolved's stub address) holding a
  # stale S3 answer; asked when resolv.conf points at it (fault local-cache-stale) and, where
  # libnss_resolve is installed, by nsswitch's `resolve`.
  # shellcheck disable=SC2046
  start_proc dnsmasq-stub "$NS_INST" dnsmasq $(dnsmasq_args 127.0.0.53 "$S3_STALE_IP")
  sync_servers
  wait_listen tinyproxy-3128 "$NS_CORP" tcp "$CORP_IP:3128"
  wait_listen tinyproxy-3129 "$NS_CORP" tcp "$CORP_IP:3129"
  wait_listen tinyproxy-3130 "$NS_CORP" tcp "$CORP_IP:3130"
  wait_listen dnsmasq-corp "$NS_CORP" udp "$CORP_DNS:53"
  wait_listen dnsmasq-override "$NS_CORP" udp "$CORP_DNS_OVERRIDE:53"
  wait_listen dnsmasq-stub "$NS_INST" udp "127.0.0.53:53"
}

# Seeds moto (once it answers): the bucket with an object, the table with an item.
seed_moto() {
  ip netns exec "$NS_AWS" "$MOTO_PY" - "$MOTO_PORT" "$REGION" "$BUCKET" "$TABLE" "$AP_ALIAS" "$LAB_DIR/ec2-model.env" >>"$LAB_DIR/logs/seed.log" 2>&1 <<'PY' || { tail -n 20 "$LAB_DIR/logs/seed.log" >&2; die "seeding moto failed"; }
import sys, time, urllib.request
port, region, bucket, table, alias, model_file = sys.argv[1:7]
url = f"http://127.0.0.1:{port}"
deadline = time.time() + 30
while True:
    try:
        urllib.request.urlopen(url + "/moto-api/data.json", timeout=1).read()
        break
    except Exception as e:
        if time.time() > deadline:
            sys.exit(f"moto did not answer on {url}: {e}")
        time.sleep(0.05)
import boto3
kw = dict(endpoint_url=url, region_name=region, aws_access_key_id="testing",
          aws_secret_access_key="testing")
s3 = boto3.client("s3", **kw)
s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
s3.put_object(Bucket=bucket, Key="probe/object.txt", Body=b"hello from the lab")
s3.create_bucket(Bucket=alias, CreateBucketConfiguration={"LocationConstraint": region})
s3.put_object(Bucket=alias, Key="probe/object.txt", Body=b"hello from the lab's access point")
ddb = boto3.client("dynamodb", **kw)
ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                 AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                 KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
ddb.put_item(TableName=table, Item={"pk": {"S": "id-1"}, "note": {"S": "seeded by lab.sh"}})
# moto builds its EC2 and STS backends on their first call, holding the interpreter for a
# second or more: done here, not during the first scenario that reaches them (through NAT),
# whose signed calls would otherwise all time out at --timeout 1.
ec2 = boto3.client("ec2", **kw)
ec2.describe_vpcs()
boto3.client("sts", **kw).get_caller_identity()
# The lab's VPC as EC2 describes it (fault ec2-vpc-model): the subnet and its route table with
# the two gateway endpoints' prefix-list routes, a public subnet with the NAT gateway, the
# instance's security group (egress open) and the default network ACL (open).
vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
public = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
rtb = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
ec2.associate_route_table(RouteTableId=rtb, SubnetId=subnet)
igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
# moto gives a NAT gateway a random private address anywhere in 10.0.0.0/8 (AWS takes one of
# its subnet's). The lab's router answers from it under nat-gateway, so it must not be one of
# the lab's own: a clash is deleted (it stays listed as "deleted", as in AWS) and made again.
import ipaddress
taken = [ipaddress.ip_network(n) for n in
         ("10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24", "10.255.0.0/16")]
while True:
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    made = ec2.create_nat_gateway(SubnetId=public, AllocationId=eip)["NatGateway"]
    nat = made["NatGatewayId"]
    nat_ip = ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["NatGatewayAddresses"][0]["PrivateIp"]
    addr = ipaddress.ip_address(nat_ip)
    if not any(addr in n for n in taken) and str(addr).split(".")[-1] not in ("0", "255"):
        break
    ec2.delete_nat_gateway(NatGatewayId=nat)
vpce = {}
for svc in ("s3", "dynamodb"):
    vpce[svc] = ec2.create_vpc_endpoint(VpcEndpointType="Gateway", VpcId=vpc, RouteTableIds=[rtb],
                                        ServiceName=f"com.amazonaws.{region}.{svc}")["VpcEndpoint"]["VpcEndpointId"]
sg = ec2.create_security_group(VpcId=vpc, GroupName="lab-instance", Description="the lab instance")["GroupId"]
lists = {p["PrefixListName"]: p["PrefixListId"] for p in ec2.describe_prefix_lists()["PrefixLists"]}
with open(model_file, "w") as f:
    f.write(f"VPC_ID={vpc}\nSUBNET_ID={subnet}\nRTB_ID={rtb}\nSG_ID={sg}\nNAT_ID={nat}\n"
            f"NAT_IP={nat_ip}\nPUBLIC_SUBNET_ID={public}\n"
            f"S3_VPCE={vpce['s3']}\nDDB_VPCE={vpce['dynamodb']}\n"
            f"S3_PL={lists[f'com.amazonaws.{region}.s3']}\nDDB_PL={lists[f'com.amazonaws.{region}.dynamodb']}\n")
print("seeded", bucket, table, "and", vpc)
PY
}

# Seeds N more buckets and tables like seed_moto's, and gives the buckets DNS names; with
# --canned, names N buckets and tables that the fronts answer themselves instead.
cmd_seed() {
  need_root
  [ -d "$LAB_DIR" ] && ns_exists "$NS_INST" || die "the lab is not up (lab.sh up)"
  local canned=0
  [ "${1:-}" = --canned ] && { canned=1; shift; }
  local n=${1:-}
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 99 ] || die "usage: lab.sh seed [--canned] N (1-99)"
  if [ "$canned" = 1 ]; then
    echo "$n" >"$LAB_DIR/canned-targets"
    sync_servers
    return
  fi
  ip netns exec "$NS_AWS" "$MOTO_PY" - "$MOTO_PORT" "$REGION" "$BUCKET" "$TABLE" "$n" >>"$LAB_DIR/logs/seed.log" 2>&1 <<'PY' || { tail -n 20 "$LAB_DIR/logs/seed.log" >&2; die "seeding moto failed"; }
import sys
import boto3
port, region, bucket, table, n = sys.argv[1:6]
kw = dict(endpoint_url=f"http://127.0.0.1:{port}", region_name=region,
          aws_access_key_id="testing", aws_secret_access_key="testing")
s3 = boto3.client("s3", **kw)
ddb = boto3.client("dynamodb", **kw)
have_b = {b["Name"] for b in s3.list_buckets()["Buckets"]}
have_t = set(ddb.list_tables()["TableNames"])
for i in range(1, int(n) + 1):
    b, t = f"{bucket}-{i:02d}", f"{table}-{i:02d}"
    if b not in have_b:
        s3.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": region})
        s3.put_object(Bucket=b, Key="probe/object.txt", Body=b"hello from the lab")
    if t not in have_t:
        ddb.create_table(TableName=t, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        ddb.put_item(TableName=t, Item={"pk": {"S": "id-1"}, "note": {"S": "seeded by lab.sh seed"}})
print("seeded", n, "buckets and tables")
PY
  local i
  for ((i = 1; i <= n; i++)); do printf '%s-%02d\n' "$BUCKET" "$i"; done >"$LAB_DIR/extra-buckets"
  sync_servers
}

write_trust_bundle() { # the instance trusts the lab CA and the inspection CA, not the rogue one
  cat "$LAB_DIR/ca/lab-ca.pem" "$LAB_DIR/ca/inspect-ca.pem" >"$LAB_DIR/trust.pem.tmp"
  mv "$LAB_DIR/trust.pem.tmp" "$LAB_DIR/trust.pem"
}

# ---------------------------------------------------------------- commands

cmd_down() {
  need_root
  local name
  if [ -d "$LAB_DIR/pids" ]; then
    for f in "$LAB_DIR"/pids/*.pid; do
      [ -e "$f" ] || continue
      name=$(basename "$f" .pid)
      stop_proc "$name"
    done
  fi
  kill_ns_procs
  local ns
  for ns in "${NAMESPACES[@]}"; do
    ns_exists "$ns" && ip netns del "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
  # /etc/netns itself only if the lab made it and nothing else lives there.
  [ -e "$LAB_DIR/made-etc-netns" ] && rmdir /etc/netns 2>/dev/null || true
  rm -rf "$LAB_DIR"
}

# The EXIT trap of `up`: a failed or interrupted up removes everything it built so far (no vpl-*
# namespace, daemon or /etc/netns entry outlives it) and keeps the daemons' logs.
up_failed() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  log "up failed (exit $rc): removing what it built"
  if [ -d "$LAB_DIR/logs" ]; then
    rm -rf "$FAILED_LOGS"
    cp -a "$LAB_DIR/logs" "$FAILED_LOGS" && log "the daemons' logs are in $FAILED_LOGS"
  fi
  cmd_down
  exit "$rc"
}

cmd_up() {
  need_root
  local started=$SECONDS
  cmd_down
  rm -rf "$FAILED_LOGS"
  trap up_failed EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mkdir -p "$LAB_DIR"
  : >"$LAB_DIR/faults"
  write_files
  build_network
  net_healthy
  start_daemons
  write_trust_bundle
  seed_moto
  trap - EXIT INT TERM
  log "up in $((SECONDS - started)) s: instance $NS_INST ($INST_IP); lab files in $LAB_DIR"
}

cmd_apply() {
  need_root
  [ -d "$LAB_DIR" ] && ns_exists "$NS_INST" || die "the lab is not up (lab.sh up)"
  local f
  for f in "$@"; do
    known_fault "$f" || die "unknown fault '$f' (lab.sh faults lists them)"
  done
  local all u
  all=$(printf '%s\n' "$@"; cat "$LAB_DIR/faults")
  if grep -qx ec2-vpc-model <<<"$all"; then
    for u in "${EC2_MODEL_UNMIRRORED[@]}"; do
      grep -qx "$u" <<<"$all" && die "fault '$u' is not mirrored in the EC2 model: not with ec2-vpc-model"
    done
  fi
  for f in "$@"; do
    has_fault "$f" && continue
    echo "$f" >>"$LAB_DIR/faults"
    apply_net_fault "$f"
  done
  ec2_model_sync
  sync_servers
}

cmd_reset() {
  need_root
  [ -d "$LAB_DIR" ] && ns_exists "$NS_INST" || die "the lab is not up (lab.sh up)"
  : >"$LAB_DIR/faults"
  net_healthy
  ec2_model_sync
  sync_servers
  local p
  for p in moto tinyproxy-3128 tinyproxy-3129 tinyproxy-3130 dnsmasq-corp dnsmasq-override dnsmasq-stub; do
    alive "$p" || die "$p is not running (see $LAB_DIR/logs/$p.log); lab.sh up rebuilds the lab"
  done
}

cmd_status() {
  local ns f name
  if [ ! -d "$LAB_DIR" ]; then echo "lab: down"; fi
  for ns in "${NAMESPACES[@]}"; do
    if ns_exists "$ns"; then echo "namespace $ns: up"; else echo "namespace $ns: absent"; fi
  done
  [ -d "$LAB_DIR" ] || return 0
  for f in "$LAB_DIR"/pids/*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid)
    if alive "$name"; then echo "process $name: pid $(pid_of "$name")"; else echo "process $name: DEAD"; fi
  done
  echo "faults: $(tr '\n' ' ' <"$LAB_DIR/faults" 2>/dev/null)"
  if ns_exists "$NS_RTR"; then
    echo "route table ($NS_RTR):"
    { ip -n "$NS_RTR" route show proto static; ip -6 -n "$NS_RTR" route show proto static; } | sed 's/^/  /'
  fi
  for ns in "${NAMESPACES[@]}"; do
    ns_exists "$ns" || continue
    local rules
    rules=$(ipt "$ns" -S | grep -v '^-P' || true; ipt "$ns" -t nat -S | grep -v '^-P' || true
      ipt "$ns" -t mangle -S | grep -v '^-P' || true
      ip6t "$ns" -S | grep -v '^-P' | sed 's/^/(ip6) /' || true
      ip6t "$ns" -t mangle -S | grep -v '^-P' | sed 's/^/(ip6) /' || true)
    [ -n "$rules" ] && { echo "iptables $ns:"; echo "$rules" | sed 's/^/  /'; }
  done
  echo "instance resolver: $(grep nameserver "/etc/netns/$NS_INST/resolv.conf" 2>/dev/null || echo none)"
  echo "run the probe: bash lab/lab.sh probe [VAR=VALUE...] [ARGS...]"
}

cmd_faults() {
  local f
  for f in "${FAULTS[@]}"; do printf '%-30s %s\n' "${f%%:*}" "${f#*:}"; done
}

# Runs a command in the instance namespace with the environment the lab's probe gets.
cmd_exec() {
  [ "$#" -gt 0 ] || die "usage: lab.sh exec CMD..."
  local home
  home=$(mktemp -d "$LAB_DIR/home.XXXXXX")
  set +e
  ip netns exec "$NS_INST" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$home" \
    AWS_CONFIG_FILE="$home/none" AWS_SHARED_CREDENTIALS_FILE="$home/none" \
    SSL_CERT_FILE="$LAB_DIR/trust.pem" "$@"
  local rc=$?
  rm -rf "$home"
  return "$rc"
}

# One lab per machine: commands that change it hold the machine-wide lock ($LOCK_FILE).
# run_scenarios.py, benches/bench.py and scripts/demo.sh hold it for a whole run and set
# VPL_LOCK_HELD=1. The daemons never inherit fd 9 (start_proc closes it).
lock() {
  [ "${VPL_LOCK_HELD:-}" = 1 ] && return 0
  exec 9>>"$LOCK_FILE" || die "cannot open the lab lock $LOCK_FILE"
  if ! flock -n 9; then
    log "another lab command or scenario run holds the lab; waiting"
    flock 9
  fi
}

# The probe as run_scenarios.py runs it (standard arguments; a clean environment).
cmd_probe() {
  [ -d "$LAB_DIR" ] && ns_exists "$NS_INST" || die "the lab is not up (lab.sh up)"
  local bin=${VPL_PROBE:-$REPO/target/debug/vpce-probe} envs=()
  [ -x "$bin" ] || die "$bin missing: cargo build --bin vpce-probe (or set VPL_PROBE)"
  while [ "$#" -gt 0 ] && [[ "$1" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; do envs+=("$1"); shift; done
  cmd_exec env "${envs[@]}" "$bin" probe --bucket "$BUCKET" --table "$TABLE" \
    --key probe/object.txt --item-key '{"pk":{"S":"id-1"}}' \
    --ip-ranges "$LAB_DIR/ip-ranges.json" --internet-canary "$CANARY_IP:443" \
    --expect-issuer "$LAB_CA_NAME" --timeout 1 --deadline 15 --no-progress "$@"
}

main() {
  local cmd=${1:-}
  shift || true
  case "$cmd" in up | down | apply | reset | seed) need_root; lock ;; esac
  case "$cmd" in
    up) cmd_up ;;
    down) cmd_down ;;
    apply) [ "$#" -gt 0 ] || die "usage: lab.sh apply FAULT..."; cmd_apply "$@" ;;
    reset) cmd_reset ;;
    status) cmd_status ;;
    faults) cmd_faults ;;
    exec) cmd_exec "$@" ;;
    probe) cmd_probe "$@" ;;
    seed) cmd_seed "$@" ;;
    *) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; [ -z "$cmd" ] || exit 2 ;;
  esac
}

main "$@"
