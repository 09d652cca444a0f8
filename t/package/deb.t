# The Debian packages of make deb, on this machine: lintian finds no
# error; installed, the module is enabled and nginx, through the
# packaged snippet, runs a configuration that uses it; the unit
# kafka-stream-producer@.service passes systemd-analyze verify, and one
# instance, run by systemd or (where systemd is not PID 1) as systemd
# would run it, sends frames to the test broker that nginx serves;
# removed, nginx starts without the module.  Everything is purged at
# the end and nginx's configuration is as it was.
#
# Root only (it installs packages); skipped where either package, or a
# module of make install, is already there.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use FindBin;
use HTTP::Tiny;
use IPC::Run qw(run timeout);
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

use lib $FindBin::Bin;

my @Packages = qw(libnginx-mod-http-kafka-stream kafka-stream-producer);
my $ModuleSo = '/usr/lib/nginx/modules/ngx_http_kafka_stream_module.so';
my $Snippet = '/usr/share/nginx/modules-available/mod-http-kafka-stream.conf';
my $Enabled = '/etc/nginx/modules-enabled/50-mod-http-kafka-stream.conf';
my $Unit = '/lib/systemd/system/kafka-stream-producer@.service';
my $ConfDir = '/etc/kafka-stream/producer';
my $User = 'kafka-stream';


sub package_status {
    my ($pkg) = @_;
    my $s = `dpkg-query -W -f='\${db:Status-Status}' $pkg 2>/dev/null`;
    return $s eq '' ? 'not-installed' : $s;
}


BEGIN {
    my $why = $> != 0 ? 'installs Debian packages: root only'
        : !-x '/usr/bin/dpkg' || !-x '/usr/bin/apt-get' ? 'not Debian'
        : undef;
    for my $pkg (qw(libnginx-mod-http-kafka-stream kafka-stream-producer)) {
        last if $why;
        $why = "$pkg is installed here (the test would remove it)"
            if package_status($pkg) ne 'not-installed';
    }
    $why //= "a module of make install is in /usr/lib/nginx/modules"
        if -e '/usr/lib/nginx/modules/ngx_http_kafka_stream_module.so';
    plan skip_all => $why if $why;
}

use KafkaStream::Test;
use SystemdUnit;

my $Repo = abs_path("$FindBin::Bin/../..");
my $Port = $ENV{TEST_NGINX_PORT} || 1984;
my $Dir = tempdir(CLEANUP => 1);
my $Instance = "pkgtest-$$";
my $Systemd = -d '/run/systemd/system';

my (%Children, $Installed);
my $UserBefore = defined getpwnam($User);
my @EnabledBefore = enabled_modules();
my $NginxTBefore = system_nginx_t()->{rc};


sub cmd {
    my (@cmd) = @_;
    my $out = '';
    my $ok = eval { run(\@cmd, '<', \undef, '>&', \$out, timeout(900)) };
    return { rc => $ok ? 0 : ($? >> 8) || 1, out => $out };
}


sub apt {
    return cmd('apt-get', '-y', '-q', '--no-install-recommends',
               '-o', 'DPkg::Lock::Timeout=300', @_);
}


sub enabled_modules {
    opendir my $dh, '/etc/nginx/modules-enabled' or return ();
    return sort grep { !/^\.\.?$/ } readdir $dh;
}


sub system_nginx_t {
    return cmd('/usr/sbin/nginx', '-t', '-q');
}


sub slurp {
    my ($path) = @_;
    open my $fh, '<:raw', $path or return undef;
    local $/;
    return scalar <$fh>;
}


sub spit {
    my ($path, $text, $mode) = @_;
    open my $fh, '>', $path or die "$path: $!\n";
    print {$fh} $text;
    close $fh;
    chmod $mode, $path if defined $mode;
}


# an nginx.conf loading modules as Debian's does (modules-enabled), with
# the module's directives or without them
sub nginx_conf {
    my (%o) = @_;
    my $module = !$o{module} ? '' : <<"EOF";
    kafka_stream_brokers  $o{brokers};

    server {
        listen       127.0.0.1:$Port;
        root         /usr/share/kafka-stream/html;

        location = /ping     { return 200 "pong\\n"; }
        location = /snapshot { kafka_stream_snapshot dbtech;
                               kafka_stream_key \$arg_id; }
    }
EOF
    my $plain = $o{module} ? '' : <<"EOF";
    server {
        listen       127.0.0.1:$Port;
        location = /ping     { return 200 "pong\\n"; }
    }
EOF

    spit("$Dir/nginx.conf", <<"EOF");
include /etc/nginx/modules-enabled/*.conf;

daemon off;
worker_processes 1;
pid $Dir/nginx.pid;
error_log $Dir/error.log info;

events { worker_connections 64; }

http {
    access_log off;
    client_body_temp_path $Dir/client_body;
    proxy_temp_path $Dir/proxy;
    fastcgi_temp_path $Dir/fastcgi;
    uwsgi_temp_path $Dir/uwsgi;
    scgi_temp_path $Dir/scgi;

$module$plain}
EOF
    return "$Dir/nginx.conf";
}


sub nginx_t {
    my ($conf) = @_;
    return cmd('/usr/sbin/nginx', '-t', '-e', "$Dir/error.log", '-c', $conf);
}


# nginx in the foreground, its default prefix (/usr/share/nginx), where
# the packaged snippet's "modules/..." points; up once /ping answers
sub start_nginx {
    my ($conf) = @_;
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        exec('/usr/sbin/nginx', '-e', "$Dir/error.log", '-c', $conf)
            or POSIX::_exit(127);
    }
    $Children{$pid} = 'nginx';

    my $deadline = time + 10;
    while (time < $deadline) {
        my $r = HTTP::Tiny->new(timeout => 2)
                    ->get("http://127.0.0.1:$Port/ping");
        return $pid if $r->{status} == 200;
        last if waitpid($pid, WNOHANG) == $pid && delete $Children{$pid};
        sleep 0.1;
    }
    diag(slurp("$Dir/error.log") // '');
    stop($pid);
    return undef;
}


# SIGTERM, as systemd stops a service; the exit status, or undef when
# it had to be killed
sub stop {
    my ($pid, $timeout) = @_;
    return undef if !$pid || !delete $Children{$pid};

    kill 'TERM', $pid;
    my $deadline = time + ($timeout // 10);
    while (time < $deadline) {
        return $? if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid $pid, 0;
    return undef;
}


# the messages the instance has sent to the broker so far
sub frames_of {
    my ($key, $want, $timeout) = @_;
    my $deadline = time + $timeout;
    my @mine;

    while (1) {
        @mine = grep { defined $_->{key} && $_->{key} eq $key }
                consume('dbtech', timeout => 2);
        return @mine if @mine >= $want || time > $deadline;
        sleep 0.5;
    }
}


sub proc_ids {
    my ($pid) = @_;
    my $status = slurp("/proc/$pid/status") // '';
    my ($uid) = $status =~ /^Uid:\s+(.*)$/m;
    my ($groups) = $status =~ /^Groups:\s*(.*)$/m;
    return ($uid // '', [split ' ', $groups // '']);
}


sub cleanup {
    for my $pid (keys %Children) {
        kill 'KILL', $pid;
        waitpid $pid, 0;
    }
    %Children = ();

    return if !$Installed;
    if ($Systemd) {
        cmd('systemctl', 'stop', "kafka-stream-producer\@$Instance");
    }
    unlink "$ConfDir/$Instance.conf";
    my $r = cmd('dpkg', '--purge', @Packages);
    diag("cleanup: dpkg --purge: $r->{out}") if $r->{rc} != 0;
    if (!$UserBefore && defined getpwnam($User)) {
        cmd('deluser', '--system', '--quiet', $User);
        cmd('delgroup', '--system', '--quiet', $User)
            if defined getgrnam($User);
    }
    $Installed = 0;
}


END {
    my $status = $?;
    cleanup();
    $? = $status;
}


# --- the packages ------------------------------------------------------

my $make = cmd('make', '-C', $Repo, '--no-print-directory', 'deb');
is($make->{rc}, 0, 'make deb') or diag($make->{out});

my %Deb;
for my $pkg (@Packages) {
    my @f = glob("$Repo/build/deb/${pkg}_*.deb");
    is(scalar @f, 1, "build/deb/ holds one $pkg package") or diag("@f");
    $Deb{$pkg} = $f[0];
}
if (grep { !defined } values %Deb) {
    done_testing;
    exit;
}

my $lint = cmd('lintian', '--fail-on', 'error', values %Deb);
is($lint->{rc}, 0, 'lintian: no errors');
is_deeply([grep { /^E: / } split /\n/, $lint->{out}], [],
          'lintian: no E: line');
note("lintian: $_") for grep { /^[WEI]: / } split /\n/, $lint->{out};


# --- installed ---------------------------------------------------------

$Installed = 1;
my $inst = apt('install', map { $Deb{$_} } @Packages);
is($inst->{rc}, 0, 'apt-get install ./build/deb/*.deb') or diag($inst->{out});
is(package_status($_), 'installed', "$_ is installed") for @Packages;

ok(-f $ModuleSo, "the module is in /usr/lib/nginx/modules");
is(slurp($Snippet), "load_module modules/ngx_http_kafka_stream_module.so;\n",
   'modules-available has the load_module snippet');
is(readlink($Enabled), $Snippet, 'the module is enabled (modules-enabled)');
like(`dpkg-query -W -f='\${Depends}' libnginx-mod-http-kafka-stream`,
     qr/\bnginx-abi-[0-9.]+-\d+\b/, 'the module depends on the nginx ABI');

for my $f ('/usr/bin/kafka-stream-producer',
           '/usr/share/man/man1/kafka-stream-producer.1.gz',
           '/usr/share/kafka-stream/html/index.html',
           '/usr/share/kafka-stream/producer/example.conf', $Unit)
{
    ok(-f $f, "kafka-stream-producer installs $f");
}
ok(-d $ConfDir, "$ConfDir is there");
like(cmd('man', '-P', 'cat', 'kafka-stream-producer')->{out},
     qr/^EXIT STATUS\n.*^FILES\n/ms,
     'man kafka-stream-producer');

my @pw = getpwnam($User);
ok(@pw, "the package made the user $User");
cmp_ok($pw[2] // 1e9, '<', 1000, "$User is a system user");
like($pw[8] // '', qr{/(?:nologin|false)$}, "$User has no login shell");

is(system_nginx_t()->{rc}, $NginxTBefore,
   "nginx -t on the system's nginx.conf, with the module enabled");

my $brokers = kafka_brokers();
my $conf = nginx_conf(module => 1, brokers => $brokers);
my $t = nginx_t($conf);
is($t->{rc}, 0, 'nginx -t accepts a configuration using the module, '
                . 'loaded by the packaged snippet') or diag($t->{out});


# --- the unit ----------------------------------------------------------

my $verify = cmd('systemd-analyze', 'verify', $Unit);
is($verify->{rc}, 0, 'systemd-analyze verify accepts the unit');
is_deeply([grep { /kafka-stream-producer/ } split /\n/, $verify->{out}], [],
          'systemd-analyze verify: nothing to say about it')
    or diag($verify->{out});

spit("$ConfDir/$Instance.conf", <<"EOF", 0600);
# $Instance: written by t/package/deb.t; KEY, TOPIC and FORMAT are the
# unit's defaults (the instance name, dbtech, jpeg)
BROKERS=$brokers
INPUT=testsrc2=size=160x120:rate=10
OPTIONS=--input-format lavfi --quality 5
EOF

my $nginx = start_nginx($conf);
ok($nginx, 'nginx with the packaged module runs');

my ($producer, $log);
if ($Systemd) {
    my $r = cmd('systemctl', 'start', "kafka-stream-producer\@$Instance");
    is($r->{rc}, 0, "systemctl start kafka-stream-producer\@$Instance")
        or diag($r->{out});
    ($producer) = cmd('systemctl', 'show', '-p', 'MainPID', '--value',
                      "kafka-stream-producer\@$Instance")->{out} =~ /(\d+)/;
} else {
    my $svc = unit_service($Unit, $Instance);
    note("as systemd would: @{$svc->{argv}}, as $svc->{user}; "
         . "systemd's alone: @{$svc->{not_run}}");
    $log = "$Dir/journal";
    $producer = unit_spawn($svc, $log);
    $Children{$producer} = 'kafka-stream-producer';
}

my @frames = frames_of($Instance, 5, 30);
cmp_ok(scalar @frames, '>=', 5,
       "the instance sent frames keyed $Instance to the broker")
    or diag(defined $log ? slurp($log) : '');
my %h = @{($frames[0] || {})->{headers} || []};
is($h{'content-type'}, 'image/jpeg', 'as JPEG (the unit\'s default)');
is(substr(($frames[0] || {})->{value} // '', 0, 2), "\xFF\xD8",
   'a JPEG image');
is("$h{width}x$h{height}", '160x120', 'of the input\'s size');

my ($uid, $groups) = proc_ids($producer // 0);
is($uid, join("\t", ($pw[2] // -1) x 4), "the producer runs as $User");
ok((grep { $_ == scalar getgrnam('video') } @$groups),
   'with the supplementary group video');

my $http = HTTP::Tiny->new(timeout => 10);
my $snap = $http->get("http://127.0.0.1:$Port/snapshot?id=$Instance");
is($snap->{status}, 200, 'nginx serves the instance\'s snapshot');
is($snap->{headers}{'content-type'}, 'image/jpeg', 'a JPEG');
is(substr($snap->{content} // '', 0, 2), "\xFF\xD8", 'a JPEG image');
my $page = $http->get("http://127.0.0.1:$Port/");
is($page->{content}, slurp('/usr/share/kafka-stream/html/index.html'),
   'and the packaged viewer page');

if ($Systemd) {
    my $r = cmd('systemctl', 'stop', "kafka-stream-producer\@$Instance");
    is($r->{rc}, 0, 'systemctl stop');
    my $show = cmd('systemctl', 'show', '-p', 'Result', '-p',
                   'ExecMainStatus', "kafka-stream-producer\@$Instance");
    like($show->{out}, qr/^ExecMainStatus=0$/m, 'the producer exited 0');
    like($show->{out}, qr/^Result=success$/m, 'the unit stopped cleanly');
} else {
    my $status = stop($producer, 30);
    is($status, 0, 'SIGTERM: the producer flushes and exits 0')
        or diag(slurp($log));
    like(slurp($log), qr/\d+ frames sent, 0 failed/, 'its summary line');
}
stop($nginx);


# --- removed -----------------------------------------------------------

unlink "$ConfDir/$Instance.conf";
my $rm = apt('remove', @Packages);
is($rm->{rc}, 0, 'apt-get remove') or diag($rm->{out});
ok(!-e $ModuleSo, 'the module is gone');
ok(!-e $Enabled, 'and no longer enabled');
is(readlink("$Enabled.removed"), $Snippet,
   'the link kept as .removed, for a reinstall');
is(system_nginx_t()->{rc}, $NginxTBefore,
   'nginx -t on the system\'s nginx.conf, after the removal');

$t = nginx_t(nginx_conf(module => 1, brokers => $brokers));
isnt($t->{rc}, 0, 'a configuration using the module now fails nginx -t');
like($t->{out}, qr/unknown directive "kafka_stream_brokers"/,
     'naming the directive');

$nginx = start_nginx(nginx_conf(module => 0));
ok($nginx, 'nginx starts without the module (modules-enabled included)');
is(stop($nginx), 0, 'and stops');

my $purge = apt('purge', @Packages);
is($purge->{rc}, 0, 'apt-get purge') or diag($purge->{out});
is(package_status($_), 'not-installed', "$_ is gone") for @Packages;
ok(!-e $ConfDir, "$ConfDir is gone");
ok(!-l "$Enabled.removed", 'and the .removed link');
cleanup();

is_deeply([enabled_modules()], \@EnabledBefore,
          'modules-enabled is as it was');
is(system_nginx_t()->{rc}, $NginxTBefore, 'nginx -t as it was');

done_testing;
