# kubeaccept: print one node's facts. Runs as `sh -c` with arguments:
#   $1 section marker token, $2 probe timeout (s), $3 cluster DNS address ("-": none),
#   $4.. TCP probes as ADDRESS:PORT.
# Each section starts with a line "@@TOKEN NAME"; the parser on the other side splits on it.
tok=$1; pt=$2; dns=$3; shift 3
sec() { printf '\n@@%s %s\n' "$tok" "$1"; }
have() { command -v "$1" >/dev/null 2>&1; }
# A one-line file (/proc/sys) read by the shell itself: every fork is node CPU, per host.
val() { v=; [ -r "$1" ] && { IFS= read -r v || [ -n "$v" ]; } < "$1"; }
PATH=$PATH:/usr/sbin:/sbin; export PATH LC_ALL=C

sec hostname; val /proc/sys/kernel/hostname && printf '%s\n' "$v"
sec kernel; val /proc/sys/kernel/osrelease && printf '%s\n' "$v"
sec os
while IFS= read -r l || [ -n "$l" ]; do
  case $l in PRETTY_NAME=*) printf '%s\n' "${l#PRETTY_NAME=}" ;; esac
done 2>/dev/null < /etc/os-release
sec id; id -u
sec sysctl
for f in /proc/sys/net/ipv4/conf/*/rp_filter; do
  i=${f#/proc/sys/net/ipv4/conf/}; val "$f" && echo "net.ipv4.conf.${i%/rp_filter}.rp_filter $v"
done
val /proc/sys/net/ipv4/ip_forward && echo "net.ipv4.ip_forward $v"
val /proc/sys/net/bridge/bridge-nf-call-iptables && echo "net.bridge.bridge-nf-call-iptables $v"
sec swaps; cat /proc/swaps
# What systemd will start at boot: swap units (and their enabling/masking symlinks), the
# zram generator and its configs, the kernel command line, /dev/disk links for UUID= & co.
sec swap-boot
for d in /etc/systemd/system /run/systemd/system /usr/local/lib/systemd/system \
         /usr/lib/systemd/system /lib/systemd/system; do
  [ -d "$d" ] || continue
  # merged /usr (Debian 12, Ubuntu, RHEL 9): /lib is /usr/lib, already read
  [ "$d" = /lib/systemd/system ] && [ "$d" -ef /usr/lib/systemd/system ] && continue
  for f in "$d"/*.swap "$d"/*.wants/*.swap "$d"/*.requires/*.swap \
           "$d"/systemd-zram-setup@*.service "$d"/swap.target; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    if [ -L "$f" ]; then echo "link $f $(readlink "$f")"
    else echo "unit $f $(head -c 16384 "$f" | base64 -w0)"; fi
  done
done
# zram-generator reads the main file and the drop-ins of these four (zram-generator.conf(5));
# a link to /dev/null empties a file, a dangling link is no file
for d in /usr/lib/systemd /usr/local/lib/systemd /etc/systemd /run/systemd; do
  for f in "$d"/zram-generator.conf "$d"/zram-generator.conf.d/*.conf; do
    if [ -L "$f" ] && [ "$(readlink "$f")" = /dev/null ]; then echo "zram-null $f"
    elif [ -f "$f" ]; then echo "zram-conf $f $(head -c 16384 "$f" | base64 -w0)"; fi
  done
done
for f in /usr/lib/systemd/system-generators/zram-generator \
         /lib/systemd/system-generators/zram-generator; do
  [ -e "$f" ] && echo "zram-generator $f"
done
# a generator of the same name in /etc or /run replaces it; a link to /dev/null disables it
for f in /etc/systemd/system-generators/zram-generator /run/systemd/system-generators/zram-generator; do
  [ -L "$f" ] && echo "generator-link $f $(readlink "$f")"
done
read -r l < /proc/meminfo && echo "meminfo $l"
val /proc/cmdline; echo "cmdline $v"
for d in by-uuid by-label by-partuuid by-partlabel; do
  for l in /dev/disk/$d/*; do [ -L "$l" ] && echo "disk $l"; done
done
val /sys/module/zswap/parameters/enabled && echo "zswap $v"
# which swap devices and files named by fstab or by units exist
awk 'FILENAME == "/etc/fstab" { if ($1 !~ /^#/ && $3 == "swap") print $1; next }
     sub(/^What=/, "")' /etc/fstab /etc/systemd/system/*.swap /run/systemd/system/*.swap \
  2>/dev/null | while read -r src; do
  case $src in /*) [ -e "$src" ] && echo "exists $src" ;; esac
done
# Services a boot target wants (a .wants/.requires link in a unit directory) whose unit file,
# drop-ins or ExecStart* script turns swap on: the unit files of each (a mask is a link to
# /dev/null), the links that want it, and the known packages' config files.
sec swap-services
udirs="/etc/systemd/system /run/systemd/system /usr/local/lib/systemd/system /usr/lib/systemd/system"
[ /lib/systemd/system -ef /usr/lib/systemd/system ] || udirs="$udirs /lib/systemd/system"
names=" "
for d in $udirs; do
  for l in "$d"/*.target.wants/*.service "$d"/*.target.requires/*.service; do
    [ -L "$l" ] || [ -e "$l" ] || continue
    case $names in *" ${l##*/} "*) ;; *) names="$names${l##*/} " ;; esac
  done
done
swapish() { case $1 in *swapon*|*mkswap*|*zram*|*dphys-swapfile*) return 0 ;; esac; return 1; }
for n in $names; do
  files= hit=
  for d in $udirs; do
    for f in "$d/$n" "$d/$n.d"/*.conf; do
      if [ -L "$f" ] && [ "$(readlink "$f")" = /dev/null ]; then files="$files $f"; continue; fi
      [ -f "$f" ] || continue
      files="$files $f"; t=$(head -c 16384 "$f")
      # the unit names swap itself, or one of its ExecStart* programs is a script that does
      swapish "$t" && { hit=1; continue; }
      while IFS= read -r l; do
        case $l in ExecStart=*|ExecStartPre=*|ExecStartPost=*) ;; *) continue ;; esac
        x=${l#*=}; x=${x#[-@:+!]}; x=${x#[-@:+!]}; x=${x#[-@:+!]}; x=${x%% *}
        case $x in /*) ;; *) continue ;; esac
        first=; [ -f "$x" ] && IFS= read -r first < "$x" 2>/dev/null
        case $first in '#!'*) ;; *) continue ;; esac
        s=$(head -c 16384 "$x"); swapish "$s" || continue
        hit=1; files="$files exec:$x"
      done <<EOF
$t
EOF
    done
  done
  [ -n "$hit" ] || continue
  for f in $files; do
    case $f in
      exec:*) echo "svc-exec ${f#exec:} $(head -c 16384 "${f#exec:}" | base64 -w0)" ;;
      *) if [ -L "$f" ] && [ "$(readlink "$f")" = /dev/null ]; then echo "svc-link $f /dev/null"
         else echo "svc-unit $f $(head -c 16384 "$f" | base64 -w0)"; fi ;;
    esac
  done
  for d in $udirs; do
    for l in "$d"/*.target.wants/"$n" "$d"/*.target.requires/"$n"; do
      [ -L "$l" ] || [ -e "$l" ] || continue
      if [ -L "$l" ]; then echo "svc-want $l $(readlink "$l")"; else echo "svc-want $l"; fi
    done
  done
done
for f in /etc/dphys-swapfile /etc/default/zramswap; do
  [ -f "$f" ] && echo "svc-conf $f $(head -c 16384 "$f" | base64 -w0)"
done
for f in /etc/fstab /etc/docker/daemon.json /etc/containerd/config.toml \
         /var/lib/kubelet/config.yaml /var/lib/kubelet/kubeadm-flags.env \
         /etc/kubernetes/manifests/kube-apiserver.yaml /etc/haproxy/haproxy.cfg; do
  sec "file $f"
  if [ -f "$f" ]; then base64 -w0 < "$f" || echo "!unreadable"; else echo "!missing"; fi
done
# The resolver file the kubelet hands pods with dnsPolicy Default, CoreDNS's among them:
# --resolv-conf in kubeadm-flags.env (flags win), else the config's resolvConf, else the
# kubelet's default /etc/resolv.conf.
rc=$(sed -n 's/.*--resolv-conf=\([^ "]*\).*/\1/p' /var/lib/kubelet/kubeadm-flags.env 2>/dev/null)
[ -n "$rc" ] || rc=$(sed -n 's/^resolvConf:[[:space:]]*//p' /var/lib/kubelet/config.yaml \
  2>/dev/null | tr -d "\"' ")
case $rc in /*) ;; *) rc=/etc/resolv.conf ;; esac
sec "file $rc"
if [ -f "$rc" ]; then base64 -w0 < "$rc" || echo "!unreadable"; else echo "!missing"; fi
sec certificates
# Certificates only (never keys): kubeadm's PKI, the kubeconfigs' client certificates, and
# kubelet's client certificate (its .pem also holds the key: keep the certificate block).
for f in /etc/kubernetes/pki/*.crt /etc/kubernetes/pki/etcd/*.crt; do
  [ -f "$f" ] && { printf '%s ' "$f"; base64 -w0 < "$f"; echo; }
done
for f in /etc/kubernetes/admin.conf /etc/kubernetes/super-admin.conf \
         /etc/kubernetes/controller-manager.conf /etc/kubernetes/scheduler.conf; do
  [ -f "$f" ] && echo "$f $(sed -n 's/^ *client-certificate-data: *//p' "$f" | head -n 1)"
done
f=/var/lib/kubelet/pki/kubelet-client-current.pem
[ -f "$f" ] && echo "$f $(sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' "$f" | base64 -w0)"
# The server each of kubeadm's kubeconfigs names (the endpoint this node's clients use).
sec kubeconfigs
for f in /etc/kubernetes/admin.conf /etc/kubernetes/super-admin.conf \
         /etc/kubernetes/kubelet.conf /etc/kubernetes/bootstrap-kubelet.conf \
         /etc/kubernetes/controller-manager.conf /etc/kubernetes/scheduler.conf; do
  [ -f "$f" ] && echo "$f $(sed -n 's/^ *server: *//p' "$f" | head -n 1)"
done
if [ -f /etc/kubernetes/pki/etcd/healthcheck-client.crt ]; then
  # kubeadm's etcd, asked with kubeadm's healthcheck client certificate: etcdctl on the host,
  # else the one inside the etcd static pod.
  sec etcd
  p=/etc/kubernetes/pki/etcd
  e="--endpoints=https://127.0.0.1:2379 --cacert=$p/ca.crt --cert=$p/healthcheck-client.crt"
  e="$e --key=$p/healthcheck-client.key --dial-timeout=2s --command-timeout=4s -w json"
  run=""
  if have etcdctl; then run=etcdctl
  elif have crictl; then
    id=$(crictl ps -q --name '^etcd$' 2>/dev/null | head -n 1)
    [ -n "$id" ] && run="crictl exec $id etcdctl"
  fi
  if [ -z "$run" ]; then echo "!no-etcdctl"; else
    t=$(mktemp)
    for q in "member list" "endpoint status --cluster" "endpoint health --cluster"; do
      echo "!etcdctl $q"; $run $e $q 2>"$t" | tr -d '\n'; echo
      echo "!stderr $q"; tr '\n' ' ' < "$t"; echo
    done
    rm -f "$t"
  fi
fi
sec sockets
for s in /run/containerd/containerd.sock /var/run/docker.sock /run/cri-dockerd.sock \
         /var/run/cri-dockerd.sock /var/run/crio/crio.sock; do
  [ -S "$s" ] && echo "$s"
done
sec cgroupfs; stat -fc %T /sys/fs/cgroup 2>&1
sec runtime-files
# What else decides the runtime's cgroup driver, as "PATH BASE64": containerd's own files and
# conf.d (imports elsewhere are reported as not read), dockerd's systemd unit, drop-ins and
# environment files. Regular files only: at most 64, each at most 256 KiB. Secrets stay on the
# node: credentials in URLs (proxies) and registry auth values are blanked.
mask='s#(://)[^/@[:space:]"]*@#\1***@#g'
mask="$mask;"'s#^([[:space:]]*(password|auth|identitytoken|token)[[:space:]]*=[[:space:]]*).*#\1"***"#I'
n=0
for f in /etc/containerd/*.toml /etc/containerd/conf.d/*.toml \
         /etc/systemd/system/docker.service /run/systemd/system/docker.service \
         /usr/local/lib/systemd/system/docker.service /usr/lib/systemd/system/docker.service \
         /lib/systemd/system/docker.service /etc/systemd/system/docker.service.d/*.conf \
         /run/systemd/system/docker.service.d/*.conf \
         /usr/local/lib/systemd/system/docker.service.d/*.conf \
         /usr/lib/systemd/system/docker.service.d/*.conf \
         /lib/systemd/system/docker.service.d/*.conf /etc/default/docker /etc/sysconfig/docker; do
  [ -f "$f" ] || continue
  n=$((n + 1)); if [ "$n" -gt 64 ]; then echo "!truncated"; break; fi
  if [ ! -r "$f" ]; then echo "$f !unreadable"
  elif [ "$(wc -c < "$f")" -gt 262144 ]; then echo "$f !too-large"
  else echo "$f $(sed -E "$mask" "$f" | base64 -w0)"; fi
done
sec runtime-versions
for c in containerd dockerd cri-dockerd crio; do
  have "$c" && echo "$c $(timeout 5 "$c" --version 2>&1 | head -n 2 | tr '\n' ' ')"
done
# "!missing TOOL": the checks say what is not installed and what they needed it for
# One ss for both: -p reads every process's fds, the costly part on a node with many.
# Its Netid column says which section a line belongs to; other lines (errors) go to both.
{ if have ss; then ss -Htulnp 2>&1; else echo "!missing ss"; fi; } | awk -v t="$tok" '
  /^tcp / { sub(/^tcp  */, ""); tcp = tcp $0 "\n"; next }
  /^udp / { sub(/^udp  */, ""); udp = udp $0 "\n"; next }
  { tcp = tcp $0 "\n"; udp = udp $0 "\n" }
  END { printf "\n@@%s listen-tcp\n%s\n@@%s listen-udp\n%s", t, tcp, t, udp }'
# The CNI configuration the runtime loads (the first of *.conf/*.conflist/*.json by name):
# at most 32 entries, each file at most 64 KiB; other files (calico-kubeconfig holds a token,
# *.cilium_bak) by name only. Token and password values in the JSON are blanked.
sec cni-conf
if [ -d /etc/cni/net.d ]; then
  n=0
  for f in /etc/cni/net.d/*; do
    [ -f "$f" ] || continue
    n=$((n + 1)); if [ "$n" -gt 32 ]; then echo "!truncated"; break; fi
    case $f in
      *.conf|*.conflist|*.json)
        if [ ! -r "$f" ]; then echo "$f !unreadable"
        elif [ "$(wc -c < "$f")" -gt 65536 ]; then echo "$f !too-large"
        else echo "$f $(sed -E 's#("[^"]*(token|password|secret)[^"]*"[[:space:]]*:[[:space:]]*")[^"]*"#\1***"#Ig' "$f" | base64 -w0)"; fi ;;
      *) echo "$f !other" ;;
    esac
  done
else echo "!no-dir"; fi
sec addresses; if have ip; then ip -o -4 addr show 2>&1; else echo "!missing ip"; fi
sec links; if have ip; then ip -o link show 2>&1; else echo "!missing ip"; fi
sec bridges
for d in /sys/class/net/*/bridge /sys/class/net/*/brif/*; do [ -e "$d" ] && echo "$d"; done
sec iptables-save
if have iptables-save; then iptables-save 2>&1; echo "!exit $?"; else echo "!missing iptables-save"; fi
if have iptables-legacy-save; then
  sec iptables-legacy-save; iptables-legacy-save 2>&1; echo "!exit $?"
fi
# nftables' own tables (an `inet filter` of /etc/nftables.conf, firewalld's nftables backend),
# whichever binary `iptables` is
if have nft; then sec nft; nft -j list ruleset 2>&1; echo "!exit $?"; fi
# firewalld: every zone (its header says "(active)"; 2.x also "(default)") and policy, the
# default zone (it takes the interfaces no zone binds), the backend, and the definitions of the
# services the active zones, the default zone and the active policies use, includes followed:
# /etc/firewalld/services overrides /usr/lib/firewalld/services (firewalld.service(5)).
# Three firewall-cmd calls after --state, at most 64 service files of at most 64 KiB.
if have firewall-cmd && firewall-cmd --state >/dev/null 2>&1; then
  sec firewalld
  fwdef=$(firewall-cmd --get-default-zone 2>&1)
  fwz=$(firewall-cmd --list-all-zones 2>&1); fwrc=$?
  printf '%s\n!exit %s\ndefault-zone: %s\n' "$fwz" "$fwrc" "$fwdef"
  sed -n 's/^[[:space:]]*FirewallBackend[[:space:]]*=[[:space:]]*/!backend /p' \
    /etc/firewalld/firewalld.conf 2>/dev/null
  sec firewalld-policies
  fwp=$(firewall-cmd --list-all-policies 2>&1); fwrc=$?
  printf '%s\n!exit %s\n' "$fwp" "$fwrc"
  sec firewalld-services
  set -f
  todo=$(printf '%s\n%s\n' "$fwz" "$fwp" | while IFS= read -r l; do
    case $l in
      "") ;;
      [!\ \	]*) on=; case $l in *active*|"$fwdef"|"$fwdef "*) on=1 ;; esac ;;
      "  services:"*) [ -n "$on" ] && printf '%s\n' ${l#*:} ;;
      *'service name="'*) [ -n "$on" ] && { s=${l#*service name=\"}; printf '%s\n' "${s%%\"*}"; } ;;
    esac
  done)
  seen=" "; n=0
  while [ -n "$todo" ]; do
    more=
    for s in $todo; do
      case $seen in *" $s "*) continue ;; esac
      seen="$seen$s "
      case $s in *[!A-Za-z0-9_.+-]*) echo "$s !bad-name"; continue ;; esac
      n=$((n + 1)); if [ "$n" -gt 64 ]; then echo "!truncated"; todo=; more=; break; fi
      f=/etc/firewalld/services/$s.xml; [ -f "$f" ] || f=/usr/lib/firewalld/services/$s.xml
      if [ ! -f "$f" ]; then echo "$s !missing"
      elif [ ! -r "$f" ]; then echo "$s $f !unreadable"
      else
        echo "$s $f $(head -c 65536 "$f" | base64 -w0)"
        more="$more $(sed -n "s/.*<include[^>]*service=[\"']\([^\"']*\).*/\1/p" "$f")"
      fi
    done
    todo=$more
  done
  set +f
fi
if have kubelet; then sec kubelet-version; kubelet --version 2>&1; fi
if [ "$dns" != - ]; then
  # What a pod's resolver asks, straight to the cluster DNS Service: 1 try, bounded.
  sec dns
  name=kubernetes.default.svc.cluster.local; t=${pt%.*}; [ "${t:-0}" -ge 1 ] || t=1
  if have bash && have dd && have od; then
    # One A query over UDP, as a pod's resolver sends it (RD set, no EDNS), the reply's bytes
    # in hex for the runner to decode: 5 ms of node CPU where dig takes 13 ms. printf writes
    # up to each NUL on its own, so dd gathers the query into one datagram.
    echo "!cmd udp $dns $name $t"
    udp='exec 3<>"/dev/udp/$0/53" || exit 2
printf "$1" | dd bs=512 count=1 iflag=fullblock status=none >&3 || exit 2
dd bs=4096 count=1 status=none <&3 | od -An -tx1 -v; exit "${PIPESTATUS[0]}"'
    q='\x6b\x61\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x0akubernetes\x07default\x03svc'
    q="$q"'\x07cluster\x05local\x00\x00\x01\x00\x01'
    timeout "$t" bash -c "$udp" "$dns" "$q" 2>&1; echo "!rc $?"
  elif have dig; then
    echo "!cmd dig +time=$t +tries=1 +short @$dns $name"
    timeout $((t + 2)) dig +time="$t" +tries=1 +short "@$dns" "$name" 2>&1; echo "!rc $?"
  elif have nslookup; then
    echo "!cmd nslookup -timeout=$t -retry=0 $name $dns"
    timeout $((t + 2)) nslookup -timeout="$t" -retry=0 "$name" "$dns" 2>&1; echo "!rc $?"
  else echo "!missing dig"
  fi
fi
sec probes
# One probe: sh -c "$probe" TIMEOUT ADDRESS:PORT -> "ADDRESS:PORT open|timeout|closed <why>"
probe='t=$1
if command -v bash >/dev/null 2>&1; then
  err=$(timeout "$0" bash -c "exec 3<>/dev/tcp/${t%:*}/${t##*:}" 2>&1); rc=$?
else
  err=$(nc -z -w "$0" "${t%:*}" "${t##*:}" 2>&1); rc=$?
fi
case $rc in
  0) echo "$t open" ;;
  124) echo "$t timeout" ;;
  *) echo "$t closed $(printf %s "$err" | tail -n 1 | sed "s/.*: //")" ;;
esac'
# Bounded parallelism: a control plane of a large cluster probes every node's kubelet.
# (Most hosts of a large cluster probe nothing: no pipeline then, 6 ms of node CPU.)
if [ $# -gt 0 ]; then
  first=$(printf '%s\n' "$@" | xargs -r -P 16 -n 1 sh -c "$probe" "$pt")
  printf '%s\n' "$first" | grep -v ' timeout$'
  # A timeout on a busy node is not yet a verdict: ask again, fewer at a time.
  printf '%s\n' "$first" | sed -n 's/ timeout$//p' | xargs -r -P 4 -n 1 sh -c "$probe" "$pt"
fi
sec end
