package Reliability;

# Helpers for the fault, churn, hostile-input and soak tests (t/fault,
# t/hostile, stress/run): an nginx of our own with a master process (so
# that reload and quit are the real ones), a steady frame feed into
# Kafka, a pool of viewers that records every part it receives, and
# /proc readings of nginx's processes.
#
#   my $ng = nginx_start(http => $text, workers => 2)
#                         writes nginx.conf (load_module, master on, the
#                         http{} body given, listening on port()) and
#                         starts it; $ng->{dir}, $ng->{master}
#   nginx_command($ng, 'reload')      runs "nginx -s reload" on it
#   nginx_stop($ng)                   "nginx -s quit", waits for the exit
#   nginx_done($ng)                   a test file's last checks: nothing at
#                                     alert, crit or emerg and no crash in
#                                     the log, nginx stops, and memcheck
#                                     (if it ran) found nothing
#   worker_pids($ng)                  the worker processes now
#   exited($pid)                      gone or a zombie
#   rss_kb($pid), fd_count($pid)      from /proc
#   log_lines($ng, $from)             error.log lines from byte $from on
#   log_size($ng)                     for the next log_lines
#
#   my $feed = start_feed($topic, \@frames, fps => 25)
#                         a child producing the frames in turn through
#                         one kafka-produce, paced; stop_feed($feed)
#                         returns how many it produced
#
#   my $pool = start_viewers(n => 50, uri => '/stream', frames => \@f,
#                            reconnect => 1)
#                         a child with n viewer connections; every part
#                         is parsed (boundary, Content-Length) and noted
#                         with its arrival time and frame index
#   my $rep = stop_viewers($pool)   ends them; for every viewer a list
#                         of connections { start, status, parts =>
#                         [[time, index], ...], end, closing, error }
#
#   port(), until_true($seconds, sub { ... })
#
# Under TEST_NGINX_USE_VALGRIND nginx runs under memcheck (daemon off,
# our child); valgrind_errors($ng) then returns its reports, and
# slow_factor() tells tests how much to stretch their deadlines.

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::MD5 qw(md5);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Socket qw(IPPROTO_TCP TCP_NODELAY SOL_SOCKET SO_LINGER);
use Time::HiRes qw(time sleep);

use KafkaStream::Test ();

our @EXPORT = qw(nginx_start nginx_command nginx_stop nginx_done
                 worker_pids exited
                 rss_kb fd_count log_lines log_size start_feed stop_feed
                 start_viewers stop_viewers port until_true slow_factor
                 valgrind_errors nginx_binary module_path http_request
                 status status_sum watching workers_have stream_http
                 parse_stream start_capture stop_capture sanitized);

my $Repo = abs_path(dirname(__FILE__) . '/../..');


# true under make test SANITIZE=1: the ASan build of the module, whose
# allocator keeps freed memory in quarantine, so RSS says nothing about
# leaks there (LeakSanitizer checks them instead)
sub sanitized {
    return ($ENV{TEST_NGINX_LOAD_MODULES} // '') =~ m{/nginx-asan/};
}
my $Valgrind = $ENV{TEST_NGINX_USE_VALGRIND};
my @Started;      # nginx masters to stop at the end, if still running
my %Children;     # feeds, captures and viewer pools still running
my $Main = $$;


sub port { $ENV{TEST_NGINX_PORT} || 1984 }

sub slow_factor { $Valgrind ? 20 : 1 }

sub nginx_binary { $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx' }

sub module_path {
    return $ENV{TEST_NGINX_LOAD_MODULES}
           || "$Repo/build/ngx_http_kafka_stream_module.so";
}


sub until_true {
    my ($seconds, $cond, $step) = @_;
    my $deadline = time + $seconds;

    while (1) {
        return 1 if $cond->();
        return 0 if time > $deadline;
        sleep($step // 0.02);
    }
}


sub slurp {
    my ($path) = @_;
    open my $in, '<:raw', $path or return '';
    local $/;
    my $data = <$in>;
    close $in;
    return $data // '';
}


# --- nginx ------------------------------------------------------------

sub nginx_start {
    my (%o) = @_;
    my $dir = $o{dir} // tempdir('kafka-stream-rel-XXXXXX', TMPDIR => 1,
                                 CLEANUP => 1);
    my $workers = $o{workers} // 2;
    my $port = port();

    mkdir "$dir/logs";
    unlink "$dir/logs/nginx.pid";

    my $module = module_path();
    my $daemon = $Valgrind ? 'off' : 'on';
    my $conns = $o{worker_connections} // 4096;

    # as many descriptors as we may have (not more: that is an alert;
    # valgrind keeps some for itself and refuses to raise the limit)
    my $hard = `sh -c 'ulimit -Hn'`;
    chomp $hard;
    $hard = 65536 if $hard !~ /^\d+$/ || $hard > 65536;

    my $http = $o{http} // '';
    $http =~ s/\$TEST_NGINX_KAFKA_BROKERS/KafkaStream::Test::kafka_brokers()/ge;
    $http =~ s/\$TEST_NGINX_PORT/$port/g;

    open my $conf, '>', "$dir/nginx.conf" or die "$dir/nginx.conf: $!";
    print $conf <<"_EOC_";
load_module $module;
worker_processes $workers;
master_process on;
daemon $daemon;
pid logs/nginx.pid;
error_log logs/error.log ${\ ($o{log_level} // 'info')};
${\ ($Valgrind ? '' : "worker_rlimit_nofile $hard;")}
${\ ($o{main} // '')}
events {
    worker_connections $conns;
}
http {
    access_log off;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    $http
}
_EOC_
    close $conf;

    my $ng = { dir => $dir, port => $port, workers => $workers };
    my @cmd = (nginx_binary(), '-p', "$dir/", '-c', 'nginx.conf');

    if ($Valgrind) {
        my @vg = ('valgrind', '--tool=memcheck', '--leak-check=full',
                  '--show-possibly-lost=no', '--num-callers=50', '-q',
                  '--trace-children=no', '--keep-debuginfo=yes',
                  "--log-file=$dir/logs/valgrind.%p.log");
        push @vg, "--suppressions=$Repo/valgrind.suppress"
            if -f "$Repo/valgrind.suppress";
        my $ours = "$Repo/t/lib/Test/Nginx/valgrind-nginx.supp";
        push @vg, "--suppressions=$ours" if -f $ours;
        @cmd = (@vg, @cmd);
    }

    my $pid = fork;
    die "fork: $!\n" if !defined $pid;
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', "$dir/logs/stderr";
        exec @cmd or POSIX::_exit(127);
    }

    if (!$Valgrind) {
        waitpid $pid, 0;
        die "nginx did not start ($?): " . slurp("$dir/logs/stderr")
            . slurp("$dir/logs/error.log") if $? != 0;
    } else {
        $ng->{child} = $pid;
    }

    # stopped at the end even if it never comes up
    push @Started, $ng;

    until_true(30 * slow_factor(), sub {
        my $m = slurp("$dir/logs/nginx.pid");
        $ng->{master} = $1 if $m =~ /^(\d+)/;
        return $ng->{master} && @{[worker_pids($ng)]} >= $workers
               && port_open($port);
    }) or die "nginx did not come up: " . slurp("$dir/logs/stderr")
              . slurp("$dir/logs/error.log");

    return $ng;
}


sub port_open {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 1);
    return 0 if !$s;
    close $s;
    return 1;
}


# "nginx -s reload|quit|stop|reopen" the way an operator would say it
sub nginx_command {
    my ($ng, $signal) = @_;
    my $cmd = nginx_binary() . " -p $ng->{dir}/ -c nginx.conf -s $signal";
    my $out = `$cmd 2>&1`;
    die "nginx -s $signal failed: $out" if $? != 0;
    return 1;
}


sub proc_stat {
    my ($pid) = @_;
    my $stat = slurp("/proc/$pid/stat");
    return () if $stat !~ /^\d+ \((.*)\) (\S) (\d+)/s;
    return ($1, $2, $3);
}


sub exited {
    my ($pid) = @_;
    my (undef, $state) = proc_stat($pid);
    return !defined $state || $state eq 'Z' || $state eq 'X';
}


sub worker_pids {
    my ($ng) = @_;
    my @pids;

    opendir my $d, '/proc' or return ();
    for my $pid (grep { /^\d+$/ } readdir $d) {
        my (undef, $state, $ppid) = proc_stat($pid);
        next if !defined $ppid || $ppid != $ng->{master} || $state eq 'Z';
        # under valgrind the title nginx sets is not seen: any child
        my $cmd = slurp("/proc/$pid/cmdline");
        push @pids, $pid if $cmd =~ /worker process/ || $Valgrind;
    }
    closedir $d;

    return sort { $a <=> $b } @pids;
}


sub rss_kb {
    my ($pid) = @_;
    return slurp("/proc/$pid/status") =~ /^VmRSS:\s+(\d+) kB/m ? $1 : undef;
}


sub fd_count {
    my ($pid) = @_;
    opendir my $d, "/proc/$pid/fd" or return undef;
    my $n = grep { /^\d+$/ } readdir $d;
    closedir $d;
    return $n;
}


sub log_size {
    my ($ng) = @_;
    return -s "$ng->{dir}/logs/error.log" || 0;
}


sub log_lines {
    my ($ng, $from) = @_;
    open my $in, '<', "$ng->{dir}/logs/error.log" or return ();
    seek $in, $from // 0, 0;
    my @lines = <$in>;
    close $in;
    return @lines;
}


# stops nginx; true if it went within the deadline
sub nginx_stop {
    my ($ng, $seconds) = @_;
    my $master = $ng->{master} // $ng->{child} or return 1;

    @Started = grep { $_ != $ng } @Started;
    kill 'QUIT', $master;

    my $gone = until_true(($seconds // 10) * slow_factor(), sub {
        if ($ng->{child}) {
            return waitpid($ng->{child}, WNOHANG) == $ng->{child};
        }
        return exited($master);
    });

    if (!$gone) {
        kill 'KILL', $master;
        waitpid $ng->{child}, 0 if $ng->{child};
    }

    delete $ng->{master};
    return $gone;
}


sub nginx_done {
    my ($ng) = @_;
    my $bad = qr/\[(?:alert|crit|emerg)\]|exited on signal/;

    require Test::More;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    Test::More::is(join('', grep { /$bad/ } log_lines($ng, 0)), '',
                   'no alert, crit, emerg or crash');
    Test::More::ok(nginx_stop($ng), 'nginx stops');
    Test::More::is(join("\n", valgrind_errors($ng)), '',
                   'valgrind: no memory errors');
}


# memcheck's findings for this nginx (after nginx_stop)
sub valgrind_errors {
    my ($ng) = @_;
    my @found;

    for my $log (glob "$ng->{dir}/logs/valgrind.*.log") {
        my $text = slurp($log);
        push @found, $text
            if $text =~ /definitely\ lost\ in|Invalid\ (?:read|write|free)
                         |uninitialised|Mismatched\ free|overlap/x;
    }

    return @found;
}


# a whole HTTP exchange on one connection: the raw response (to EOF or
# the deadline)
sub http_request {
    my ($raw, %o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $o{port} // port(),
                                  Timeout => 2)
        or return undef;
    binmode $s;
    syswrite $s, $raw;

    my ($buf, $sel, $deadline) = ('', IO::Select->new($s),
                                  time + ($o{timeout} // 3));
    while (1) {
        my $left = $deadline - time;
        last if $left <= 0 || !$sel->can_read($left);
        my $n = sysread $s, $buf, 65536, length $buf;
        last if !$n;
        last if $o{until} && $buf =~ $o{until};
    }
    close $s;
    return $buf;
}


sub status {
    my $r = http_request("GET /status HTTP/1.0\r\nHost: x\r\n\r\n");
    return undef if !defined $r || $r !~ /^HTTP\/1\.\d 200.*?\r\n\r\n(.*)/s;
    return eval { decode_json($1) };
}


# a field of /status summed over the workers (or the streams)
sub status_sum {
    my ($field, $of) = @_;
    my $st = status() or return -1;
    my $n = 0;
    $n += $_->{$field} for @{$st->{$of // 'workers'}};
    return $n;
}


sub watching { status_sum('viewers', 'streams') }


# every worker reports $field true (or at least $min)
sub workers_have {
    my ($field, $min, $workers) = @_;
    my $st = status() or return 0;
    my @w = @{$st->{workers}};
    return @w == ($workers // 2) && !grep { $_->{$field} < ($min // 1) } @w;
}


# the http{} body of the usual test server: the locations given, and
# /status; no idle re-sends, so that every part is a new frame
sub stream_http {
    my ($locations, $extra) = @_;
    return <<"_EOC_";
    kafka_stream_brokers \$TEST_NGINX_KAFKA_BROKERS;
    kafka_stream_idle_resend 0;
    ${\ ($extra // '')}
    server {
        listen 127.0.0.1:\$TEST_NGINX_PORT;
        $locations
        location /status { kafka_stream_status; }
    }
_EOC_
}


# a test that dies half-way leaves no feed or viewer pool behind, nor nginx
END {
    my $st = $?;
    if ($$ == $Main) {
        kill 'KILL', keys %Children;
        waitpid $_, 0 for keys %Children;
        nginx_stop($_, 5) for @Started;
    }
    $? = $st;
}


# --- the frame feed ---------------------------------------------------

sub start_feed {
    my ($topic, $frames, %o) = @_;
    my $fps = $o{fps} // 25;
    my $count = $o{count};
    my $partition = $o{partition} // -1;
    my $tool = KafkaStream::Test::tool('kafka-produce');
    # the feed is the test's tool, not what is tested: it reconnects
    # at once after an outage and keeps what it could not deliver yet
    my @cmd = ($tool, '-X', 'message.timeout.ms='
                      . ($o{message_timeout_ms} // 120000),
               '-X', 'reconnect.backoff.max.ms=100',
               '-X', 'queue.buffering.max.messages=1000000',
               (map { ('-X', $_) } @{$o{config} || []}), '--',
               KafkaStream::Test::kafka_brokers(), $topic, $partition);
    my $countfile = File::Temp->new(TEMPLATE => 'kafka-stream-feed-XXXXXX',
                                    TMPDIR => 1);

    my $pid = fork;
    die "fork: $!\n" if !defined $pid;

    if ($pid == 0) {
        my $stop = 0;
        $SIG{TERM} = sub { $stop = 1 };
        $SIG{PIPE} = 'IGNORE';
        open STDERR, ">", $o{stderr} // "/dev/null";
        open my $pipe, "|-", @cmd or POSIX::_exit(1);
        binmode $pipe;
        $pipe->autoflush(1);

        my ($n, $t0) = (0, time);
        while (!$stop && (!defined $count || $n < $count)) {
            my $f = $frames->[$n % @$frames];
            print $pipe KafkaStream::Test::field($o{key}),
                        KafkaStream::Test::field($f), pack('N', 0)
                or last;
            $n++;
            my $next = $t0 + $n / $fps;
            my $left = $next - time;
            sleep $left if $left > 0;
        }

        open my $out, '>', $countfile->filename;
        print $out "$n\n";
        close $out;
        close $pipe;
        POSIX::_exit(0);
    }

    $Children{$pid} = 1;
    return { pid => $pid, countfile => $countfile };
}


sub stop_feed {
    my ($feed) = @_;
    kill 'TERM', $feed->{pid};
    waitpid $feed->{pid}, 0;
    delete $Children{$feed->{pid}};
    my $n = slurp($feed->{countfile}->filename);
    chomp $n;
    return $n;
}


# --- one raw response, kept whole -----------------------------------

# a child that sends $request and keeps every byte of the answer until
# stop_capture(), which returns them
sub start_capture {
    my ($request) = @_;
    my $file = File::Temp->new(TEMPLATE => 'kafka-stream-raw-XXXXXX',
                               TMPDIR => 1);
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => port(),
                                  Timeout => 5)
        or die "connect: $!\n";

    my $pid = fork;
    die "fork: $!\n" if !defined $pid;

    if ($pid == 0) {
        my $stop = 0;
        $SIG{TERM} = sub { $stop = 1 };
        open my $out, '>:raw', $file->filename or POSIX::_exit(1);
        $out->autoflush(1);
        binmode $s;
        syswrite $s, $request;
        my $sel = IO::Select->new($s);
        while (!$stop) {
            next if !$sel->can_read(0.05);
            my $n = sysread $s, my $buf, 65536;
            last if !$n;
            print $out $buf;
        }
        close $out;
        POSIX::_exit(0);
    }

    close $s;
    $Children{$pid} = 1;
    return { pid => $pid, file => $file };
}


sub stop_capture {
    my ($cap) = @_;
    kill 'TERM', $cap->{pid};
    waitpid $cap->{pid}, 0;
    delete $Children{$cap->{pid}};
    return slurp($cap->{file}->filename);
}


# --- viewers ----------------------------------------------------------

sub start_viewers {
    my (%o) = @_;
    my $report = File::Temp->new(TEMPLATE => 'kafka-stream-viewers-XXXXXX',
                                 TMPDIR => 1);
    my $ready = File::Temp->new(TEMPLATE => 'kafka-stream-ready-XXXXXX',
                                TMPDIR => 1);

    my $pid = fork;
    die "fork: $!\n" if !defined $pid;

    if ($pid == 0) {
        my $ok = eval { run_viewers($report->filename, $ready->filename, %o);
                        1 };
        warn $@ if !$ok;
        POSIX::_exit($ok ? 0 : 1);
    }

    $Children{$pid} = 1;
    my $pool = { pid => $pid, report => $report, ready => $ready, %o };
    until_true(30, sub { -s $ready->filename })
        or die "the viewers did not connect\n";
    return $pool;
}


sub stop_viewers {
    my ($pool) = @_;
    kill 'TERM', $pool->{pid};
    waitpid $pool->{pid}, 0;
    delete $Children{$pool->{pid}};
    die "the viewer pool failed ($?)\n" if $? != 0;
    return decode_json(slurp($pool->{report}->filename));
}


sub viewer_connect {
    my ($v, %o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $o{port} // port(),
                                  Timeout => 5);
    my $conn = { start => time, parts => [] };
    push @{$v->{conns}}, $conn;

    if (!$s) {
        $conn->{error} = "connect: $!";
        $conn->{end} = time;
        return;
    }

    binmode $s;
    $s->blocking(0);
    syswrite $s, "GET $o{uri} HTTP/1.1\r\nHost: localhost\r\n\r\n";
    $v->{sock} = $s;
    $v->{parser} = parser_new($o{boundary});
    $v->{conn} = $conn;
}


sub viewer_close {
    my ($v, $error) = @_;
    $v->{conn}{error} = $error if defined $error;
    $v->{conn}{end} = time;
    # the connection ended inside a part (or its headers)
    $v->{conn}{mid} = 1 if parser_mid($v->{parser});
    @{$v->{conn}}{qw(status head)} = @{$v->{parser}}{qw(status head)};
    $v->{conn}{closing} = 1 if $v->{parser}{closing};
    close $v->{sock};
    delete $v->{sock};
}


# A multipart/x-mixed-replace response, parsed strictly as it arrives:
# the response head, then parts delimited by the boundary and measured by
# their Content-Length, then the closing delimiter.  parser_feed()
# returns an error string, or undef; $on_part->($head, $body) for each
# complete part.

sub parser_new {
    my ($boundary) = @_;
    return { buf => '', state => 'head',
             boundary => $boundary // 'kafka-stream-frame' };
}


sub parser_feed {
    my ($p, $data, $on_part) = @_;
    my $d = "--$p->{boundary}";

    $p->{buf} .= $data;

    for (;;) {
        if ($p->{state} eq 'head') {
            my $end = index $p->{buf}, "\r\n\r\n";
            return undef if $end < 0;
            $p->{head} = substr $p->{buf}, 0, $end + 4, '';
            ($p->{status}) = $p->{head} =~ m{^HTTP/1\.\d (\d+)};
            return 'status ' . ($p->{status} // '?')
                if ($p->{status} // 0) != 200;
            $p->{state} = 'delim';
        }

        if ($p->{state} eq 'delim') {
            return undef if length $p->{buf} < length($d) + 4;
            $p->{buf} =~ s/^\r\n//;
            return 'bad delimiter: ' . unpack('H*', substr $p->{buf}, 0, 40)
                if substr($p->{buf}, 0, length $d) ne $d;
            my $after = substr $p->{buf}, length $d, 2;
            substr $p->{buf}, 0, length($d) + 2, '';
            if ($after eq '--') {
                $p->{closing} = 1;
                $p->{state} = 'epilogue';
                next;
            }
            return 'bad delimiter end' if $after ne "\r\n";
            $p->{state} = 'parthead';
        }

        if ($p->{state} eq 'parthead') {
            # a delimiter announces a part, or the closing one follows
            if (substr($p->{buf}, 0, length($d) + 4) eq "\r\n$d--") {
                $p->{closing} = 1;
                $p->{state} = 'epilogue';
                next;
            }
            my $end = index $p->{buf}, "\r\n\r\n";
            return undef if $end < 0;
            $p->{parthead} = substr $p->{buf}, 0, $end + 4, '';
            return "part without Content-Length: $p->{parthead}"
                if $p->{parthead} !~ /^Content-Length: (\d+)\r$/mi;
            $p->{need} = $1;
            $p->{state} = 'body';
        }

        if ($p->{state} eq 'body') {
            return undef if length $p->{buf} < $p->{need};
            my $body = substr $p->{buf}, 0, $p->{need}, '';
            $on_part->($p->{parthead}, $body);
            $p->{state} = 'delim';
            next;
        }

        # after the closing delimiter: CRLF, then the end
        $p->{buf} = '';
        return undef;
    }
}


# true if the input stopped inside a part or its headers
sub parser_mid {
    my ($p) = @_;
    return 1 if $p->{state} eq 'body';
    return $p->{state} eq 'parthead' && length $p->{buf}
           && index("\r\n--$p->{boundary}--\r\n", $p->{buf}) != 0;
}


# a whole response: { head, status, parts => [{ head, body }], closing,
# mid, error }
sub parse_stream {
    my ($raw, $boundary) = @_;
    my $p = parser_new($boundary);
    my @parts;
    my $err = parser_feed($p, $raw, sub { push @parts, { head => $_[0],
                                                        body => $_[1] } });
    return { head => $p->{head}, status => $p->{status}, parts => \@parts,
             closing => $p->{closing}, mid => parser_mid($p),
             error => $err };
}


sub run_viewers {
    my ($report, $ready, %o) = @_;
    my $n = $o{n} // 1;
    my %index;
    my $i = 0;
    $index{md5 $_} //= $i++ for @{$o{frames} || []};

    my $stop = 0;
    $SIG{TERM} = sub { $stop = 1 };
    $SIG{PIPE} = 'IGNORE';

    my @v = map { { id => $_, conns => [] } } 0 .. $n - 1;
    viewer_connect($_, %o) for @v;

    open my $r, '>', $ready;
    print $r "ready\n";
    close $r;

    my $until = $o{duration} ? time + $o{duration} : undef;

    while (!$stop && (!$until || time < $until)) {
        my $sel = IO::Select->new(map { $_->{sock} } grep { $_->{sock} } @v);
        my %by = map { (fileno($_->{sock}) => $_) } grep { $_->{sock} } @v;

        if (!$sel->count) {
            last if !$o{reconnect};
            sleep 0.05;
        }

        for my $s ($sel->can_read(0.05)) {
            my $v = $by{fileno $s};
            my $got = sysread $s, my $data, 262144;

            if (!defined $got) {
                next if $!{EAGAIN};
                viewer_close($v, "read: $!");
                next;
            }

            my $parts = $v->{conn}{parts};
            my $err = parser_feed($v->{parser}, $data, sub {
                push @$parts, [0 + sprintf('%.3f', time),
                               $index{md5 $_[1]} // -1];
            });

            if (defined $err) {
                viewer_close($v, $err);
            } elsif ($got == 0) {
                viewer_close($v);
            }
        }

        if ($o{reconnect}) {
            for my $v (grep { !$_->{sock} } @v) {
                viewer_connect($v, %o);
            }
        }
    }

    for my $v (grep { $_->{sock} } @v) {
        viewer_close($v);
        $v->{conn}{cut} = 1;
    }

    my @out = map { { id => $_->{id}, conns => $_->{conns} } } @v;
    open my $out, '>', $report or die "$report: $!";
    print $out encode_json(\@out);
    close $out;
}


1;
