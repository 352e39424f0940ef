#!/usr/bin/env bash
# An isolated Debian puppetserver (bookworm, 7.9.5) for end-to-end tests, without systemd.
#
#   tests/e2e/puppetserver.sh setup DIR [PORT]  configure DIR and set up its CA (idempotent)
#   tests/e2e/puppetserver.sh run DIR           exec the server in the foreground as user puppet
#                                               (the PID of this command becomes java's)
#   tests/e2e/puppetserver.sh start DIR         run it in the background (PID in DIR/server.pid,
#                                               console in DIR/log/console.log), then wait
#   tests/e2e/puppetserver.sh wait DIR [SECS]   poll /status/v1/simple until "running" (default 180 s)
#   tests/e2e/puppetserver.sh stop DIR          kill -TERM the PID in DIR/server.pid and wait
#   tests/e2e/puppetserver.sh status DIR        prints running/stopped (exit 0/1)
#
# Needs root and Debian's `puppetserver` package (which pulls puppet-agent and a JRE). Nothing
# of the host's puppet is used or changed: no /etc/puppet, no /var/lib/puppet/ssl, no
# /var/log/puppetserver (puppet-notes.md, section 2b). DIR holds everything:
#
#   DIR/conf.d, DIR/services.d      puppetserver's HOCON config (copies of Debian's, edited)
#   DIR/logback.xml, DIR/request-logging.xml   logs go to DIR/log (puppetserver.log, access log)
#   DIR/etc/puppet.conf             [main] ssldir/server/serverport, [server] certname, cadir,
#                                   autosign = $AUTOSIGN (default /usr/lib/cloudcfg/autosign)
#   DIR/ca                          the CA (`puppetserver ca setup`): DIR/ca/ca_crt.pem is the
#                                   bundle (intermediate + root) that agents need as ca.pem;
#                                   requests/<certname>.pem = pending CSRs, signed/ = signed
#   DIR/ssl                         the server's own certificate (CN puppet, SAN
#                                   DNS:puppet,DNS:localhost,IP:127.0.0.1)
#   DIR/code/environments/production/manifests/site.pp   a trivial manifest (written once):
#                                   a file /var/lib/cloudcfg-e2e/puppet-marker on the agent and a
#                                   notify "cloudcfg-e2e: catalog applied for CERTNAME iid=ID"
#                                   (ID: the CSR's pp_instance_id extension request)
#   DIR/port                        the HTTPS port on 127.0.0.1 (default 8141)
#
# The server runs as user `puppet`, so DIR and every directory above it must be searchable by
# it, and the autosign executable must be a file `puppet` can execute (copy the binary, do not
# link into a build directory under /root). The policy executable's stderr ends up in
# DIR/log/puppetserver.log (and on the console) as
#   WARN ... Autosign command '/usr/lib/cloudcfg/autosign CERTNAME' generated output to stderr: ...
#
# JVM: -Xms256m -Xmx512m -XX:TieredStopAtLevel=1 (about 35-50 s to ready on 2 busy cores,
# ~650 MB RSS); override with JAVA_MEM. Stop with kill -TERM: exit status 143 is normal.
set -euo pipefail

usage() {
    sed -n '2,11p' "$0" >&2
    exit 2
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
AUTOSIGN=${AUTOSIGN:-/usr/lib/cloudcfg/autosign}
JAVA_MEM=${JAVA_MEM:--Xms256m -Xmx512m}
DEB=/etc/puppet/puppetserver

die() {
    echo "puppetserver.sh: $*" >&2
    exit 1
}

port() {
    cat "$dir/port" 2>/dev/null || echo 8141
}

setup() {
    # PORT: as given, else the one of an earlier setup of DIR, else 8141.
    local port=${1:-$(port)}
    [ "$(id -u)" = 0 ] || die "setup needs root"
    [ -d "$DEB/conf.d" ] || die "$DEB/conf.d missing: apt-get install puppetserver"
    getent passwd puppet >/dev/null || die "no user puppet: apt-get install puppetserver"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    case $dir in *[[:space:]\"\'\\]*) die "DIR must not contain spaces or quotes: $dir" ;; esac
    echo "$port" >"$dir/port"
    mkdir -p "$dir"/{etc,ssl,ca,code/environments/production/manifests,var,run,log}

    # puppetserver's own config: Debian's, with every path moved into DIR.
    rm -rf "$dir/conf.d" "$dir/services.d"
    cp -a "$DEB/conf.d" "$DEB/services.d" "$dir/"
    sed -i -e "s|ssl-host: .*|ssl-host: 127.0.0.1|" \
        -e "s|ssl-port: .*|ssl-port: $port|" \
        -e "s|access-log-config: .*|access-log-config: $dir/request-logging.xml|" \
        "$dir/conf.d/webserver.conf"
    sed -i -e "s|logging-config: .*|logging-config: $dir/logback.xml|" "$dir/conf.d/global.conf"
    sed -i -e "s|server-conf-dir: .*|server-conf-dir: $dir/etc|" \
        -e "s|server-code-dir: .*|server-code-dir: $dir/code|" \
        -e "s|server-var-dir: .*|server-var-dir: $dir/var|" \
        -e "s|server-run-dir: .*|server-run-dir: $dir/run|" \
        -e "s|server-log-dir: .*|server-log-dir: $dir/log|" \
        "$dir/conf.d/puppetserver.conf"
    sed -e "s|/var/log/puppetserver/|$dir/log/|g" "$DEB/logback.xml" >"$dir/logback.xml"
    sed -e "s|/var/log/puppetserver/|$dir/log/|g" "$DEB/request-logging.xml" >"$dir/request-logging.xml"
    if grep -q '/var/log/puppetserver' "$dir/logback.xml" "$dir/request-logging.xml"; then
        die "a log path was not moved into $dir"
    fi

    cat >"$dir/etc/puppet.conf" <<EOF
# Written by tests/e2e/puppetserver.sh: an isolated test server.
[main]
# Debian's default ssldir is /var/lib/puppet/ssl whatever the confdir: set it.
ssldir = $dir/ssl
server = 127.0.0.1
serverport = $port

[server]
certname = puppet
cadir = $dir/ca
autosign = $AUTOSIGN
EOF

    # A trivial catalog: a file in the agent's root and a notify the agent prints.
    local site=$dir/code/environments/production/manifests/site.pp
    if [ ! -e "$site" ]; then
        cat >"$site" <<'EOF'
node default {
  file { '/var/lib/cloudcfg-e2e':
    ensure => directory,
  }
  file { '/var/lib/cloudcfg-e2e/puppet-marker':
    ensure  => file,
    mode    => '0644',
    content => "catalog for ${trusted['certname']}\n",
  }
  notify { "cloudcfg-e2e: catalog applied for ${trusted['certname']} iid=${trusted['extensions']['pp_instance_id']}": }
}
EOF
    fi

    # The CA: root + intermediate, server certificate with the names agents use.
    if [ ! -s "$dir/ca/ca_crt.pem" ]; then
        puppetserver ca setup --config "$dir/etc/puppet.conf" --certname puppet \
            --subject-alt-names DNS:puppet,DNS:localhost,IP:127.0.0.1 >"$dir/log/ca-setup.log" 2>&1 ||
            { cat "$dir/log/ca-setup.log" >&2; die "puppetserver ca setup failed"; }
    fi
    [ -s "$dir/ssl/certs/puppet.pem" ] || die "ca setup did not create $dir/ssl/certs/puppet.pem"

    chown -R puppet:puppet "$dir"
    chmod 0755 "$dir"
    # Readable CA bundle for tests and hand use (it is public).
    chmod 0644 "$dir/ca/ca_crt.pem"
    chmod 0755 "$dir/ca"
    # puppet must be able to reach DIR.
    if ! setpriv --reuid=puppet --regid=puppet --clear-groups test -r "$dir/etc/puppet.conf"; then
        die "user puppet cannot read $dir/etc/puppet.conf: make every parent of $dir searchable (chmod o+x)"
    fi
    echo "puppetserver.sh: $dir set up (port $port, autosign $AUTOSIGN)"
}

run() {
    [ -s "$dir/etc/puppet.conf" ] || die "$dir is not set up (run: $0 setup $dir)"
    dir=$(cd "$dir" && pwd)
    install -d -o puppet -g puppet -m 0755 "$dir/run"
    cd /usr/share/puppetserver
    # setpriv execs java: this process's PID is the server's.
    # shellcheck disable=SC2086 # JAVA_MEM is a list of options
    exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME="$dir/var" \
        setpriv --reuid=puppet --regid=puppet --init-groups \
        /usr/bin/java $JAVA_MEM -XX:TieredStopAtLevel=1 \
        -Djruby.logger.class=com.puppetlabs.jruby_utils.jruby.Slf4jLogger \
        -Dlogappender=STDOUT -Djruby.lib=/usr/share/jruby/lib \
        -XX:+CrashOnOutOfMemoryError -XX:ErrorFile="$dir/log/java_err_pid%p.log" \
        -jar /usr/share/puppetserver/puppetserver.jar \
        --config "$dir/conf.d" --bootstrap-config "$dir/services.d"
}

alive() {
    local pid
    pid=$(cat "$dir/server.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--config $dir/conf.d"
}

ready() {
    [ "$(curl -s --max-time 5 --cacert "$dir/ca/ca_crt.pem" \
        "https://127.0.0.1:$(port)/status/v1/simple" 2>/dev/null)" = running ]
}

wait_ready() {
    local secs=${1:-180} start=$SECONDS
    until ready; do
        if [ -f "$dir/server.pid" ] && ! alive; then
            tail -20 "$dir/log/console.log" >&2 || true
            die "the server exited before it was ready"
        fi
        [ $((SECONDS - start)) -lt "$secs" ] || die "not ready after $secs s"
        sleep 0.5
    done
    echo "puppetserver.sh: ready on https://127.0.0.1:$(port) after $((SECONDS - start)) s"
}

case $cmd in
setup) setup "${3:-}" ;;
run) run ;;
start)
    dir=$(cd "$dir" && pwd)
    if alive; then
        echo "puppetserver.sh: already running (pid $(cat "$dir/server.pid"))"
    else
        mkdir -p "$dir/log"
        "$0" run "$dir" >"$dir/log/console.log" 2>&1 </dev/null &
        echo $! >"$dir/server.pid"
    fi
    wait_ready "${3:-180}"
    ;;
wait) wait_ready "${3:-180}" ;;
stop)
    if alive; then
        pid=$(cat "$dir/server.pid")
        kill -TERM "$pid"
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid"
        fi
        echo "puppetserver.sh: stopped pid $pid"
    fi
    rm -f "$dir/server.pid"
    ;;
status)
    if alive && ready; then
        echo running
    else
        echo stopped
        exit 1
    fi
    ;;
*) usage ;;
esac
